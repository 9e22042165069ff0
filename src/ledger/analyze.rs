//! Turns an [`Observation`] into a [`LedgerRow`]: what was asked, how it truly ended (a tool
//! that failed is not a success), and the estimated tokens.
//!
//! The request path analyses each exchange when its reply is complete ([`analyze_remembered`]),
//! so it journals and queues the small row and frees the reply at once; counting tokens of new
//! text (~1 ms for an 8 KB reply) is more than it can wait for, so it gives up when a reply's
//! verdict is not remembered and its text would take more than a small [`Budget`] to count (a
//! result longer than the budget is not even read, unless it is a tool's text whose parts are
//! all remembered but for what the budget may count: `one_text_verdict`), and the writer
//! analyses that one ([`analyze`]). A verdict worked out whole, on either side, is
//! remembered for the next time.
//!
//! Messages are read into borrowed, typed views ([`Message`]): only the fields the ledger needs
//! are decoded, and the rest (a tool's result can be kilobytes of nested JSON) is skipped
//! without being built as a `serde_json::Value`. This is most of the ledger's CPU per row.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::entry::{
    Ending, Entry, Exchange, LedgerRow, Observation, ReadRequest, Status, TraceContext,
};
use super::json_text::{self, ToolText};
use super::memo::{Recent, TextKey};
use super::tokens::{self, Budget};

/// Bytes of text not counted before that the request path may count tokens of (see
/// [`tokens::Budget`]): a tool's arguments, a short error; ~25 µs at most.
pub const REQUEST_PATH_BUDGET: usize = 256;

/// JSON-RPC error code for a request the server gave up on (the MCP SDKs' `RequestTimeout`).
pub const REQUEST_TIMEOUT: i32 = -32001;

/// Longest error message kept in a row.
const MAX_ERROR_MESSAGE: usize = 1000;

/// A JSON-RPC request, as far as the ledger reads it. Fields of an unexpected type are kept
/// raw and read leniently (see [`text`]), so odd input still yields a row.
///
/// This and the views below borrow their members from the message (`'de: 'a`) and read an
/// absent member as None.
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Message<'a> {
    method: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    params: Option<&'a RawValue>,
}

/// A JSON-RPC reply whose result is read as `R`: a tool's result ([`ToolResult`], read in one
/// pass: text blocks kept raw, the rest only skipped over), a raw one that is only measured, or
/// either ([`Outcome`]) as the ledger uses it.
#[derive(Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
struct Reply<'a, R = Outcome<'a>> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    result: Option<R>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

enum Outcome<'a> {
    Tool(ToolText<'a>),
    Raw(&'a RawValue),
}

impl<'a, R> Reply<'a, R> {
    fn outcome(self, read: impl FnOnce(R) -> Outcome<'a>) -> Reply<'a> {
        Reply {
            id: self.id,
            result: self.result.map(read),
            error: self.error,
        }
    }
}

impl<'a> Reply<'a> {
    /// Reads one message; None if it is not a reply (a request or notification from the
    /// server, or not JSON-RPC at all).
    fn read(event: &'a [u8], tool_call: bool) -> Option<Reply<'a>> {
        let tool_reply = tool_call
            .then(|| serde_json::from_slice::<Reply<ToolResult>>(event).ok())
            .flatten()
            .map(|r| r.outcome(|tool| Outcome::Tool(tool.into())));
        // A result that is not shaped like a tool's is still a reply: read raw.
        let reply = tool_reply.or_else(|| {
            let r = serde_json::from_slice::<Reply<&RawValue>>(event).ok()?;
            Some(r.outcome(Outcome::Raw))
        })?;
        (reply.result.is_some() || reply.error.is_some()).then_some(reply)
    }
}

/// The parts of a request's `params` the ledger records.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
struct Params<'a> {
    name: Option<&'a RawValue>,
    arguments: Option<&'a RawValue>,
    protocol_version: Option<&'a RawValue>,
    #[serde(rename = "_meta")]
    meta: Option<&'a RawValue>,
}

/// What a row records of a request's [`Params`], each member as its JSON text: read by serde,
/// or found where the gate read a plain call's.
#[derive(Clone, Copy, Default)]
struct Asked<'a> {
    name: Option<&'a str>,
    arguments: Option<&'a str>,
    protocol_version: Option<&'a str>,
    meta: Option<&'a str>,
}

impl<'a> From<Params<'a>> for Asked<'a> {
    fn from(params: Params<'a>) -> Self {
        Asked {
            name: params.name.map(RawValue::get),
            arguments: params.arguments.map(RawValue::get),
            protocol_version: params.protocol_version.map(RawValue::get),
            meta: params.meta.map(RawValue::get),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Meta<'a> {
    traceparent: Option<&'a RawValue>,
    tracestate: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct RpcError<'a> {
    code: Option<&'a RawValue>,
    message: Option<&'a RawValue>,
}

/// A tool's result as serde reads it: its text blocks and whether it reports failure (see
/// [`ToolText`], which it becomes).
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
struct ToolResult<'a> {
    content: Option<Vec<Block<'a>>>,
    structured_content: Option<&'a RawValue>,
    is_error: Option<&'a RawValue>,
    result_type: Option<&'a RawValue>,
}

impl<'a> From<ToolResult<'a>> for ToolText<'a> {
    fn from(result: ToolResult<'a>) -> Self {
        let blocks = result.content.into_iter().flatten();
        ToolText {
            texts: blocks.filter_map(|b| b.text).map(RawValue::get).collect(),
            structured_content: result.structured_content.map(RawValue::get),
            is_error: result.is_error.map(RawValue::get),
            result_type: result.result_type.map(RawValue::get),
            decoded: None,
        }
    }
}

/// A tool's result read from its raw JSON: as rmcp lays one out, found without serde (see
/// [`json_text`]); laid out any other way, by serde.
fn tool_text(result: &[u8]) -> Option<ToolText<'_>> {
    json_text::laid_out(result).or_else(|| tool_text_by_serde(result))
}

/// A tool's result from its raw JSON, read by serde whatever its layout.
fn tool_text_by_serde(result: &[u8]) -> Option<ToolText<'_>> {
    serde_json::from_slice::<ToolResult>(result)
        .ok()
        .map(ToolText::from)
}

/// `resultType` of a 2026-07-28 result that asks the client for input first.
const INPUT_REQUIRED: &str = "\"input_required\"";

/// The kind of a result read raw (a prompt's, a resource's).
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
struct Kind<'a> {
    result_type: Option<&'a RawValue>,
}

/// A content block: its text is kept as raw (escaped) JSON, decoded only when needed (a count
/// not cached yet, an error message).
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Block<'a> {
    text: Option<&'a RawValue>,
}

/// Reads `raw` as `T`, or the default when it is absent or of another shape.
fn read<'a, T: Deserialize<'a> + Default>(raw: Option<&'a RawValue>) -> T {
    read_text(raw.map(RawValue::get))
}

/// [`read`] of a value's JSON text.
fn read_text<'a, T: Deserialize<'a> + Default>(raw: Option<&'a str>) -> T {
    raw.and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or_default()
}

/// A JSON string's text (None for any other JSON value).
fn text(raw: Option<&RawValue>) -> Option<String> {
    text_of(raw?.get())
}

/// [`text`] of a value's JSON text (`raw` must be JSON).
fn text_of(raw: &str) -> Option<String> {
    text_in(raw).map(Cow::into_owned)
}

/// [`text_of`], borrowed from `raw` when the string has no escapes.
fn text_in(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    // `raw` is valid JSON, so a string without escapes is its own text (methods, tool
    // names and ids nearly always are): no need to run the decoder.
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    match json_text::unescape(inner) {
        Some(text) => Some(Cow::Owned(text)),
        None => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
    }
}

/// Analyses one observation, counting every token (the writer's analysis). Pricing is applied
/// later by the writer (it needs the session's client type).
pub fn analyze(obs: Observation) -> LedgerRow {
    analyze_within(
        &Exchange::from(&obs),
        Some(&obs.response),
        &mut Budget::unlimited(),
    )
}

/// The row of an entry: as it is, or analysed now.
pub fn row_of(entry: Entry) -> LedgerRow {
    match entry {
        Entry::Row(row) => *row,
        Entry::Observed(observation) => analyze(*observation),
    }
}

/// The request path's analysis: the row, unless it would need more than
/// [`REQUEST_PATH_BUDGET`] bytes of new text counted (the writer then analyses the
/// observation). With `reply` (the reply's own bytes) a verdict worked out within the budget
/// is remembered, as the writer remembers its own. The row is boxed here, once: it is moved
/// into an [`Entry`], a job and the writer's queue, and by value each move copied its ~450
/// bytes (BENCHMARKS.md, branch `rq35`).
pub fn analyze_remembered(
    exchange: &Exchange<'_>,
    reply: Option<&Bytes>,
) -> Option<Box<LedgerRow>> {
    let mut budget = Budget::of(REQUEST_PATH_BUDGET);
    let row = analyze_within(exchange, reply, &mut budget);
    (!budget.exceeded()).then(|| Box::new(row))
}

/// Analyses `obs` counting within `budget`. With `reply` (the reply's own bytes, which a
/// remembered result may share) the verdict on a new result is remembered.
fn analyze_within(obs: &Exchange<'_>, reply: Option<&Bytes>, budget: &mut Budget) -> LedgerRow {
    let (request, method, params) = match obs.stream_get {
        Some(get) => (
            Request::default(),
            get.method().to_string(),
            Asked::default(),
        ),
        None => obs
            .read
            .and_then(|read| already_read(obs.request, read))
            .unwrap_or_else(|| {
                let (request, method, params) = read_request_and_params(obs.request);
                (request, method, Asked::from(params))
            }),
    };
    let id = request.id.filter(|id| *id != "null");
    let tool_name = (method == "tools/call")
        .then(|| text_of(params.name?))
        .flatten();
    let tool_call = method == "tools/call";
    let events;
    let verdict = match laid_out_verdict(obs, id, tool_call, reply, budget) {
        Some(verdict) => verdict,
        None => {
            events = reply_events(obs.response);
            judge(obs, &events, id, tool_call, reply, budget)
        }
    };

    let args_text = match (method.as_str(), request.params) {
        ("tools/call", _) => params.arguments.unwrap_or_default(),
        (_, Some(p)) => p,
        (_, None) => "",
    };
    let args_tokens = tokens::count_fields_within(args_text, budget);
    let Verdict {
        status,
        error_code,
        error_message,
        result_tokens,
    } = verdict;

    let mut row = LedgerRow {
        request_id: obs.request_id,
        session_id: obs.session_id.map(str::to_string),
        jsonrpc_id: id.map(|id| cut_client(id_text(id))),
        method: cut_client(method),
        tool_name: tool_name.map(cut_client),
        status,
        error_code,
        error_message,
        duration: obs.duration,
        request_bytes: i64::try_from(obs.request.len()).unwrap_or(i64::MAX),
        response_bytes: i64::try_from(obs.response_len).unwrap_or(i64::MAX),
        args_tokens: Some(to_i32(args_tokens)),
        result_tokens: Some(to_i32(result_tokens)),
        total_tokens: Some(to_i32(args_tokens.saturating_add(result_tokens))),
        estimated_cost_usd: None,
        pricing_model: None,
        tokenizer: Some(Cow::Borrowed(tokens::TOKENIZER)),
        sanitized: false,
        timestamp: obs.timestamp,
        upstream: obs.upstream.cloned(),
        subject: obs.subject,
        trace: trace_context(obs.protocol_version.map(str::to_string), &params),
    };
    row.sanitize();
    row
}

/// `text` cut as [`crate::protocol::cut_client_text`] cuts client text, kept (not copied) when
/// it is short enough, as it nearly always is.
fn cut_client(text: String) -> String {
    match crate::protocol::cut_client_text(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(cut) => cut,
    }
}

/// What a reply says, as a row records it.
#[derive(Clone, Debug, PartialEq)]
struct Verdict {
    status: Status,
    error_code: Option<i32>,
    error_message: Option<String>,
    result_tokens: u32,
}

impl Verdict {
    /// The verdict on a reply the budget did not let [`judge`] read: no row is made from it
    /// (the budget says it was exceeded, and the writer analyses the reply).
    fn unread() -> Verdict {
        Verdict {
            status: Status::Success,
            error_code: None,
            error_message: None,
            result_tokens: 0,
        }
    }
}

/// Results remembered by [`judge`]: at most this many bytes of them (each at most a
/// sixteenth, 64 KiB). A remembered result is a slice of its reply, so it keeps the reply's
/// whole buffer allocated: at 16 MiB the memo held ~2,300 board pages (~25 MiB more resident
/// than with the ledger off) and each new reply was written into memory last touched
/// thousands of calls before, out of every cache, where without the memo it reuses the buffer
/// just freed. 1 MiB keeps ~150 such pages and whatever a client repeats soon (`tools/list`,
/// the same query again); a result repeated only after more than a megabyte of others is
/// judged again, which its parts' remembered counts make cheap (BENCHMARKS.md, branch `req16`).
const REMEMBERED_RESULTS: usize = 1024 * 1024;

/// The verdicts [`judge`] remembered, by the raw `result` they were reached from.
static SEEN: LazyLock<Recent<Remembered>> = LazyLock::new(|| Recent::new(REMEMBERED_RESULTS));

/// A remembered verdict, and whether its `result` has no line end (see
/// [`laid_out_verdict`]).
#[derive(Clone)]
struct Remembered {
    verdict: Option<Verdict>,
    one_line: bool,
}

impl Remembered {
    /// The verdict, for a result found by [`laid_out_result`]: only one without a line end
    /// is the reply's result there.
    fn laid_out(self) -> Option<Verdict> {
        self.one_line.then_some(self.verdict).flatten()
    }
}

/// The memo's kind for a reply.
fn result_kind(tool_call: bool) -> &'static str {
    if tool_call { "tools/call" } else { "other" }
}

/// Reads the reply. A successful reply whose result was seen before (the same listing, the
/// same query) is recognised by its raw bytes and not parsed or tokenised again.
/// Without `reply` a result not remembered is read, not remembered; with it, one whose verdict
/// `budget` allowed to be worked out whole is remembered (a count the budget refused is no
/// verdict). A result not remembered that is longer than what is left of `budget` is not read
/// at all: its text, nearly all of it, could not be counted (the budget says so, and the
/// verdict returned is [`Verdict::unread`]).
fn judge(
    obs: &Exchange<'_>,
    events: &[Cow<[u8]>],
    id: Option<&str>,
    tool_call: bool,
    reply: Option<&Bytes>,
    budget: &mut Budget,
) -> Verdict {
    if obs.ending != Ending::TimedOut
        && let Some(result) = id.and_then(|id| own_result(events, id))
    {
        let kind = result_kind(tool_call);
        let remembered = match SEEN.get(kind, result) {
            Some(remembered) => Some(remembered),
            None if budget.covers(result.len()) => reply.map(|reply| {
                let verdict = result_verdict(result, tool_call, budget);
                let one_line = memchr::memchr(b'\n', result).is_none();
                remember(kind, result, reply, verdict, one_line, budget)
            }),
            // Reading it (~40,000 instructions for an 8 KB answer) only to give up cost the
            // request path more than all else it does for the ledger (BENCHMARKS.md,
            // branch `count10`): the writer reads it, once. Unless it is a tool's text whose
            // parts are remembered but for what the budget may count: hashing its parts costs
            // less than the writer's second reading of the whole exchange (branch `count11`).
            None => match tool_call
                .then(|| one_text_verdict(result, budget))
                .flatten()
            {
                Some(verdict) if !budget.exceeded() => {
                    if let Some(reply) = reply {
                        // Its text was read as one JSON string's inside (by parts, each
                        // decoded when first seen), which holds no line end as it is.
                        let verdict = Some(verdict.clone());
                        remember(kind, result, reply, verdict, true, budget);
                    }
                    return verdict;
                }
                _ => {
                    budget.give_up();
                    return Verdict::unread();
                }
            },
        };
        if let Some(verdict) = remembered.and_then(|r| r.verdict) {
            return verdict;
        }
    }
    read_verdict(obs, events, id, tool_call, budget)
}

/// `verdict` on `result` (a slice of `reply`; `one_line` if it has no line end), remembered
/// when `budget` was enough to work it out whole.
fn remember(
    kind: &'static str,
    result: &[u8],
    reply: &Bytes,
    verdict: Option<Verdict>,
    one_line: bool,
    budget: &Budget,
) -> Remembered {
    let made = Remembered { verdict, one_line };
    if !budget.exceeded() {
        SEEN.insert(kind, result, || shared_slice(reply, result), made.clone());
    }
    made
}

/// [`judge`]'s verdict for a reply sent as rmcp sends it ([`laid_out_result`]), worked out
/// without splitting the reply into its events (a scan for line ends over every reply, ~1,100
/// instructions for an 8 KB answer): a remembered verdict, or a new tool result of one text
/// too long for what is left of `budget`, counted by its parts. None when this cannot decide
/// as [`judge`] would (then [`judge`] does, and nothing was taken from `budget`).
fn laid_out_verdict(
    obs: &Exchange<'_>,
    id: Option<&str>,
    tool_call: bool,
    reply: Option<&Bytes>,
    budget: &mut Budget,
) -> Option<Verdict> {
    let result = laid_out_result(obs, id)?;
    let kind = result_kind(tool_call);
    if let Some(remembered) = SEEN.get(kind, result) {
        return remembered.laid_out();
    }
    // A result the budget covers is read whole by `judge`, which also checks it for line ends.
    if !tool_call || budget.covers(result.len()) {
        return None;
    }
    let one = json_text::one_text(result).filter(|one| !one.is_error)?;
    // As `judge` decides a new result longer than the budget, on the result it would find:
    // a text counted whole holds no byte below 0x20 unescaped (the parts not remembered are
    // decoded as serde reads them; see `json_text::decode_fragment`), so the data line is one
    // line and [`sse_data`] would read that same single event. A text the count gives up on
    // is left to the writer, whose budget covers any result and so takes `judge`'s way.
    match text_verdict(&one, budget) {
        Some(verdict) if !budget.exceeded() => {
            if let Some(reply) = reply {
                remember(kind, result, reply, Some(verdict.clone()), true, budget);
            }
            Some(verdict)
        }
        _ => {
            budget.give_up();
            Some(Verdict::unread())
        }
    }
}

/// The raw `result` of a reply sent as rmcp sends it, found without scanning the reply for
/// line ends: one SSE event (after a priming event, see [`after_priming`]) whose `data:` line
/// holds the reply in [`own_result`]'s layout, then only `id:` and `retry:` lines. When the
/// result has no line end, [`sse_data`] reads that same single event and [`own_result`] finds
/// this result in it (the opening and the id have no line end); a result with one was cut
/// from a longer event and is not the reply's.
fn laid_out_result<'x>(obs: &Exchange<'x>, id: Option<&str>) -> Option<&'x [u8]> {
    let id = id?.as_bytes();
    if obs.ending == Ending::TimedOut || id.contains(&b'\n') {
        return None;
    }
    let data = after_priming(obs.response.trim_ascii_start()).strip_prefix(b"data: ")?;
    data_line(data.strip_suffix(b"\n\n")?)
        .strip_prefix(br#"{"jsonrpc":"2.0","id":"#)?
        .strip_prefix(id)?
        .strip_prefix(br#","result":"#)?
        .strip_suffix(b"}")
}

/// `body` after the priming event it opens with, when it does: an event of an empty `data:`
/// line and then only `id:` and `retry:` lines (at most [`FIELD_LINE`] bytes of them), as a
/// direct call's reply sends it in the same frame as its answer (`mcp::fast`). [`sse_data`]
/// reads that event as an empty message, which is no reply, so what follows decides alone.
/// Any other `body` is returned whole.
fn after_priming(body: &[u8]) -> &[u8] {
    let Some(fields) = body.strip_prefix(b"data: \n") else {
        return body;
    };
    let window = &fields[..fields.len().min(FIELD_LINE)];
    let Some(end) = memchr::memmem::find(window, b"\n\n") else {
        return body;
    };
    let only_fields = window[..end]
        .split(|b| *b == b'\n')
        .all(|line| line.starts_with(b"id:") || line.starts_with(b"retry:"));
    match only_fields {
        true => &fields[end + 2..],
        false => body,
    }
}

/// An SSE event's text (without its blank line) less the short `id:` and `retry:` lines
/// that follow its data line, each found by looking back over at most [`FIELD_LINE`] bytes.
fn data_line(mut event: &[u8]) -> &[u8] {
    loop {
        let window = event.len().saturating_sub(FIELD_LINE);
        let Some(end) = memchr::memrchr(b'\n', &event[window..]).map(|at| window + at) else {
            return event;
        };
        let line = &event[end + 1..];
        if !(line.starts_with(b"id:") || line.starts_with(b"retry:")) {
            return event;
        }
        event = &event[..end];
    }
}

/// The longest `id:` or `retry:` line [`data_line`] looks for.
const FIELD_LINE: usize = 256;

/// `part` as a [`Bytes`]: a shared slice of `whole` when it lies inside it (the usual case: a
/// single-line SSE event or a JSON body), else a copy (an event joined from several lines).
fn shared_slice(whole: &Bytes, part: &[u8]) -> Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= whole.len() => whole.slice(start..end),
        _ => Bytes::copy_from_slice(part),
    }
}

/// The verdict from reading the whole reply.
fn read_verdict(
    obs: &Exchange<'_>,
    events: &[Cow<[u8]>],
    id: Option<&str>,
    tool_call: bool,
    budget: &mut Budget,
) -> Verdict {
    let reply = find_reply(events, id, tool_call);
    let (status, error_code, error_message) = status_of(obs, reply.as_ref(), id.is_some());
    Verdict {
        status,
        error_code,
        error_message,
        result_tokens: reply.as_ref().map_or(0, |r| result_tokens(r, budget)),
    }
}

/// The raw `result` of the reply to `id`, when the reply is laid out exactly as rmcp writes
/// it (`{"jsonrpc":"2.0","id":ID,"result":RESULT}`); found without parsing. (A server sends
/// one reply per id, so this is the reply [`find_reply`] would pick.) The bytes are not
/// checked to be UTF-8 here: a remembered verdict was reached from the same bytes, and new ones
/// are parsed (and so checked) by [`result_verdict`].
fn own_result<'e>(events: &'e [Cow<[u8]>], id: &str) -> Option<&'e [u8]> {
    events.iter().find_map(|event| {
        event
            .trim_ascii_end()
            .strip_prefix(br#"{"jsonrpc":"2.0","id":"#)?
            .strip_prefix(id.as_bytes())?
            .strip_prefix(br#","result":"#)?
            .strip_suffix(b"}")
    })
}

/// The verdict on a successful reply's raw `result`: determined by those bytes alone (None if
/// they are not JSON; the full reading then decides).
fn result_verdict(result: &[u8], tool_call: bool, budget: &mut Budget) -> Option<Verdict> {
    match tool_call
        .then(|| one_text_verdict(result, budget))
        .flatten()
    {
        Some(verdict) => Some(verdict),
        None => read_result_verdict(result, tool_call, budget),
    }
}

/// [`result_verdict`] from reading the whole result (and decoding a tool's whole text).
fn read_result_verdict(result: &[u8], tool_call: bool, budget: &mut Budget) -> Option<Verdict> {
    let tool = tool_call.then(|| tool_text(result)).flatten();
    let outcome = match tool {
        Some(tool) => Outcome::Tool(tool),
        None => Outcome::Raw(serde_json::from_slice::<&RawValue>(result).ok()?),
    };
    let (status, error_message) = result_status(&outcome);
    let reply = Reply {
        id: None,
        result: Some(outcome),
        error: None,
    };
    Some(Verdict {
        status,
        error_code: None,
        error_message,
        result_tokens: result_tokens(&reply, budget),
    })
}

/// [`result_verdict`] of a successful tool's result of one text block laid out as rmcp writes
/// it, its text counted from its raw JSON by parts, most of them remembered (see
/// [`tokens::count_escaped`]): the verdict the full reading of it would give, without
/// decoding or checking the parts seen before. None for any other result, a failed tool's
/// (its message is its text) or a text serde would not read (the full reading decides).
fn one_text_verdict(result: &[u8], budget: &mut Budget) -> Option<Verdict> {
    text_verdict(
        &json_text::one_text(result).filter(|one| !one.is_error)?,
        budget,
    )
}

/// [`one_text_verdict`] of a successful tool's text found in its result.
fn text_verdict(one: &json_text::OneText<'_>, budget: &mut Budget) -> Option<Verdict> {
    Some(Verdict {
        status: Status::Success,
        error_code: None,
        error_message: None,
        result_tokens: tokens::count_escaped(one.inner, budget)?,
    })
}

/// A request read in one pass with its `params` as [`Params`]: what a `tools/call` needs.
#[derive(Deserialize)]
struct Call<'a> {
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

/// The request, its method and its `params` as [`Params`] (the default when they are not an
/// object). A `tools/call` (most of the traffic) is read in one pass; any other request, or one
/// that pass cannot read (e.g. `params` not an object), as by [`read_request`] and its
/// `params` read again from their raw JSON. Both ways give the same answer.
fn read_request_and_params(body: &[u8]) -> (Request<'_>, String, Params<'_>) {
    // An object only: serde would also read a struct from an array (a batch) by position.
    let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if object
        && let Ok(call) = serde_json::from_slice::<Call>(body)
        && call.method.map(RawValue::get) == Some("\"tools/call\"")
    {
        let request = Request {
            id: call.id.map(RawValue::get),
            params: None,
        };
        let params = call.params.unwrap_or_default();
        return (request, "tools/call".to_string(), params);
    }
    let (message, method) = read_request(body);
    let params = read(message.params);
    let request = Request {
        id: message.id.map(RawValue::get),
        params: message.params.map(RawValue::get),
    };
    (request, method, params)
}

/// What [`read_request_and_params`] gives, from a request the protocol layer already read
/// (the body is not parsed again: only its id, and the params a `tools/call` records, unless
/// the gate found a plain call's name and arguments). None when a span does not read (then
/// the body is parsed as any other).
fn already_read<'a>(
    body: &'a [u8],
    read: &ReadRequest,
) -> Option<(Request<'a>, String, Asked<'a>)> {
    let text_at = |span: Range<usize>| std::str::from_utf8(body.get(span)?).ok();
    // The span is the id's JSON text as the protocol layer's parser delimited it: read as
    // text, not parsed again.
    let id = match read.id.clone() {
        Some(span) => Some(text_at(span)?),
        None => None,
    };
    let params = match read.params.clone() {
        Some(span) => Some(body.get(span)?),
        None => None,
    };
    let fields = match &read.call {
        // Params of nothing but a name and arguments: what serde would read of them.
        Some(call) if read.method == "tools/call" => Asked {
            name: Some(text_at(call.name.clone())?),
            arguments: match call.arguments.clone() {
                Some(span) => Some(text_at(span)?),
                None => None,
            },
            ..Asked::default()
        },
        _ => params
            .and_then(|p| serde_json::from_slice::<Params>(p).ok())
            .map(Asked::from)
            .unwrap_or_default(),
    };
    // A `tools/call` records its arguments (in `fields`), any other request its params' text.
    let params = match read.method == "tools/call" {
        true => None,
        false => params.map(std::str::from_utf8).transpose().ok()?,
    };
    Some((Request { id, params }, read.method.clone(), fields))
}

/// A request's id and its params' JSON text.
#[derive(Default)]
struct Request<'a> {
    /// The id's JSON text, as the request has it.
    id: Option<&'a str>,
    params: Option<&'a str>,
}

/// The request and its method (or what the body is, when it is not a request).
fn read_request(body: &[u8]) -> (Message<'_>, String) {
    let valid = || serde_json::from_slice::<IgnoredAny>(body).is_ok();
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let kind = if valid() { "(batch)" } else { "(invalid json)" };
        return (Message::default(), kind.to_string());
    }
    match serde_json::from_slice::<Message>(body) {
        Ok(message) => match text(message.method) {
            Some(method) => (message, method),
            None => (message, "(not a request)".to_string()),
        },
        Err(_) if valid() => (Message::default(), "(not a request)".to_string()),
        Err(_) => (Message::default(), "(invalid json)".to_string()),
    }
}

/// The protocol revision (the request's header, or what an initialize asks for) and the W3C
/// trace context a client may send in `params._meta` (as OpenTelemetry's MCP conventions say).
fn trace_context(header: Option<String>, params: &Asked) -> TraceContext {
    // Real values are short; a huge one is not worth carrying to the exporter.
    let short = |raw: Option<&str>| text_of(raw?).filter(|s| s.len() <= 512);
    let meta: Meta = read_text(params.meta);
    TraceContext {
        protocol_version: header.or_else(|| short(params.protocol_version)),
        traceparent: short(meta.traceparent.map(RawValue::get)),
        tracestate: short(meta.tracestate.map(RawValue::get)),
    }
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A string id as its text, any other id as its JSON.
fn id_text(id: &str) -> String {
    text_of(id).unwrap_or_else(|| id.to_string())
}

/// The JSON-RPC messages of a JSON or SSE body. They are bytes, not yet checked to be UTF-8:
/// a reply whose verdict is remembered is recognised without reading it as text (parsing
/// checks the rest).
fn reply_events(body: &[u8]) -> Vec<Cow<'_, [u8]>> {
    let body = body.trim_ascii_start();
    if body.first() == Some(&b'{') {
        return vec![Cow::Borrowed(body)];
    }
    sse_data(body)
}

/// The reply among `events`: the message answering `id`, else the first with a `result` or an
/// `error`.
fn find_reply<'a>(
    events: &'a [Cow<'a, [u8]>],
    id: Option<&str>,
    tool_call: bool,
) -> Option<Reply<'a>> {
    let mut first = None;
    for event in events {
        let Some(reply) = Reply::read(event, tool_call) else {
            continue;
        };
        if id.is_some_and(|id| reply.id.map(RawValue::get) == Some(id)) {
            return Some(reply);
        }
        first.get_or_insert(reply);
    }
    first
}

/// The `data` of each SSE event (multi-line data joined with newlines; a single line is
/// borrowed, not copied). One pass over the lines, found with `memchr`: replies can be large,
/// and this runs for every reply.
fn sse_data(text: &[u8]) -> Vec<Cow<'_, [u8]>> {
    let mut events = Vec::new();
    let mut data: Option<Cow<[u8]>> = None;
    let mut rest = Some(text);
    while let Some(remaining) = rest {
        let line = match memchr::memchr(b'\n', remaining) {
            Some(end) => {
                rest = Some(&remaining[end + 1..]);
                &remaining[..end]
            }
            None => {
                rest = None;
                remaining
            }
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            events.extend(data.take());
        } else if let Some(more) = line.strip_prefix(b"data:") {
            let more = more.strip_prefix(b" ").unwrap_or(more);
            data = Some(match data.take() {
                None => Cow::Borrowed(more),
                Some(so_far) => Cow::Owned([&so_far[..], b"\n", more].concat()),
            });
        }
    }
    events.extend(data);
    events
}

fn status_of(
    obs: &Exchange<'_>,
    reply: Option<&Reply>,
    expects_reply: bool,
) -> (Status, Option<i32>, Option<String>) {
    match obs.ending {
        // A client may hang up right after reading the whole reply: then the reply decides.
        // A GET stream has no reply to wait for: the client closing it is its normal end.
        Ending::Cancelled if reply.is_none() && obs.stream_get.is_none() => {
            return (
                Status::Cancelled,
                None,
                Some("the client went away before the reply was complete".into()),
            );
        }
        Ending::TimedOut => return (Status::Timeout, None, Some("the request timed out".into())),
        _ => {}
    }
    if let Some(error) = reply.and_then(|r| r.error) {
        let error: RpcError = read(Some(error));
        let code = error
            .code
            .and_then(|c| serde_json::from_str::<i64>(c.get()).ok())
            .and_then(|c| i32::try_from(c).ok());
        let message = text(error.message).map(|m| cut(&m));
        // The MCP SDKs' "request timed out" code: the handler was given up on.
        let status = if code == Some(REQUEST_TIMEOUT) {
            Status::Timeout
        } else {
            Status::Error
        };
        return (status, code, message);
    }
    if let Some(result) = reply.and_then(|r| r.result.as_ref()) {
        let (status, message) = result_status(result);
        return (status, None, message);
    }
    match obs.http_status {
        // A JSON-RPC error body was read above as the reply: this one is plain text.
        Some(code) if code >= 400 => {
            let body = String::from_utf8_lossy(obs.response);
            (
                Status::Error,
                None,
                Some(cut(&format!("HTTP {code}: {body}"))),
            )
        }
        _ if !expects_reply => (Status::Success, None, None),
        _ => (Status::Error, None, Some("no reply was sent".into())),
    }
}

/// A result's status: a tool that reported failure (`isError: true`) is a `tool_error`, with
/// its text as the message; an `InputRequiredResult` is `input_required` (the call goes on in
/// the client's retry); any other result is a success.
fn result_status(result: &Outcome) -> (Status, Option<String>) {
    let kind = match result {
        Outcome::Tool(tool) if tool.is_error == Some("true") => {
            return (Status::ToolError, Some(cut(&content_text(tool))));
        }
        Outcome::Tool(tool) => tool.result_type,
        // Parsed again only when the text mentions it at all.
        Outcome::Raw(raw) => memchr::memmem::find(raw.get().as_bytes(), b"input_required")
            .and_then(|_| serde_json::from_str::<Kind>(raw.get()).ok())
            .and_then(|kind| kind.result_type)
            .map(RawValue::get),
    };
    match kind {
        Some(INPUT_REQUIRED) => (Status::InputRequired, None),
        _ => (Status::Success, None),
    }
}

/// The tokens of what the model reads of a reply: a tool's text content, or the whole result
/// otherwise (for `tools/list`, the definitions every session pays for).
fn result_tokens(reply: &Reply, budget: &mut Budget) -> u32 {
    match &reply.result {
        Some(Outcome::Tool(result)) => {
            // Keyed by the raw text blocks: a repeated result is not decoded again.
            let mut key = TextKey::default();
            for raw in &result.texts {
                key.add(raw);
            }
            tokens::count_keyed(&key, || content_text(result), budget)
        }
        Some(Outcome::Raw(result)) => tokens::count_within(result.get(), budget),
        None => tokens::count_within(reply.error.map(RawValue::get).unwrap_or_default(), budget),
    }
}

/// The text of a tool result's content blocks, one line end between two (structured content
/// when there is no text): as decoded while the result was read, else decoded now. A single
/// block (nearly every result) is its decoded text, not copied again, or borrowed when it has
/// no escapes.
fn content_text<'r>(result: &'r ToolText<'_>) -> Cow<'r, str> {
    if let Some(decoded) = &result.decoded {
        return Cow::Borrowed(decoded);
    }
    let mut texts = result.texts.iter().filter_map(|raw| text_in(raw));
    let Some(first) = texts.next() else {
        return Cow::Borrowed(result.structured_content.unwrap_or(""));
    };
    let Some(second) = texts.next() else {
        return first;
    };
    let mut joined = first.into_owned();
    for text in std::iter::once(second).chain(texts) {
        joined.push('\n');
        joined.push_str(&text);
    }
    Cow::Owned(joined)
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_MESSAGE {
        return text.to_string();
    }
    text.chars().take(MAX_ERROR_MESSAGE).collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::ledger::entry::Micros;
    use crate::protocol::CallSpans;

    fn observe(request: &str, status: u16, response: &str) -> Observation {
        Observation {
            request_id: Uuid::new_v4(),
            session_id: Some("s".into()),
            timestamp: Utc::now(),
            duration: Micros::from_micros(1500),
            request: Bytes::from(request.to_string()),
            http_status: Some(status),
            response: Bytes::from(response.to_string()),
            response_len: response.len() as u64,
            ending: Ending::Complete,
            protocol_version: None,
            stream_get: None,
            upstream: None,
            subject: None,
        }
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"find_tasks","arguments":{"query":"hello world"}}}"#;

    /// The remembered verdict [`laid_out_verdict`] finds for a tool call's reply, if any.
    fn remembered_sse_verdict(obs: &Exchange<'_>, id: Option<&str>) -> Option<Verdict> {
        let result = laid_out_result(obs, id)?;
        SEEN.get(result_kind(true), result)?.laid_out()
    }

    #[test]
    fn a_tool_success_in_sse() {
        let sse = "data: \nid: 0\nretry: 3000\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"success\\\":true}\"}],\"isError\":false}}\nid: 1\n\n";
        let row = analyze(observe(CALL, 200, sse));
        assert_eq!(row.status, Status::Success);
        assert_eq!(row.method, "tools/call");
        assert_eq!(row.tool_name.as_deref(), Some("find_tasks"));
        assert_eq!(row.jsonrpc_id.as_deref(), Some("7"));
        assert_eq!(row.duration.millis(), 1);
        assert!(row.args_tokens.unwrap() > 0 && row.result_tokens.unwrap() > 0);
    }

    /// An answered call's row takes the store's lean INSERT, which writes the tokenizer's
    /// name (and the rest of an ordinary row's constants) instead of binding them.
    #[test]
    fn an_answered_call_s_row_takes_the_lean_insert() {
        use crate::store::request_columns::{Shape, USUAL_TOKENIZER};
        let body = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok"}]}}"#;
        let row = analyze(observe(CALL, 200, body));
        assert_eq!(row.tokenizer.as_deref(), Some(USUAL_TOKENIZER));
        assert_eq!(Shape::of(std::slice::from_ref(&row)), Shape::Lean);
    }

    #[test]
    fn a_failed_tool_is_a_tool_error() {
        let body = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"boom"}],"isError":true}}"#;
        let row = analyze(observe(CALL, 200, body));
        assert_eq!(row.status, Status::ToolError);
        assert_eq!(row.error_message.as_deref(), Some("boom"));
    }

    #[test]
    fn a_result_that_asks_for_input_is_input_required() {
        let asks = r#"{"resultType":"input_required","inputRequests":{"k":{"method":"roots/list","params":{}}},"requestState":"s"}"#;
        let body = format!(r#"{{"jsonrpc":"2.0","id":7,"result":{asks}}}"#);
        let row = analyze(observe(CALL, 200, &body));
        assert_eq!(
            (row.status, row.error_type()),
            (Status::InputRequired, None)
        );
        let prompt = r#"{"jsonrpc":"2.0","id":7,"method":"prompts/get","params":{"name":"p"}}"#;
        assert_eq!(
            analyze(observe(prompt, 200, &body)).status,
            Status::InputRequired
        );
        // A result that only mentions it is an ordinary one.
        let mentions =
            r#"{"jsonrpc":"2.0","id":7,"result":{"messages":[],"description":"input_required"}}"#;
        assert_eq!(
            analyze(observe(prompt, 200, mentions)).status,
            Status::Success
        );
        assert!(!Status::InputRequired.failed() && Status::Cancelled.failed());
    }

    #[test]
    fn json_rpc_errors_keep_code_and_message() {
        let body =
            r#"data: {"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"tool not found"}}"#;
        let row = analyze(observe(CALL, 200, body));
        assert_eq!((row.status, row.error_code), (Status::Error, Some(-32602)));
        assert_eq!(row.error_message.as_deref(), Some("tool not found"));
    }

    #[test]
    fn transport_rejections_are_errors() {
        let body = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Not Found: Session not found"}}"#;
        let row = analyze(observe(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            404,
            body,
        ));
        assert_eq!((row.status, row.error_code), (Status::Error, Some(-32600)));
        let row = analyze(observe("{not json", 400, "Bad Request: parse error"));
        assert_eq!(
            (row.status, row.method.as_str()),
            (Status::Error, "(invalid json)")
        );
    }

    #[test]
    fn odd_bodies_still_get_a_row_saying_what_they_were() {
        let method = |body: &str| analyze(observe(body, 400, "Bad Request")).method;
        assert_eq!(
            method(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            "(batch)"
        );
        assert_eq!(method("[1,"), "(invalid json)");
        assert_eq!(
            method(r#"{"jsonrpc":"2.0","id":1,"method":5}"#),
            "(not a request)"
        );
        assert_eq!(method("42"), "(not a request)");
        assert_eq!(
            method(r#"{"jsonrpc":"2.0","id":1,"params":[1,2]}"#),
            "(not a request)"
        );
    }

    #[test]
    fn a_remembered_result_shares_the_reply_when_it_lies_inside_it() {
        let whole = Bytes::from_static(b"data: {\"result\":1}\n\n");
        let inside = shared_slice(&whole, &whole[6..18]);
        assert_eq!(&inside[..], b"{\"result\":1}");
        assert_eq!(inside.as_ptr(), whole[6..].as_ptr());
        let elsewhere = b"{\"result\":1}".to_vec();
        let copied = shared_slice(&whole, &elsewhere);
        assert_eq!(copied, elsewhere);
        assert_ne!(copied.as_ptr(), elsewhere.as_ptr());
        assert!(shared_slice(&Bytes::new(), b"x") == b"x"[..]);
    }

    #[test]
    fn text_decodes_escapes_and_only_strings() {
        let raw = |json: &str| serde_json::from_str::<Box<RawValue>>(json).unwrap();
        assert_eq!(
            text(Some(&raw(r#""tools/call""#))).as_deref(),
            Some("tools/call")
        );
        assert_eq!(text(Some(&raw(r#""a\u0041\"""#))).as_deref(), Some("aA\""));
        assert_eq!(text(Some(&raw(r#""""#))).as_deref(), Some(""));
        assert_eq!(text(Some(&raw("5"))), None);
        assert_eq!(text(Some(&raw(r#"["x"]"#))), None);
        assert_eq!(text(None), None);
    }

    /// `count` seeded strings of `alphabet`'s characters, up to 2^(64 − `shift`) − 1 of them,
    /// each as serde_json encodes it.
    fn seeded_json_strings(alphabet: &str, seed: u64, count: usize, shift: u32) -> Vec<String> {
        let alphabet: Vec<char> = alphabet.chars().collect();
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let len = (state >> shift) as usize;
                let text: String = (0..len)
                    .map(|i| alphabet[(state >> (i % 48)) as usize % alphabet.len()])
                    .collect();
                serde_json::to_string(&text).unwrap()
            })
            .collect()
    }

    /// Strings decoded in one pass read as serde_json reads them: every escape, surrogate pairs,
    /// lone surrogates (no text), text that is JSON itself, and seeded random strings.
    #[test]
    fn strings_decode_as_serde_json_decodes_them() {
        let mut raws: Vec<String> = [
            r#""plain""#,
            r#""line\nend \"quoted\" back\\slash \/ \b\f\r\t""#,
            r#""\u0041\u00e9\u6771\u0000\u001f \uFFFF""#,
            r#""pair \ud83d\ude80 rocket""#,
            r#""lone \ud83d alone""#,
            r#""lone low \ude80""#,
            r#""reversed \ude80\ud83d""#,
            r#""high then text \ud83dx""#,
            r#""{\"success\":true,\"tasks\":[{\"id\":\"a\\\"b\"}]}""#,
            r#""ends with an escape \\""#,
            r#""""#,
        ]
        .map(String::from)
        .into();
        raws.extend(seeded_json_strings(
            "ab \"\\/\n\t\r\u{0}\u{8}\u{c}\u{1f}é東🚀\u{7f}{}:,",
            7,
            5_000,
            59,
        ));
        for raw in &raws {
            let expected = serde_json::from_str::<String>(raw).ok();
            assert_eq!(text_of(raw), expected, "{raw}");
        }
        assert_eq!(text_of(r#""lone \ud83d alone""#), None);
        assert_eq!(
            text_of(r#""pair \ud83d\ude80""#).as_deref(),
            Some("pair 🚀")
        );
    }

    /// A tool result laid out as rmcp writes one is read without serde, and reads as serde
    /// reads it (its texts decode as serde decodes them); any other layout, and a string serde
    /// refuses, is left to serde.
    #[test]
    fn a_result_laid_out_as_rmcp_writes_it_reads_as_serde_reads_it() {
        // Up to 127 characters: many words of eight bytes, escapes across their ends.
        let mut texts =
            seeded_json_strings("ab \"\\/\n\t\r\u{0}\u{1f}é東🚀\u{7f}{}:,x", 11, 3_000, 57);
        texts.extend(
            [
                r#""\ud83d alone""#,
                r#""\u00e9\u6771 \/ \b\f""#,
                r#""{\"a\":\"b\\\"c\"}""#,
                r#""""#,
            ]
            .map(String::from),
        );
        // Laid out as rmcp writes them: read here, as serde reads them.
        for (i, text) in texts.iter().enumerate() {
            // Decoded eight bytes at a time across escapes: serde's text.
            let decoded = serde_json::from_str::<String>(text).ok();
            assert_eq!(text_of(text), decoded, "{text}");
            let second = &texts[(i * 7 + 3) % texts.len()];
            for result in [
                format!(r#"{{"content":[{{"type":"text","text":{text}}}],"isError":false}}"#),
                format!(r#"{{"content":[{{"type":"text","text":{text}}}]}}"#),
                format!(
                    r#"{{"resultType":"complete","content":[{{"type":"text","text":{text}}},{{"type":"text","text":{second}}}],"isError":true}}"#
                ),
            ] {
                let read = json_text::laid_out(result.as_bytes());
                let mut read = read.unwrap_or_else(|| panic!("{result}"));
                let serde = tool_text_by_serde(result.as_bytes());
                let serde = serde.unwrap_or_else(|| panic!("{result}"));
                // Decoded while read, unless a text escapes a surrogate: serde's text.
                let surrogate = result.contains(r"\ud8");
                assert_eq!(read.decoded.is_some(), !surrogate, "{result}");
                assert_eq!(content_text(&read), content_text(&serde), "{result}");
                read.decoded = None;
                assert_eq!(read, serde, "{result}");
            }
        }
        // Laid out otherwise, or a string serde refuses: left to serde.
        let others: [&[u8]; 12] = [
            br#"{"content":[{"type":"text","text":"a\u0001b"}],"extra":1}"#,
            br#"{"content":[{"type":"text","text":"bad \q escape"}]}"#,
            br#"{"content":[{"type":"text","text":"short \u12G4"}]}"#,
            b"{\"content\":[{\"type\":\"text\",\"text\":\"control \x01\"}]}",
            b"{\"content\":[{\"type\":\"text\",\"text\":\"not UTF-8 \xff\"}]}",
            br#"{"content":[{"type":"text","text":"unended}]}"#,
            br#"{"content":[{"type":"text","text":"t"}],"structuredContent":{"a":1}}"#,
            br#"{"content":[{"type":"text","text":"t"}],"isError":null}"#,
            br#"{"content":[{"text":"t","type":"text"}]}"#,
            br#"{"content":[{"type":"text","text":"t"}] }"#,
            br#"{"content":[{"type":"text","text":"t"},]}"#,
            br#"{"content":[{"type":"text","text":"ends in a backslash\"#,
        ];
        for result in others {
            assert_eq!(json_text::laid_out(result), None, "{result:?}");
        }
        let empty = json_text::laid_out(br#"{"content":[]}"#);
        assert_eq!(empty, tool_text_by_serde(br#"{"content":[]}"#));
        assert!(empty.is_some_and(|read| read.texts.is_empty()));
    }

    /// A successful tool's result of one text block, its text counted by parts from its raw
    /// JSON, gets the verdict the full reading gives it, cold and warm: JSON answers of
    /// recurring objects with adversarial escapes, seeded strings, surrogates; any other result
    /// is left to the full reading.
    #[test]
    fn a_one_text_result_gets_the_verdict_of_the_full_reading() {
        let answers = tokens::answers::seeded(21, 40, 300);
        let mut texts: Vec<String> = answers
            .iter()
            .map(|(_, raw)| format!("\"{raw}\""))
            .collect();
        texts.extend(seeded_json_strings(
            "ab \"\\/\n\t\r\u{0}\u{1f}é東🚀\u{7f}{}:,x",
            11,
            1_000,
            57,
        ));
        texts.extend(
            [
                r#""\ud83d alone""#,
                r#""a\ud83d\ude80{\"k\":\"\ud83d\ude80\"}""#,
                r#""ends in \\""#,
                r#""""#,
            ]
            .map(String::from),
        );
        let mut by_parts = 0;
        for round in 0..2 {
            for text in &texts {
                for result in [
                    format!(r#"{{"content":[{{"type":"text","text":{text}}}],"isError":false}}"#),
                    format!(r#"{{"content":[{{"type":"text","text":{text}}}]}}"#),
                    format!(
                        r#"{{"resultType":"complete","content":[{{"type":"text","text":{text}}}]}}"#
                    ),
                ] {
                    let full =
                        read_result_verdict(result.as_bytes(), true, &mut Budget::unlimited());
                    let one = one_text_verdict(result.as_bytes(), &mut Budget::unlimited());
                    if let Some(one) = one {
                        by_parts += 1;
                        assert_eq!(Some(one), full, "round {round}: {result}");
                    }
                }
            }
        }
        // All but the lone surrogate.
        assert_eq!(by_parts, 2 * 3 * (texts.len() - 1));
        let others = [
            r#"{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}"#,
            r#"{"content":[{"type":"text","text":"failed"}],"isError":true}"#,
            r#"{"content":[{"type":"image","data":"AAAA"}]}"#,
            r#"{"content":[{"type":"text","text":"t"}],"structuredContent":{"a":1}}"#,
            r#"{"content":[{"type":"text","text":"t"}],"isError":null}"#,
        ];
        for result in others {
            let one = one_text_verdict(result.as_bytes(), &mut Budget::unlimited());
            assert_eq!(one, None, "{result}");
        }
        let row = analyze(observe(
            CALL,
            200,
            &format!(r#"{{"jsonrpc":"2.0","id":7,"result":{}}}"#, others[0]),
        ));
        assert_eq!(row.result_tokens, Some(to_i32(tokens::count("a\nb"))));
    }

    /// Board answers whose every task is new: what the full reading costs
    /// ([`new_text_read_whole`]), what the reading by parts costs when no part is remembered
    /// (the request path's try within its budget, then the writer's: [`new_text_by_parts`]),
    /// and the same text again ([`known_text_by_parts`]). For instruction counts, not a test:
    /// `valgrind --tool=callgrind` on a release build of it, then `callgrind_annotate
    /// --inclusive=yes` (BENCHMARKS.md, branch `count11`).
    #[test]
    #[ignore = "a measurement under callgrind"]
    fn the_cost_of_new_text_read_whole_and_by_parts() {
        tokens::warm_up();
        let words = [
            "cache", "ledger", "board", "token", "session", "wire", "the", "to",
        ];
        let mut n = 0usize;
        let mut next = || {
            n += 1;
            n
        };
        let results: Vec<String> = (0..200)
            .map(|answer| {
                let tasks: Vec<serde_json::Value> = (0..1 + answer % 20)
                    .map(|_| {
                        let i = next();
                        let title: Vec<&str> = (0..6).map(|w| words[(i * 7 + w * 3) % 8]).collect();
                        serde_json::json!({
                            "assignee": "Claude Code",
                            "created_at": format!("2026-12-06T{:02}:{:02}:{:02}.{i:06}Z", i % 24, i % 60, i / 60 % 60),
                            "description": format!("{} {i}.", title.join(" ")),
                            "feature": "ledger",
                            "id": format!("3f2c9a1e-8b7d-4c2a-9e1f-{i:012}"),
                            "project_id": "0b5e4f1c-2d3a-4b5c-8d9e-000000000001",
                            "status": "todo",
                            "task_order": i,
                            "title": format!("Task {i}: {}", title.join(" ")),
                            "updated_at": format!("2026-12-06T{:02}:{:02}:{:02}.{i:06}Z", i % 24, i % 60, i / 60 % 60),
                        })
                    })
                    .collect();
                let count = tasks.len();
                let text = serde_json::json!({"count": count, "has_more": false, "page": 1, "per_page": count, "tasks": tasks, "total": count}).to_string();
                let text = serde_json::to_string(&text).unwrap();
                format!(r#"{{"content":[{{"type":"text","text":{text}}}],"isError":false}}"#)
            })
            .collect();
        let whole = new_text_read_whole(&results);
        assert_eq!(new_text_by_parts(&results), whole);
        assert_eq!(known_text_by_parts(&results), whole);
    }

    #[inline(never)]
    fn new_text_read_whole(results: &[String]) -> Vec<Option<Verdict>> {
        let all = results.iter();
        all.map(|r| read_result_verdict(r.as_bytes(), true, &mut Budget::unlimited()))
            .collect()
    }

    #[inline(never)]
    fn new_text_by_parts(results: &[String]) -> Vec<Option<Verdict>> {
        let all = results.iter();
        all.map(|r| {
            let request_path = &mut Budget::of(REQUEST_PATH_BUDGET);
            let tried = one_text_verdict(r.as_bytes(), request_path);
            assert!(request_path.exceeded(), "{tried:?}");
            one_text_verdict(r.as_bytes(), &mut Budget::unlimited())
        })
        .collect()
    }

    #[inline(never)]
    fn known_text_by_parts(results: &[String]) -> Vec<Option<Verdict>> {
        let all = results.iter();
        all.map(|r| one_text_verdict(r.as_bytes(), &mut Budget::of(0)))
            .collect()
    }

    /// A tool's text blocks count as the text serde_json decodes from them, joined by line
    /// ends; a block with a lone surrogate is no text, as before.
    #[test]
    fn a_tool_result_counts_its_decoded_text() {
        let blocks = [
            (
                r#"[{"type":"text","text":"{\"a\":\"b\\n\u00e9 \ud83d\ude80\"}"}]"#,
                "{\"a\":\"b\\n\u{e9} \u{1f680}\"}",
            ),
            (
                r#"[{"type":"text","text":"one"},{"type":"text","text":"t\two"}]"#,
                "one\nt\two",
            ),
            (
                r#"[{"type":"text","text":"x \ud800"},{"type":"text","text":"kept"}]"#,
                "kept",
            ),
            (r#"[{"type":"image","data":"AAAA"}]"#, ""),
        ];
        for (content, text) in blocks {
            let body = format!(r#"{{"jsonrpc":"2.0","id":7,"result":{{"content":{content}}}}}"#);
            let row = analyze(observe(CALL, 200, &body));
            assert_eq!(row.status, Status::Success, "{body}");
            assert_eq!(
                row.result_tokens,
                Some(to_i32(tokens::count(text))),
                "{body}"
            );
        }
        let body = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"a \"b\"\nc"}],"isError":true}}"#;
        let row = analyze(observe(CALL, 200, body));
        assert_eq!(row.error_message.as_deref(), Some("a \"b\"\nc"));
    }

    #[test]
    fn ids_trace_context_and_odd_error_codes_are_read() {
        let request = r#"{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"name":"t","arguments":{},"_meta":{"traceparent":"00-abc-def-01","tracestate":7}}}"#;
        let reply = r#"{"jsonrpc":"2.0","id":"a\"b","error":{"code":1.5,"message":"odd \u00e9"}}"#;
        let row = analyze(observe(request, 200, reply));
        assert_eq!(row.jsonrpc_id.as_deref(), Some("a\"b"));
        assert_eq!(row.trace.traceparent.as_deref(), Some("00-abc-def-01"));
        assert_eq!(row.trace.tracestate, None);
        assert_eq!(
            (row.status, row.error_code, row.error_message.as_deref()),
            (Status::Error, None, Some("odd \u{e9}"))
        );
    }

    #[test]
    fn the_reply_answering_the_request_wins_over_other_events() {
        let sse = "data: {\"jsonrpc\":\"2.0\",\"id\":99,\"error\":{\"code\":-1,\"message\":\"other\"}}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\ndata: \"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}}\n\n";
        let row = analyze(observe(CALL, 200, sse));
        assert_eq!(row.status, Status::Success, "{row:?}");
    }

    #[test]
    fn a_reply_that_is_not_utf8_is_no_reply_and_sse_lines_may_end_in_crlf() {
        let mut obs = observe(CALL, 200, "");
        obs.response = Bytes::from_static(
            b"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"\xff\"}]}}\n\n",
        );
        for _ in 0..2 {
            let row = analyze(obs.clone());
            assert_eq!(row.status, Status::Error, "{row:?}");
            assert_eq!(row.error_message.as_deref(), Some("no reply was sent"));
        }
        let crlf = "event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\r\ndata: \"result\":{\"content\":[{\"type\":\"text\",\"text\":\"boom\"}],\"isError\":true}}\r\n\r\n";
        let row = analyze(observe(CALL, 200, crlf));
        assert_eq!(
            (row.status, row.error_message.as_deref()),
            (Status::ToolError, Some("boom"))
        );
    }

    #[test]
    fn a_remembered_result_gets_the_same_verdict_as_a_full_reading() {
        let replies = [
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"a \"quoted\" text"}],"isError":false}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"boom"}],"isError":true}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":"not blocks","isError":true}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"structuredContent":{"n":1}}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"x"}]}}"#,
        ];
        for body in replies {
            for request in [CALL, r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#] {
                let obs = observe(request, 200, body);
                let events = reply_events(&obs.response);
                let (message, method) = read_request(&obs.request);
                let id = message.id.map(RawValue::get);
                let tool_call = method == "tools/call";
                assert!(own_result(&events, id.unwrap()).is_some(), "{body}");
                let all = &mut Budget::unlimited();
                let x = Exchange::from(&obs);
                let full = read_verdict(&x, &events, id, tool_call, all);
                let reply = Some(&obs.response);
                // Twice: the first fills the memo, the second is answered from it.
                assert_eq!(judge(&x, &events, id, tool_call, reply, all), full);
                assert_eq!(judge(&x, &events, id, tool_call, reply, all), full);
                // The request path reaches the same verdict from the memo, counting nothing.
                let none = &mut Budget::of(0);
                assert_eq!(judge(&x, &events, id, tool_call, None, none), full);
                assert!(!none.exceeded(), "{body}");
            }
        }
        // Not rmcp's layout (or another id): read in full.
        let spaced = r#"{"jsonrpc": "2.0", "id": 7, "result": {}}"#;
        assert!(own_result(&reply_events(spaced.as_bytes()), "7").is_none());
    }

    /// A reply recognised from its remembered result without its lines being split gets the
    /// verdict a full reading gives, and only a one-line SSE event is recognised that way.
    #[test]
    fn a_remembered_sse_reply_gets_the_same_verdict_as_a_full_reading() {
        let reply = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"one line sse"}],"isError":true}}"#;
        let pretty = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\n\"content\":\"pretty sse\"}}";
        let bodies = [
            format!("data: {reply}\n\n"),
            format!("data: {reply}\nid: 0/1\nretry: 3000\n\n"),
            format!("data: {reply}\n\nid: 0/1\n\n"),
            format!("data: {reply}\ndata: {reply}\n\n"),
            format!("data: {reply}\r\n\r\n"),
            // Remembered from a JSON body, its line end then splits the SSE event.
            pretty.to_string(),
            format!("data: {pretty}\n\n"),
            // A direct call's answer, in one frame with the priming event.
            format!("data: \nid: 0/1\nretry: 3000\n\ndata: {reply}\nid: 0/2\n\n"),
            // Not a priming event: an event field the reply's reading may not skip.
            format!("data: \nevent: x\n\ndata: {reply}\n\n"),
            format!("data: \nid: 0/1\n\ndata: {pretty}\n\n"),
        ];
        for body in &bodies {
            let obs = observe(CALL, 200, body);
            let events = reply_events(&obs.response);
            let id = read_request(&obs.request).0.id.map(RawValue::get);
            let x = Exchange::from(&obs);
            let full = read_verdict(&x, &events, id, true, &mut Budget::unlimited());
            for _ in 0..2 {
                let row = analyze(obs.clone());
                let seen = (row.status, row.error_message, row.result_tokens);
                let expected = (
                    full.status,
                    full.error_message.clone(),
                    Some(to_i32(full.result_tokens)),
                );
                assert_eq!(seen, expected, "{body:?}");
            }
        }
        let one_line = observe(CALL, 200, &bodies[1]);
        let id = read_request(&one_line.request).0.id.map(RawValue::get);
        assert!(remembered_sse_verdict(&Exchange::from(&one_line), id).is_some());
        let split = observe(CALL, 200, &bodies[6]);
        assert!(remembered_sse_verdict(&Exchange::from(&split), id).is_none());
        let primed = observe(CALL, 200, &bodies[7]);
        assert!(remembered_sse_verdict(&Exchange::from(&primed), id).is_some());
        let evented = observe(CALL, 200, &bodies[8]);
        assert!(remembered_sse_verdict(&Exchange::from(&evented), id).is_none());
    }

    /// The request path's analysis gives the writer's row once the reply's verdict and counts
    /// are remembered, and gives up (remembering nothing) before counting a new long text.
    #[test]
    fn the_request_path_analyses_only_what_is_remembered() {
        let text = "a tool result long enough to pass the request path's budget ".repeat(8);
        let body = format!(
            r#"data: {{"jsonrpc":"2.0","id":7,"result":{{"content":[{{"type":"text","text":"{text}"}}],"isError":false}}}}"#
        ) + "\n\n";
        let obs = observe(CALL, 200, &body);
        let reply = Some(&obs.response);
        assert_eq!(analyze_remembered(&Exchange::from(&obs), reply), None);
        assert_eq!(
            analyze_remembered(&Exchange::from(&obs), reply),
            None,
            "still new"
        );
        let full = analyze(obs.clone());
        let fast = analyze_remembered(&Exchange::from(&obs), None).expect("remembered now");
        assert_eq!(*fast, full);
        assert!(fast.result_tokens > Some(50), "{fast:?}");
        // A new result over the budget is left to the writer unread, even when its text's
        // count is remembered (here from the result above): its length decides.
        let failed = body.replace(r#""isError":false"#, r#""isError":true"#);
        let obs = observe(CALL, 200, &failed);
        let reply = Some(&obs.response);
        assert_eq!(analyze_remembered(&Exchange::from(&obs), reply), None);
        let full = analyze(obs.clone());
        assert_eq!(
            (full.status, full.result_tokens),
            (Status::ToolError, fast.result_tokens)
        );
        let fast = analyze_remembered(&Exchange::from(&obs), None).expect("remembered now");
        assert_eq!(*fast, full);
        // A short error needs no memo.
        let error = r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"no such tool"}}"#;
        let row = analyze_remembered(&Exchange::from(&observe(CALL, 200, error)), None);
        assert_eq!(row.map(|r| r.status), Some(Status::Error));
    }

    /// A verdict the request path works out whole is remembered with the reply's bytes, so the
    /// next such reply is not read again.
    #[test]
    fn the_request_path_remembers_a_verdict_it_worked_out_whole() {
        // The request path counts once the writer's analysis has built the encoding.
        tokens::warm_up();
        let body = "data: \nid: 0\nretry: 3000\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"short, and only this test's\"}],\"isError\":false}}\nid: 1\n\n";
        let obs = observe(CALL, 200, body);
        let exchange = Exchange::from(&obs);
        let id = read_request(&obs.request).0.id.map(RawValue::get);
        assert!(remembered_sse_verdict(&exchange, id).is_none());
        let row = analyze_remembered(&exchange, None).expect("within the budget");
        assert!(
            remembered_sse_verdict(&exchange, id).is_none(),
            "not without bytes"
        );
        assert_eq!(
            analyze_remembered(&exchange, Some(&obs.response)),
            Some(row.clone())
        );
        let verdict = remembered_sse_verdict(&exchange, id).expect("remembered");
        assert_eq!(verdict.status, Status::Success);
        assert_eq!(Some(to_i32(verdict.result_tokens)), row.result_tokens);
        assert_eq!(analyze(obs.clone()), *row);
    }

    /// A new answer made of parts seen before, sent as a direct call sends it, gets on the
    /// request path the row the writer's full reading gives, and its verdict is remembered as
    /// one line; split over two `data:` lines (no longer rmcp's layout), it is never given
    /// another row.
    #[test]
    fn a_new_answer_of_known_parts_laid_out_by_rmcp_gets_the_full_reading_s_row() {
        tokens::warm_up();
        let task = |i: usize| {
            serde_json::json!({
                "id": format!("laid-out-{i:04}"),
                "status": "todo",
                "task_order": i,
                "title": format!("Task {i} of the answer laid out as rmcp writes it"),
            })
        };
        let answer = |tasks: std::ops::Range<usize>| {
            let tasks: Vec<_> = tasks.map(task).collect();
            let text = serde_json::json!({"count": tasks.len(), "tasks": tasks}).to_string();
            let text = serde_json::to_string(&text).expect("a JSON string");
            format!(
                r#"{{"jsonrpc":"2.0","id":7,"result":{{"content":[{{"type":"text","text":{text}}}],"isError":false}}}}"#
            )
        };
        let primed =
            |reply: &str| format!("data: \nid: 0/1\nretry: 3000\n\ndata: {reply}\nid: 0/2\n\n");
        // The writer reads the first answer whole and remembers its parts' counts.
        analyze(observe(CALL, 200, &primed(&answer(0..12))));
        let second = answer(2..10);
        assert!(second.len() > 4 * REQUEST_PATH_BUDGET, "{}", second.len());
        let obs = observe(CALL, 200, &primed(&second));
        let exchange = Exchange::from(&obs);
        let id = read_request(&obs.request).0.id.map(RawValue::get);
        assert!(
            remembered_sse_verdict(&exchange, id).is_none(),
            "a new answer"
        );
        let row = analyze_remembered(&exchange, Some(&obs.response)).expect("known parts");
        let events = reply_events(&obs.response);
        let full = read_verdict(&exchange, &events, id, true, &mut Budget::unlimited());
        assert_eq!(
            (row.status, row.result_tokens),
            (full.status, Some(to_i32(full.result_tokens)))
        );
        assert!(full.result_tokens > 100, "{full:?}");
        let verdict = remembered_sse_verdict(&exchange, id).expect("remembered as one line");
        assert_eq!(verdict, full);
        assert_eq!(analyze(obs.clone()), *row);
        // The same kind of answer with its text split over two data lines: that line end is
        // in the text as the layout would find it, so the request path gives up on it.
        let third = answer(3..11);
        let cut = third.find("Task 5").expect("a title");
        let split = format!("data: {}\ndata: {}\n\n", &third[..cut], &third[cut..]);
        let obs = observe(CALL, 200, &split);
        let exchange = Exchange::from(&obs);
        assert_eq!(analyze_remembered(&exchange, Some(&obs.response)), None);
        let written = analyze(obs.clone());
        assert_eq!(
            written.status,
            Status::Error,
            "no reply could be read: {written:?}"
        );
        let again = analyze_remembered(&exchange, Some(&obs.response));
        assert!(again.is_none_or(|row| *row == written), "{written:?}");
    }

    /// A `tools/call` read in one pass gives the row the two-pass reading gives.
    #[test]
    fn a_tool_call_read_in_one_pass_reads_as_in_two() {
        let calls = [
            CALL,
            r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"t","arguments":{"a":[1]},"_meta":{"traceparent":"00-1-2-01"},"extra":true}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1,2]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"t"}}"#,
            r#"["tools/call",1,{"name":"t"}]"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"c"}}"#,
        ];
        for body in calls {
            let (fast, method, params) = read_request_and_params(body.as_bytes());
            let (slow, slow_method) = read_request(body.as_bytes());
            let slow_params: Params = read(slow.params);
            assert_eq!(method, slow_method, "{body}");
            let raw = |v: Option<&RawValue>| v.map(|v| v.get().to_string());
            assert_eq!(fast.id, slow.id.map(RawValue::get), "{body}");
            assert_eq!(raw(params.name), raw(slow_params.name), "{body}");
            assert_eq!(raw(params.arguments), raw(slow_params.arguments), "{body}");
            assert_eq!(raw(params.meta), raw(slow_params.meta), "{body}");
            let row = analyze(observe(body, 200, ""));
            assert_eq!(row.method, slow_method, "{body}");
        }
    }

    #[test]
    fn a_request_the_protocol_layer_read_gets_the_same_row_as_one_parsed_again() {
        let bodies = [
            CALL,
            r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"t","arguments":{"a":[1]},"_meta":{"traceparent":"00-1-2-01","tracestate":"k=v"},"extra":true}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#" {"jsonrpc":"2.0","id":"\u0078y","method":"tools\/call","params":{"name":"t\n","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"c"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"arguments":null,"name":"\u0074"}}"#,
        ];
        let reply =
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok"}]}}"#;
        let mut plain = 0;
        for body in bodies {
            let mut envelope = crate::protocol::Envelope::parse(Bytes::from(body), None)
                .unwrap_or_else(|e| panic!("{body}: {e:?}"));
            let read = ReadRequest::of(&envelope);
            let read = read.unwrap_or_else(|| panic!("{body}: not read"));
            // As the gate leaves a plain call: its name and arguments found.
            let message = envelope.single().unwrap_or_else(|| panic!("{body}"));
            if let Some(call) = envelope.params(message).and_then(CallSpans::read) {
                envelope.note_plain_call(0, call);
            }
            let gated = ReadRequest::of(&envelope).unwrap_or_else(|| panic!("{body}"));
            plain += usize::from(gated.call.is_some());
            let obs = observe(body, 200, reply);
            let parsed = analyze_within(&Exchange::from(&obs), None, &mut Budget::unlimited());
            for read in [&read, &gated] {
                assert!(already_read(&obs.request, read).is_some(), "{body}");
                let exchange = Exchange {
                    read: Some(read),
                    ..Exchange::from(&obs)
                };
                let reused = analyze_within(&exchange, None, &mut Budget::unlimited());
                assert_eq!(reused, parsed, "{body}");
            }
        }
        assert_eq!(plain, 3, "the plain calls among the bodies");
    }

    #[test]
    fn notifications_accepted_are_successes() {
        let row = analyze(observe(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            202,
            "",
        ));
        assert_eq!(
            (row.status, row.jsonrpc_id.clone()),
            (Status::Success, None)
        );
    }

    #[test]
    fn cancelled_requests_say_so() {
        let mut obs = observe(CALL, 200, "");
        obs.ending = Ending::Cancelled;
        assert_eq!(analyze(obs.clone()).status, Status::Cancelled);
    }

    #[test]
    fn a_reply_read_in_full_decides_even_if_the_client_hung_up() {
        let body = r#"data: {"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}"#;
        let mut obs = observe(CALL, 200, body);
        obs.ending = Ending::Cancelled;
        assert_eq!(analyze(obs.clone()).status, Status::Success);
    }
}
