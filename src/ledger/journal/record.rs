//! One journal record: `[len: u32][crc32: u32][stamp: u64][payload]`, little-endian, where
//! `payload` is an analysed [`LedgerRow`] (version 3) or an [`Observation`] (versions 1 and 2)
//! in a fixed binary layout, and `stamp` is the segment's own random stamp (see [`super`]: a
//! recycled segment file still holds an earlier life's records after the new ones, and those
//! carry another stamp). The checksum covers the stamp and the payload. No JSON: the request
//! path pays for a few hundred bytes of row (or, for a reply it could not analyse, a copy of
//! a few header fields and of the raw exchange into the mapped segment, or one `writev` of
//! them where it is not mapped). Segments of the first layout (no
//! stamp: `[len][crc32][payload]`, checksum over the payload) are still read.
//!
//! Row payload (version 3): version `u8`, request id (16 bytes), timestamp (`i64` µs since the
//! epoch), duration (`u64` µs), status `u8` (see [`status_code`]), sanitized `u8`, request and
//! response bytes (`i64` each), then four optional `i32`s (a `u8` 0 for none, or 1 and the
//! value): error code, argument, result and total tokens; the subject (`u8` 0, or 1 and 16
//! bytes); nine byte strings as below: session id, JSON-RPC id, method, tool name, error
//! message, tokenizer, protocol version, traceparent, tracestate; and the upstream hop (`u8` 0,
//! or 1, upstream, tool and its duration). Rows are journaled before pricing: cost and pricing
//! model are worked out again when they are replayed.
//!
//! Observation payload: version `u8`, request id (16 bytes), timestamp (`i64` µs since the epoch), duration
//! (`u64` µs), full response length `u64`, HTTP status `u16` (0: none), ending `u8`, stream GET
//! `u8` (0: a message, 1: open, 2: replay), the subject (version 2 only: `u8` 0 for none, or 1
//! and 16 bytes of id), then four
//! byte strings, each a `u32` length and the bytes (`u32::MAX`: absent): session id, protocol
//! version, request, kept response. A request passed on to another server adds its upstream
//! hop: two more byte strings (upstream, its tool) and its share of the duration (`u64` µs);
//! a record without them has none.

use std::io::{IoSlice, Write};
use std::sync::atomic::{Ordering, fence};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ledger::entry::{
    Ending, Entry, Exchange, LedgerRow, Micros, Observation, Status, StreamGet, TraceContext,
    UpstreamHop,
};

const VERSION: u8 = 2;
/// An analysed row.
const VERSION_ROW: u8 = 3;
/// Records of this version (before the subject) are still read.
const VERSION_WITHOUT_SUBJECT: u8 = 1;
/// `len` and `crc32` (the first layout's whole header).
pub const HEADER: usize = 8;
/// `len`, `crc32` and the segment's stamp.
pub const STAMPED_HEADER: usize = HEADER + 8;
const ABSENT: u32 = u32::MAX;

/// What a record holds: an analysed row, or an exchange the request path could not analyse
/// (written straight from the fields it has, see [`Exchange`]).
#[derive(Clone, Copy)]
pub enum Record<'a> {
    Row(&'a LedgerRow),
    Exchange(Exchange<'a>),
}

/// A record ready to be written: a row's payload encoded (outside the journal's lock), or an
/// exchange and its size (written from its parts, without a copy). The stamped header is laid
/// out as the record is put (see [`lay_out`]).
pub enum Encoded<'a> {
    /// The payload.
    Row(Vec<u8>),
    Exchange(Exchange<'a>, u64),
}

impl<'a> Encoded<'a> {
    pub fn new(record: &Record<'a>) -> std::io::Result<Self> {
        match record {
            Record::Row(row) => Ok(Encoded::Row(encode_row(row))),
            Record::Exchange(exchange) => Ok(Encoded::Exchange(*exchange, size(exchange)?)),
        }
    }

    /// The bytes [`write`] writes.
    pub fn size(&self) -> u64 {
        match self {
            Encoded::Row(payload) => (STAMPED_HEADER + payload.len()) as u64,
            Encoded::Exchange(_, size) => *size,
        }
    }
}

/// Writes `record` stamped with `stamp` at the file's current offset, with one system call;
/// the caller holds the segment (writes are never concurrent) and has positioned the file.
/// Returns the bytes written.
pub fn write(file: &std::fs::File, stamp: u64, record: &Encoded<'_>) -> std::io::Result<u64> {
    lay_out(stamp, record, |header, body| {
        write_parts(file, header, body)
    })
}

/// Copies `record` stamped with `stamp` into `into` (a mapped segment's bytes where it goes,
/// exactly its size). A process killed during the copy leaves a record that reads as the end
/// of the segment, not as damage: the stamp, which a reader checks first, is cleared first
/// and written last, after the body, the length and the checksum. Returns the bytes copied.
pub fn copy(into: &mut [u8], stamp: u64, record: &Encoded<'_>) -> std::io::Result<u64> {
    lay_out(stamp, record, |header, body| copy_parts(into, header, body))
}

/// Hands `put` the record's stamped header and its body (in parts, borrowed: nothing is
/// copied to lay them out).
fn lay_out<R>(
    stamp: u64,
    record: &Encoded<'_>,
    put: impl FnOnce(&[u8; STAMPED_HEADER], &[&[u8]]) -> std::io::Result<R>,
) -> std::io::Result<R> {
    match record {
        Encoded::Row(payload) => {
            let body = payload.as_slice();
            put(
                &stamped_header(length_of(body.len())?, stamp, &[body]),
                &[body],
            )
        }
        Encoded::Exchange(exchange, _) => lay_out_exchange(stamp, exchange, put),
    }
}

/// The length, the checksum (of the stamp and the body) and the stamp.
fn stamped_header(len: u32, stamp: u64, body: &[&[u8]]) -> [u8; STAMPED_HEADER] {
    let stamp = stamp.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&stamp);
    body.iter().for_each(|part| crc.update(part));
    let mut header = [0u8; STAMPED_HEADER];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..HEADER].copy_from_slice(&crc.finalize().to_le_bytes());
    header[HEADER..].copy_from_slice(&stamp);
    header
}

/// The most parts a body has (an exchange's).
const MAX_PARTS: usize = 14;

fn write_parts(
    mut file: &std::fs::File,
    header: &[u8; STAMPED_HEADER],
    body: &[&[u8]],
) -> std::io::Result<u64> {
    let mut slices = [IoSlice::new(header); MAX_PARTS + 1];
    for (slice, part) in slices[1..].iter_mut().zip(body) {
        *slice = IoSlice::new(part);
    }
    let total = STAMPED_HEADER + body.iter().map(|p| p.len()).sum::<usize>();
    let written = file.write_vectored(&slices[..=body.len().min(MAX_PARTS)])?;
    if written != total {
        // Only a full disk does this to a regular file; the tail left behind fails its CRC.
        return Err(std::io::Error::other(format!(
            "short write to the ledger journal ({written} of {total} bytes)"
        )));
    }
    Ok(total as u64)
}

fn copy_parts(
    into: &mut [u8],
    header: &[u8; STAMPED_HEADER],
    body: &[&[u8]],
) -> std::io::Result<u64> {
    let total = STAMPED_HEADER + body.iter().map(|p| p.len()).sum::<usize>();
    if into.len() != total {
        return Err(std::io::Error::other(format!(
            "a ledger journal record of {total} bytes given {} bytes of room",
            into.len()
        )));
    }
    let (head, mut rest) = into.split_at_mut(STAMPED_HEADER);
    // What was here before (a recycled file's records, or this record's failed earlier write)
    // must not pass for this segment's stamp while the body is half copied. The fences keep
    // the compiler (and the CPU) from reordering the stores: a kill lands between two of them.
    head[HEADER..].fill(0);
    fence(Ordering::Release);
    for part in body {
        let (to, after) = rest.split_at_mut(part.len());
        to.copy_from_slice(part);
        rest = after;
    }
    head[..HEADER].copy_from_slice(&header[..HEADER]);
    fence(Ordering::Release);
    head[HEADER..].copy_from_slice(&header[HEADER..]);
    Ok(total as u64)
}

/// A row's fixed-size fields at most: the version, id, timestamp, duration, status, sanitized
/// flag, the two sizes, four optional `i32`s and the subject.
const ROW_FIXED: usize = 1 + 16 + 8 + 8 + 1 + 1 + 8 + 8 + 4 * 5 + 17;

/// A row's payload (its record's stamped header is laid out when it is put). The
/// fixed-size fields are laid out in an array on the stack and the record's buffer is
/// allocated at its exact size: appended field by field, each of the ~30 appends checked the
/// buffer's room (BENCHMARKS.md, branch `rq35`).
fn encode_row(row: &LedgerRow) -> Vec<u8> {
    let mut fixed = [0u8; ROW_FIXED];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        fixed[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&[VERSION_ROW]);
    put(row.request_id.as_bytes());
    put(&row.timestamp.timestamp_micros().to_le_bytes());
    put(&row.duration.micros().to_le_bytes());
    put(&[status_code(row.status), u8::from(row.sanitized)]);
    put(&row.request_bytes.to_le_bytes());
    put(&row.response_bytes.to_le_bytes());
    for n in [
        row.error_code,
        row.args_tokens,
        row.result_tokens,
        row.total_tokens,
    ] {
        match n {
            None => put(&[0]),
            Some(n) => {
                let [a, b, c, d] = n.to_le_bytes();
                put(&[1, a, b, c, d]);
            }
        }
    }
    match row.subject {
        None => put(&[0]),
        Some(id) => {
            put(&[1]);
            put(id.as_bytes());
        }
    }
    let trace = &row.trace;
    let texts = [
        row.session_id.as_deref(),
        row.jsonrpc_id.as_deref(),
        Some(row.method.as_str()),
        row.tool_name.as_deref(),
        row.error_message.as_deref(),
        row.tokenizer.as_deref(),
        trace.protocol_version.as_deref(),
        trace.traceparent.as_deref(),
        trace.tracestate.as_deref(),
    ];
    let hop = row.upstream.as_ref();
    let text_size = |text: Option<&str>| 4 + text.map_or(0, str::len);
    let size = at
        + texts.iter().map(|text| text_size(*text)).sum::<usize>()
        + 1
        + hop.map_or(0, |h| {
            text_size(Some(&h.upstream)) + text_size(h.tool.as_deref()) + 8
        });
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&fixed[..at]);
    for text in texts {
        put_text(&mut out, text);
    }
    match hop {
        None => out.push(0),
        Some(hop) => {
            out.push(1);
            put_text(&mut out, Some(&hop.upstream));
            put_text(&mut out, hop.tool.as_deref());
            out.extend_from_slice(&hop.duration.micros().to_le_bytes());
        }
    }
    out
}

/// Appends a byte string: its length and bytes, or the absent length alone.
fn put_text(out: &mut Vec<u8>, text: Option<&str>) {
    let (len, bytes) = text_parts(text);
    out.extend_from_slice(&len);
    out.extend_from_slice(bytes);
}

/// A status's code in a row record (stable: records outlive the binary that wrote them).
fn status_code(status: Status) -> u8 {
    match status {
        Status::Success => 0,
        Status::Error => 1,
        Status::ToolError => 2,
        Status::Cancelled => 3,
        Status::Timeout => 4,
        Status::InputRequired => 5,
    }
}

fn status_of_code(code: u8) -> Option<Status> {
    Some(match code {
        0 => Status::Success,
        1 => Status::Error,
        2 => Status::ToolError,
        3 => Status::Cancelled,
        4 => Status::Timeout,
        5 => Status::InputRequired,
        _ => return None,
    })
}

/// The stamped header and the fixed-size fields, up to and including the subject.
const FIXED: usize = STAMPED_HEADER + 1 + 16 + 8 + 8 + 8 + 2 + 1 + 1 + 1 + 16;

/// The bytes [`lay_out_exchange`] lays out for `record`.
fn size(record: &Exchange<'_>) -> std::io::Result<u64> {
    let text = |t: Option<&str>| 4 + t.map_or(0, str::len);
    let hop = record
        .upstream
        .map_or(0, |h| text(Some(&h.upstream)) + text(h.tool.as_deref()) + 8);
    let fixed = FIXED - record.subject.map_or(16, |_| 0);
    let total = fixed
        + text(record.session_id)
        + text(record.protocol_version)
        + 4
        + length(record.request)? as usize
        + 4
        + length(record.response)? as usize
        + hop;
    Ok(total as u64)
}

/// Lays out an exchange's record for `put`: every part is on the stack or borrowed, nothing
/// is allocated or copied.
fn lay_out_exchange<R>(
    stamp: u64,
    record: &Exchange<'_>,
    put: impl FnOnce(&[u8; STAMPED_HEADER], &[&[u8]]) -> std::io::Result<R>,
) -> std::io::Result<R> {
    let mut fixed = [0u8; FIXED];
    let used = fixed_fields(record, &mut fixed);
    let (session_len, session) = text_parts(record.session_id);
    let (protocol_len, protocol) = text_parts(record.protocol_version);
    let request_len = length(record.request)?.to_le_bytes();
    let response_len = length(record.response)?.to_le_bytes();
    let hop = record.upstream;
    let (upstream_len, upstream) = text_parts(hop.map(|h| h.upstream.as_str()));
    let (tool_len, tool) = text_parts(hop.and_then(|h| h.tool.as_deref()));
    let hop_duration = hop.map_or(0, |h| h.duration.micros()).to_le_bytes();
    // A request Steward answered itself has no hop: none of its three fields.
    let hop_parts: [&[u8]; 5] = match hop {
        Some(_) => [&upstream_len, upstream, &tool_len, tool, &hop_duration],
        None => [&[]; 5],
    };
    let [a, b, c, d, e] = hop_parts;
    let body: [&[u8]; MAX_PARTS] = [
        &fixed[STAMPED_HEADER..used],
        &session_len,
        session,
        &protocol_len,
        protocol,
        &request_len,
        record.request,
        &response_len,
        record.response,
        a,
        b,
        c,
        d,
        e,
    ];
    let len = length_of(body.iter().map(|p| p.len()).sum())?;
    put(&stamped_header(len, stamp, &body), &body)
}

/// Fills in the fixed-size fields after the header; returns how many bytes of `fixed` they
/// take (the subject's id only when there is one).
fn fixed_fields(record: &Exchange<'_>, fixed: &mut [u8; FIXED]) -> usize {
    let subject_flag = [u8::from(record.subject.is_some())];
    let subject = record.subject.as_ref().map_or(&[][..], |id| id.as_bytes());
    let fields: [&[u8]; 10] = [
        &[VERSION],
        record.request_id.as_bytes(),
        &record.timestamp.timestamp_micros().to_le_bytes(),
        &record.duration.micros().to_le_bytes(),
        &record.response_len.to_le_bytes(),
        &record.http_status.unwrap_or(0).to_le_bytes(),
        &[ending_code(record.ending)],
        &[match record.stream_get {
            None => 0,
            Some(StreamGet::Open) => 1,
            Some(StreamGet::Replay) => 2,
        }],
        &subject_flag,
        subject,
    ];
    let mut at = STAMPED_HEADER;
    for field in fields {
        fixed[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    at
}

/// A byte string's length prefix and bytes; absent (or, impossibly for a header value, 4 GiB
/// or more) is the `ABSENT` length and no bytes.
fn text_parts(text: Option<&str>) -> ([u8; 4], &[u8]) {
    match text {
        // Header values are far below 4 GiB (hyper bounds them).
        Some(text) if text.len() < ABSENT as usize => {
            ((text.len() as u32).to_le_bytes(), text.as_bytes())
        }
        _ => (ABSENT.to_le_bytes(), &[]),
    }
}

fn length(bytes: &[u8]) -> std::io::Result<u32> {
    length_of(bytes.len())
}

fn length_of(n: usize) -> std::io::Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| *n != ABSENT)
        .ok_or_else(|| std::io::Error::other("a ledger journal record cannot exceed 4 GiB"))
}

fn ending_code(ending: Ending) -> u8 {
    match ending {
        Ending::Complete => 0,
        Ending::Cancelled => 1,
        Ending::TimedOut => 2,
    }
}

/// Why a record could not be read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Damage {
    /// The file ends inside a record (a write cut short by a crash or power loss).
    TornTail,
    /// The checksum does not match the bytes.
    Checksum,
    /// The checksum matches but the layout does not (another version, or a bug).
    Undecodable,
}

impl Damage {
    pub fn describe(self) -> &'static str {
        match self {
            Damage::TornTail => "a record cut short at the end of the journal (torn write)",
            Damage::Checksum => "a record whose CRC-32 does not match its bytes",
            Damage::Undecodable => "a record in a layout this version cannot read",
        }
    }
}

/// What a journal segment held: the records that read back whole (rows, or observations to
/// analyse), and the damaged records.
#[derive(Debug, Default)]
pub struct Scan {
    pub records: Vec<Entry>,
    pub damaged: Vec<Damage>,
}

/// Reads every record of `data` (a segment's bytes after its magic). A record whose checksum
/// fails is skipped and the next one read; a length that runs past the end (or a zero-filled
/// tail, as a power loss can leave) ends the scan, counted once.
pub fn scan(mut data: &[u8], into: &mut Scan) {
    while !data.is_empty() {
        let Some((len, crc)) = data
            .get(..HEADER)
            .map(|h| (le_u32(&h[..4]), le_u32(&h[4..])))
        else {
            into.damaged.push(Damage::TornTail);
            return;
        };
        let Some(payload) = (len > 0)
            .then(|| data.get(HEADER..HEADER + len as usize))
            .flatten()
        else {
            into.damaged.push(Damage::TornTail);
            return;
        };
        data = &data[HEADER + len as usize..];
        if crc32fast::hash(payload) != crc {
            into.damaged.push(Damage::Checksum);
            continue;
        }
        match decode(payload) {
            Some(record) => into.records.push(record),
            None => into.damaged.push(Damage::Undecodable),
        }
    }
}

/// Reads the records of a stamped segment (its bytes after the magic and the stamp) up to the
/// first record of another stamp: what a recycled file held before (or zeros, as a power loss
/// can leave) follows the last record written. A length that runs past the end ends the scan,
/// counted once; a record whose checksum fails is skipped and the next one read.
pub fn scan_stamped(mut data: &[u8], stamp: u64, into: &mut Scan) {
    while !data.is_empty() {
        let Some(header) = data.get(..STAMPED_HEADER) else {
            into.damaged.push(Damage::TornTail);
            return;
        };
        if header[HEADER..] != stamp.to_le_bytes() {
            return;
        }
        let (len, crc) = (le_u32(&header[..4]), le_u32(&header[4..HEADER]));
        let Some(payload) = data.get(STAMPED_HEADER..STAMPED_HEADER + len as usize) else {
            into.damaged.push(Damage::TornTail);
            return;
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[HEADER..]);
        hasher.update(payload);
        data = &data[STAMPED_HEADER + len as usize..];
        if hasher.finalize() != crc {
            into.damaged.push(Damage::Checksum);
            continue;
        }
        match decode(payload) {
            Some(record) => into.records.push(record),
            None => into.damaged.push(Damage::Undecodable),
        }
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

/// Reads fields off the front of a payload; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        match self.u32()? {
            ABSENT => Some(None),
            n => self.take(n as usize).map(Some),
        }
    }
    fn text(&mut self) -> Option<Option<String>> {
        match self.bytes()? {
            None => Some(None),
            Some(bytes) => String::from_utf8(bytes.to_vec()).ok().map(Some),
        }
    }
}

fn decode(payload: &[u8]) -> Option<Entry> {
    match payload.first()? {
        &VERSION_ROW => decode_row(&payload[1..]).map(|row| Entry::Row(Box::new(row))),
        _ => decode_exchange(payload).map(Entry::observed),
    }
}

fn decode_row(payload: &[u8]) -> Option<LedgerRow> {
    let mut r = Reader(payload);
    let request_id = Uuid::from_bytes(r.array()?);
    let timestamp = DateTime::<Utc>::from_timestamp_micros(i64::from_le_bytes(r.array()?))?;
    let duration = Micros::from_micros(r.u64()?);
    let [status, sanitized] = r.array::<2>()?;
    let status = status_of_code(status)?;
    let sanitized = match sanitized {
        0 => false,
        1 => true,
        _ => return None,
    };
    let request_bytes = i64::from_le_bytes(r.array()?);
    let response_bytes = i64::from_le_bytes(r.array()?);
    let mut int = || match r.array::<1>()? {
        [0] => Some(None),
        [1] => Some(Some(i32::from_le_bytes(r.array()?))),
        _ => None,
    };
    let (error_code, args_tokens, result_tokens, total_tokens) = (int()?, int()?, int()?, int()?);
    let subject = match r.array::<1>()? {
        [0] => None,
        [1] => Some(Uuid::from_bytes(r.array()?)),
        _ => return None,
    };
    let session_id = r.text()?;
    let jsonrpc_id = r.text()?;
    let method = r.text()??;
    let tool_name = r.text()?;
    let error_message = r.text()?;
    let tokenizer = r.text()?.map(std::borrow::Cow::Owned);
    let trace = TraceContext {
        protocol_version: r.text()?,
        traceparent: r.text()?,
        tracestate: r.text()?,
    };
    let upstream = match r.array::<1>()? {
        [0] => None,
        [1] => Some(UpstreamHop {
            upstream: r.text()??,
            tool: r.text()?,
            duration: Micros::from_micros(r.u64()?),
        }),
        _ => return None,
    };
    r.0.is_empty().then_some(LedgerRow {
        request_id,
        session_id,
        jsonrpc_id,
        method,
        tool_name,
        status,
        error_code,
        error_message,
        duration,
        request_bytes,
        response_bytes,
        args_tokens,
        result_tokens,
        total_tokens,
        estimated_cost_usd: None,
        pricing_model: None,
        tokenizer,
        sanitized,
        timestamp,
        upstream,
        subject,
        trace,
    })
}

fn decode_exchange(payload: &[u8]) -> Option<Observation> {
    let mut r = Reader(payload);
    let [version] = r.array::<1>()?;
    if version != VERSION && version != VERSION_WITHOUT_SUBJECT {
        return None;
    }
    let request_id = Uuid::from_bytes(r.array()?);
    let timestamp = DateTime::<Utc>::from_timestamp_micros(i64::from_le_bytes(r.array()?))?;
    let duration = Micros::from_micros(r.u64()?);
    let response_len = r.u64()?;
    let http_status = Some(u16::from_le_bytes(r.array()?)).filter(|s| *s != 0);
    let ending = match r.array::<1>()? {
        [0] => Ending::Complete,
        [1] => Ending::Cancelled,
        [2] => Ending::TimedOut,
        _ => return None,
    };
    let stream_get = match r.array::<1>()? {
        [0] => None,
        [1] => Some(StreamGet::Open),
        [2] => Some(StreamGet::Replay),
        _ => return None,
    };
    let subject = match version {
        VERSION_WITHOUT_SUBJECT => None,
        _ => match r.array::<1>()? {
            [0] => None,
            [1] => Some(Uuid::from_bytes(r.array()?)),
            _ => return None,
        },
    };
    let session_id = r.text()?;
    let protocol_version = r.text()?;
    let request = Bytes::copy_from_slice(r.bytes()??);
    let response = Bytes::copy_from_slice(r.bytes()??);
    let upstream = match r.0.is_empty() {
        true => None,
        false => Some(UpstreamHop {
            upstream: r.text()??,
            tool: r.text()?,
            duration: Micros::from_micros(r.u64()?),
        }),
    };
    r.0.is_empty().then_some(Observation {
        request_id,
        session_id,
        timestamp,
        duration,
        request,
        http_status,
        response,
        response_len,
        ending,
        protocol_version,
        stream_get,
        upstream,
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(n: u8) -> Observation {
        Observation {
            request_id: Uuid::now_v7(),
            session_id: n.is_multiple_of(2).then(|| format!("session-{n}")),
            timestamp: DateTime::from_timestamp_micros(1_764_000_000_123_456 + i64::from(n))
                .expect("a valid timestamp"),
            duration: Micros::from_micros(1234),
            request: Bytes::from(format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{n},\"method\":\"ping\"}}"
            )),
            http_status: (!n.is_multiple_of(3)).then_some(200),
            response: Bytes::from(format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{n},\"result\":{{}}}}"
            )),
            response_len: 40 + u64::from(n),
            ending: Ending::Cancelled,
            protocol_version: Some("2025-11-25".into()),
            stream_get: (n == 5).then_some(StreamGet::Replay),
            upstream: (n == 4).then(|| UpstreamHop {
                upstream: "docs".into(),
                tool: Some("search".into()),
                duration: Micros::from_micros(900),
            }),
            subject: (n == 4).then(Uuid::now_v7),
        }
    }

    const STAMP: u64 = 0x5eed_1234_abcd_0001;

    fn exchange(o: &Observation) -> std::io::Result<Encoded<'_>> {
        Encoded::new(&Record::Exchange(Exchange::from(o)))
    }

    /// The observations a scan read, in order (rows left out).
    fn observations(scan: &Scan) -> Vec<Observation> {
        scan.records
            .iter()
            .filter_map(|r| match r {
                Entry::Observed(o) => Some((**o).clone()),
                Entry::Row(_) => None,
            })
            .collect()
    }

    fn row(n: u8) -> LedgerRow {
        let o = observation(n);
        LedgerRow {
            request_id: o.request_id,
            session_id: o.session_id,
            jsonrpc_id: Some(n.to_string()),
            method: "tools/call".into(),
            tool_name: (n != 3).then(|| "find_tasks".into()),
            status: [Status::Success, Status::ToolError, Status::InputRequired][n as usize % 3],
            error_code: (n == 1).then_some(-32602),
            error_message: (n == 1).then(|| "boom é".into()),
            duration: o.duration,
            request_bytes: 120 + i64::from(n),
            response_bytes: 9000,
            args_tokens: Some(5),
            result_tokens: (n != 2).then_some(2000),
            total_tokens: Some(2005),
            estimated_cost_usd: None,
            pricing_model: None,
            tokenizer: Some(std::borrow::Cow::Borrowed("o200k_base")),
            sanitized: n == 2,
            timestamp: o.timestamp,
            upstream: o.upstream,
            subject: o.subject,
            trace: TraceContext {
                protocol_version: o.protocol_version,
                traceparent: (n == 4).then(|| "00-abc-def-01".into()),
                tracestate: None,
            },
        }
    }

    /// The row record's layout as it was first written, field by field (the reference the
    /// production encoder, which lays it out otherwise, must match byte for byte).
    fn encode_row_field_by_field(row: &LedgerRow) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(VERSION_ROW);
        out.extend_from_slice(row.request_id.as_bytes());
        out.extend_from_slice(&row.timestamp.timestamp_micros().to_le_bytes());
        out.extend_from_slice(&row.duration.micros().to_le_bytes());
        out.push(status_code(row.status));
        out.push(u8::from(row.sanitized));
        out.extend_from_slice(&row.request_bytes.to_le_bytes());
        out.extend_from_slice(&row.response_bytes.to_le_bytes());
        // Error code, argument, result and total tokens: a flag, then the value if any.
        let counts = [row.args_tokens, row.result_tokens, row.total_tokens];
        for n in std::iter::once(row.error_code).chain(counts) {
            out.push(u8::from(n.is_some()));
            if let Some(n) = n {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        match row.subject {
            None => out.push(0),
            Some(id) => {
                out.push(1);
                out.extend_from_slice(id.as_bytes());
            }
        }
        // Session id, JSON-RPC id, method, tool, error message, tokenizer, then the trace's
        // protocol version, traceparent and tracestate.
        for text in [&row.session_id, &row.jsonrpc_id] {
            put_text(&mut out, text.as_deref());
        }
        put_text(&mut out, Some(&row.method));
        for text in [&row.tool_name, &row.error_message] {
            put_text(&mut out, text.as_deref());
        }
        put_text(&mut out, row.tokenizer.as_deref());
        let TraceContext {
            protocol_version,
            traceparent,
            tracestate,
        } = &row.trace;
        for text in [protocol_version, traceparent, tracestate] {
            put_text(&mut out, text.as_deref());
        }
        match &row.upstream {
            None => out.push(0),
            Some(UpstreamHop {
                upstream,
                tool,
                duration,
            }) => {
                out.push(1);
                for text in [Some(upstream.as_str()), tool.as_deref()] {
                    put_text(&mut out, text);
                }
                out.extend_from_slice(&duration.micros().to_le_bytes());
            }
        }
        out
    }

    /// A row's record is the bytes the first, field-by-field encoder wrote: every option
    /// present and absent, a hop with and without its tool, texts empty and long.
    #[test]
    fn a_row_record_is_laid_out_as_field_by_field() -> std::io::Result<()> {
        let mut rows: Vec<LedgerRow> = (0..6).map(row).collect();
        rows.push(LedgerRow::default());
        let mut full = row(4);
        full.error_code = Some(i32::MIN);
        full.args_tokens = Some(i32::MAX);
        full.error_message = Some("x".repeat(5000));
        full.tokenizer = None;
        full.jsonrpc_id = Some(String::new());
        full.trace.tracestate = Some("k=v".into());
        full.request_bytes = i64::MIN;
        full.response_bytes = i64::MAX;
        rows.push(full.clone());
        full.upstream = Some(UpstreamHop {
            upstream: "py".into(),
            tool: None,
            duration: Micros::from_micros(u64::MAX),
        });
        full.subject = None;
        rows.push(full);
        for row in &rows {
            assert_eq!(encode_row(row), encode_row_field_by_field(row), "{row:?}");
        }
        Ok(())
    }

    /// Rows (version 3) and observations (version 2) in one segment read back as written.
    #[test]
    fn rows_and_exchanges_read_back_exactly() -> std::io::Result<()> {
        let file = tempfile::tempfile()?;
        let rows: Vec<LedgerRow> = (0..6).map(row).collect();
        let observed = observation(1);
        let mut total = 0;
        for (n, row) in rows.iter().enumerate() {
            let record = Encoded::new(&Record::Row(row))?;
            let size = record.size();
            assert!(size < 300, "a row's record is small: {size}");
            assert_eq!(write(&file, STAMP, &record)?, size);
            total += size;
            if n == 2 {
                total += write(&file, STAMP, &exchange(&observed)?)?;
            }
        }
        let mut bytes = Vec::new();
        std::io::Seek::rewind(&mut &file)?;
        std::io::Read::read_to_end(&mut &file, &mut bytes)?;
        assert_eq!(total, bytes.len() as u64);
        let mut read = Scan::default();
        scan_stamped(&bytes, STAMP, &mut read);
        assert!(read.damaged.is_empty(), "{:?}", read.damaged);
        assert_eq!(observations(&read), [observed]);
        let read_rows: Vec<&LedgerRow> = read
            .records
            .iter()
            .filter_map(|r| match r {
                Entry::Row(row) => Some(&**row),
                Entry::Observed(_) => None,
            })
            .collect();
        assert_eq!(read_rows, rows.iter().collect::<Vec<_>>());
        // A torn row record is counted; the records before it are kept.
        let mut read = Scan::default();
        scan_stamped(&bytes[..bytes.len() - 7], STAMP, &mut read);
        assert_eq!(
            (read.records.len(), &read.damaged[..]),
            (6, &[Damage::TornTail][..])
        );
        Ok(())
    }

    /// The bytes of a stamped segment (after its magic and stamp) holding `observations`, and
    /// what `write` said it wrote.
    fn journal_of(observations: &[Observation]) -> std::io::Result<(Vec<u8>, u64)> {
        let file = tempfile::tempfile()?;
        let mut total = 0;
        for o in observations {
            let record = Encoded::new(&Record::Exchange(Exchange::from(o)))?;
            let size = record.size();
            let written = write(&file, STAMP, &record)?;
            assert_eq!(written, size);
            total += written;
        }
        let mut bytes = Vec::new();
        std::io::Seek::rewind(&mut &file)?;
        std::io::Read::read_to_end(&mut &file, &mut bytes)?;
        Ok((bytes, total))
    }

    #[test]
    fn records_read_back_exactly() -> std::io::Result<()> {
        let written: Vec<_> = (0..6).map(observation).collect();
        let (bytes, total) = journal_of(&written)?;
        assert_eq!(total, bytes.len() as u64);
        let mut read = Scan::default();
        scan_stamped(&bytes, STAMP, &mut read);
        assert!(read.damaged.is_empty());
        assert_eq!(observations(&read).len(), written.len());
        written
            .iter()
            .zip(&observations(&read))
            .for_each(|(a, b)| assert_eq!(a, b));
        Ok(())
    }

    #[test]
    fn a_torn_tail_is_counted_and_everything_before_it_is_kept() -> std::io::Result<()> {
        let written: Vec<_> = (0..3).map(observation).collect();
        let (bytes, _) = journal_of(&written)?;
        for cut in [1, 5, HEADER, HEADER + 3, 20] {
            let mut read = Scan::default();
            scan_stamped(&bytes[..bytes.len() - cut], STAMP, &mut read);
            assert_eq!(observations(&read).len(), 2, "cut {cut} bytes");
            assert_eq!(read.damaged, [Damage::TornTail]);
        }
        Ok(())
    }

    /// A recycled segment holds its earlier life's records after the new ones (another stamp,
    /// and the new records' ends fall anywhere in them): the scan ends at the last new record.
    #[test]
    fn what_a_recycled_segment_held_before_is_not_read() -> std::io::Result<()> {
        let old: Vec<_> = (0..6).map(observation).collect();
        let file = tempfile::tempfile()?;
        for o in &old {
            write(&file, STAMP + 1, &exchange(o)?)?;
        }
        let new: Vec<_> = (0..2).map(observation).collect();
        std::io::Seek::rewind(&mut &file)?;
        let mut at = 0;
        for o in &new {
            at += write(&file, STAMP, &exchange(o)?)?;
        }
        let mut bytes = Vec::new();
        std::io::Seek::rewind(&mut &file)?;
        std::io::Read::read_to_end(&mut &file, &mut bytes)?;
        assert!(bytes.len() as u64 > at, "the old records are still there");
        let mut read = Scan::default();
        scan_stamped(&bytes, STAMP, &mut read);
        assert!(read.damaged.is_empty(), "{:?}", read.damaged);
        assert_eq!(observations(&read).len(), 2);
        assert_eq!(observations(&read)[1], new[1]);
        // So does a zero-filled tail (a file extended for recycling, or a power loss).
        let (mut zeroed, _) = journal_of(&new)?;
        zeroed.extend_from_slice(&[0; 4096]);
        let mut read = Scan::default();
        scan_stamped(&zeroed, STAMP, &mut read);
        assert!(read.damaged.is_empty(), "{:?}", read.damaged);
        assert_eq!(observations(&read).len(), 2);
        Ok(())
    }

    /// A record copied into a mapped segment is the bytes `write` writes; room of another
    /// size is an error, not a panic.
    #[test]
    fn a_copied_record_is_the_bytes_written() -> std::io::Result<()> {
        let (observed, row) = (observation(4), row(1));
        for record in [
            Record::Exchange(Exchange::from(&observed)),
            Record::Row(&row),
        ] {
            let file = tempfile::tempfile()?;
            let size = write(&file, STAMP, &Encoded::new(&record)?)?;
            let mut written = Vec::new();
            std::io::Seek::rewind(&mut &file)?;
            std::io::Read::read_to_end(&mut &file, &mut written)?;
            let mut copied = vec![0xa5; written.len()];
            assert_eq!(copy(&mut copied, STAMP, &Encoded::new(&record)?)?, size);
            assert_eq!(copied, written);
            assert!(copy(&mut copied[1..], STAMP, &Encoded::new(&record)?).is_err());
        }
        Ok(())
    }

    /// A process killed while copying a record into a mapped segment leaves the copy's first
    /// stores and not the rest (`copy` clears the stamp, copies the body, then the length and
    /// checksum, then the stamp): whatever it left, in a new (zeroed) file or over a recycled
    /// file's older records, reads as the end of the records, not as damage, and the records
    /// before it replay.
    #[test]
    fn a_record_torn_during_its_copy_reads_as_the_end() -> std::io::Result<()> {
        let written: Vec<_> = (0..3).map(observation).collect();
        let (before, _) = journal_of(&written)?;
        let torn = observation(4);
        let mut whole = vec![0; exchange(&torn)?.size() as usize];
        copy(&mut whole, STAMP, &exchange(&torn)?)?;
        let body = whole.len() - STAMPED_HEADER;
        let room = whole.len() + STAMPED_HEADER;
        // A recycled file's records (another stamp), cut anywhere.
        let file = tempfile::tempfile()?;
        for o in (0..6).map(observation) {
            write(&file, STAMP + 1, &exchange(&o)?)?;
        }
        let mut older = Vec::new();
        std::io::Seek::rewind(&mut &file)?;
        std::io::Read::read_to_end(&mut &file, &mut older)?;
        let recycled = older[7..7 + room].to_vec();
        for underneath in [vec![0; room], recycled] {
            let mut left = underneath;
            left[HEADER..STAMPED_HEADER].fill(0);
            let mut states = vec![left.clone()];
            for cut in [1, body / 2, body] {
                left[STAMPED_HEADER..STAMPED_HEADER + cut]
                    .copy_from_slice(&whole[STAMPED_HEADER..STAMPED_HEADER + cut]);
                states.push(left.clone());
            }
            left[..HEADER].copy_from_slice(&whole[..HEADER]);
            states.push(left.clone());
            // Half a stamp (were its store not a single instruction).
            left[HEADER..HEADER + 4].copy_from_slice(&whole[HEADER..HEADER + 4]);
            states.push(left);
            for (n, state) in states.iter().enumerate() {
                let mut read = Scan::default();
                scan_stamped(&[&before[..], state].concat(), STAMP, &mut read);
                assert!(read.damaged.is_empty(), "state {n}: {:?}", read.damaged);
                assert_eq!(observations(&read), written, "state {n}");
            }
        }
        // Copied whole, it is the fourth record.
        let mut read = Scan::default();
        scan_stamped(
            &[&before[..], &whole, &[0; STAMPED_HEADER]].concat(),
            STAMP,
            &mut read,
        );
        assert!(read.damaged.is_empty(), "{:?}", read.damaged);
        assert_eq!(observations(&read)[3], torn);
        Ok(())
    }

    #[test]
    fn a_corrupt_record_is_skipped_and_the_rest_replays() -> std::io::Result<()> {
        let written: Vec<_> = (0..3).map(observation).collect();
        let (mut bytes, _) = journal_of(&written)?;
        let first_len = STAMPED_HEADER + le_u32(&bytes[..4]) as usize;
        bytes[first_len - 2] ^= 0xff;
        let mut read = Scan::default();
        scan_stamped(&bytes, STAMP, &mut read);
        assert_eq!(read.damaged, [Damage::Checksum]);
        assert_eq!(observations(&read).len(), 2);
        assert_eq!(observations(&read)[0], written[1]);
        assert_eq!(observations(&read)[1], written[2]);
        Ok(())
    }

    /// Segments of the first layout (no stamp) and records of the version before subjects
    /// replay after an upgrade.
    #[test]
    fn a_record_of_the_first_layout_without_a_subject_still_reads() -> std::io::Result<()> {
        let written = observation(1);
        let (bytes, _) = journal_of(std::slice::from_ref(&written))?;
        // The old layout: no stamp, version 1, and no subject byte (it follows the 45 fixed
        // bytes).
        let mut payload = bytes[STAMPED_HEADER..].to_vec();
        assert_eq!(payload.remove(45), 0, "no subject");
        payload[0] = VERSION_WITHOUT_SUBJECT;
        let mut old = (payload.len() as u32).to_le_bytes().to_vec();
        old.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        old.extend_from_slice(&payload);
        let mut read = Scan::default();
        scan(&old, &mut read);
        assert!(read.damaged.is_empty(), "{:?}", read.damaged);
        assert_eq!(observations(&read)[0], written);
        // A torn tail and a zero-filled one in the first layout.
        for tail in [
            &old[..old.len() - 3],
            &[&old[..], &[0; 64][..]].concat()[..],
        ] {
            let mut read = Scan::default();
            scan(tail, &mut read);
            assert_eq!(read.damaged, [Damage::TornTail]);
        }
        Ok(())
    }

    #[test]
    fn garbage_never_panics() {
        let mut read = Scan::default();
        for len in 0..64u8 {
            let junk: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            scan(&junk, &mut read);
            scan_stamped(&junk, STAMP, &mut read);
        }
        let mut forged = Vec::new();
        forged.extend_from_slice(&3u32.to_le_bytes());
        forged.extend_from_slice(&crc32fast::hash(&[VERSION, 1, 2]).to_le_bytes());
        forged.extend_from_slice(&[VERSION, 1, 2]);
        let mut read = Scan::default();
        scan(&forged, &mut read);
        assert_eq!(read.damaged, [Damage::Undecodable]);
    }
}
