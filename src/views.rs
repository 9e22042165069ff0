//! The JSON shapes of the board's rows as tools, resources and prompts show them: a row whole,
//! its list-view form (long descriptions cut), its summary form (content left out), and the
//! paging fields every list carries.
//!
//! Two ways to the same text: as `serde_json::Value` trees (for callers that edit them further),
//! or written straight to JSON text by [`Fields`] (the tools' answers, on every call's path).
//! Both write object keys in sorted order, as `serde_json::Map` (a `BTreeMap`) does.

use serde::Serialize;
use serde_json::{Value, json};

use crate::store::overview::ProjectSummary;

/// Longest description shown in list views; the full text comes with a lookup by id.
pub const LIST_DESCRIPTION_LIMIT: usize = 1000;

/// Serialises a store row; rows are plain data, so this cannot fail in practice, but a
/// failure is still reported rather than unwrapped.
pub fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| json!({ "serialization_error": e.to_string() }))
}

/// The list-view form of a row: `description` cut to [`LIST_DESCRIPTION_LIMIT`] characters,
/// with `description_truncated: true` when it was.
pub fn list_view<T: Serialize>(row: &T) -> Value {
    let mut value = to_json(row);
    if let Some(object) = value.as_object_mut()
        && let Some(Value::String(text)) = object.get("description")
        && let Some(cut) = cut_description(text)
    {
        object.insert("description".into(), Value::String(cut));
        object.insert("description_truncated".into(), Value::Bool(true));
    }
    value
}

/// `text` cut to [`LIST_DESCRIPTION_LIMIT`] characters, or `None` when it is not longer.
fn cut_description(text: &str) -> Option<String> {
    let mut chars = text.chars();
    let cut: String = chars.by_ref().take(LIST_DESCRIPTION_LIMIT).collect();
    chars.next().is_some().then_some(cut)
}

/// The list-view form of a row whose `content` can be large: everything but the content
/// (the full row comes with a lookup by id).
pub fn summary_view<T: Serialize>(row: &T) -> Value {
    let mut value = to_json(row);
    if let Some(object) = value.as_object_mut() {
        object.remove("content");
    }
    value
}

/// A project's summary with its derived totals (`total`, `progress_percent`), as the project
/// list and page show it.
pub fn project_summary_view(summary: &ProjectSummary) -> Value {
    let mut value = to_json(summary);
    if let Some(object) = value.as_object_mut() {
        object.insert("total".into(), json!(summary.counts.total()));
        object.insert(
            "progress_percent".into(),
            json!(summary.counts.progress_percent()),
        );
    }
    value
}

/// The paging fields every list response carries.
pub fn page_info(page: crate::store::Page, count: usize, total: i64) -> Value {
    json!({
        "count": count,
        "total": total,
        "page": page.page,
        "per_page": page.per_page,
        "has_more": has_more(page, count, total),
    })
}

/// Whether rows remain after this page's `count` of `total`.
fn has_more(page: crate::store::Page, count: usize, total: i64) -> bool {
    i64::from(page.page - 1) * i64::from(page.per_page) + (count as i64) < total
}

/// A list response: each row of `found` through `view` under `key`, the paging fields beside.
pub fn page_view<T>(
    key: &str,
    found: &crate::store::Paged<T>,
    page: crate::store::Page,
    view: fn(&T) -> Value,
) -> Value {
    let rows: Vec<Value> = found.items.iter().map(view).collect();
    merge([
        json!({ key: rows }),
        page_info(page, found.items.len(), found.total),
    ])
}

/// Merges several JSON objects into one.
pub fn merge(parts: impl IntoIterator<Item = Value>) -> Value {
    let mut out = serde_json::Map::new();
    for part in parts {
        if let Value::Object(fields) = part {
            out.extend(fields);
        }
    }
    Value::Object(out)
}

/// Which form of a row a list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowView {
    /// [`list_view`]: long descriptions cut.
    List,
    /// [`summary_view`]: content left out.
    Summary,
}

impl RowView {
    /// The row as a `Value`, in this form.
    fn value<T: Serialize>(self, row: &T) -> Value {
        match self {
            RowView::List => list_view(row),
            RowView::Summary => summary_view(row),
        }
    }
}

/// A JSON object assembled from fields written as JSON text at once, without a `Value` tree,
/// and written out with its keys in sorted order: byte for byte what building it as a `Value`
/// and serialising that gave. A key given twice keeps its last value (as [`merge`] does).
#[derive(Debug, Default)]
pub struct Fields<'k> {
    fields: Vec<(&'k str, Vec<u8>)>,
}

impl<'k> Fields<'k> {
    pub fn new() -> Self {
        Fields { fields: Vec::new() }
    }

    /// `key: value`.
    pub fn value<T: Serialize + ?Sized>(mut self, key: &'k str, value: &T) -> Self {
        let mut text = Vec::new();
        write_value(&mut text, value);
        self.fields.push((key, text));
        self
    }

    /// These fields followed by `later`'s (which win over these on a shared key).
    pub fn merged(mut self, later: Fields<'k>) -> Self {
        self.fields.extend(later.fields);
        self
    }

    /// The list `found` under `key` (each row in the form `view`) and the paging fields every
    /// list carries (as [`page_view`]).
    pub fn page<T: Serialize>(
        self,
        key: &'k str,
        found: &crate::store::Paged<T>,
        page: crate::store::Page,
        view: RowView,
    ) -> Self {
        let mut rows = Vec::with_capacity(1024 * found.items.len() + 2);
        let mut scratch = FieldTexts {
            layout: LAYOUT.take(),
            ..FieldTexts::default()
        };
        rows.push(b'[');
        for (n, row) in found.items.iter().enumerate() {
            if n > 0 {
                rows.push(b',');
            }
            write_row(&mut rows, &mut scratch, row, view);
        }
        rows.push(b']');
        LAYOUT.set(scratch.layout);
        let count = found.items.len();
        let mut this = self
            .value("count", &count)
            .value("total", &found.total)
            .value("page", &page.page)
            .value("per_page", &page.per_page)
            .value("has_more", &has_more(page, count, found.total));
        this.fields.push((key, rows));
        this
    }

    /// The object as JSON text.
    pub fn into_text(mut self) -> String {
        // Stable: of the fields with one key, the last given ends last.
        self.fields.sort_by(|a, b| a.0.cmp(b.0));
        let total: usize = self.fields.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = Vec::with_capacity(total + 2);
        out.push(b'{');
        let mut first = true;
        for (n, (key, value)) in self.fields.iter().enumerate() {
            if self.fields.get(n + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_value(&mut out, *key);
            out.push(b':');
            out.extend_from_slice(value);
        }
        out.push(b'}');
        into_string(out)
    }
}

/// `value` as JSON text onto `out`; a value that cannot be serialised (plain data always can)
/// is written as the error object [`to_json`] gives.
fn write_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mark = out.len();
    if let Err(e) = serde_json::to_writer(&mut *out, value) {
        out.truncate(mark);
        let error = json!({ "serialization_error": e.to_string() });
        out.extend_from_slice(error.to_string().as_bytes());
    }
}

/// Every writer here writes UTF-8; should one not, the text is still returned, repaired.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One row in the form `view`, its keys sorted. Each top-level field of the row is serialised
/// once into `scratch` (a row's nested objects are `Value`s, already sorted) and the fields are
/// written out in key order, without parsing the row back. A row that is not a plain struct
/// takes the `Value` path.
fn write_row<T: Serialize>(out: &mut Vec<u8>, scratch: &mut FieldTexts, row: &T, view: RowView) {
    scratch.clear();
    if row.serialize(&mut *scratch).is_err() {
        return write_value(out, &view.value(row));
    }
    let text = &scratch.text;
    let mut fields: Vec<(&'static str, &[u8])> = scratch
        .fields
        .iter()
        .map(|(key, range)| (*key, text.get(range.clone()).unwrap_or_default()))
        .collect();
    let mut cut = Vec::new();
    match view {
        RowView::Summary => fields.retain(|(key, _)| *key != "content"),
        RowView::List => {
            let description = fields.iter().position(|(key, _)| *key == "description");
            let short = description.and_then(|i| long_text(fields.get(i)?.1).map(|s| (i, s)));
            if let Some((i, short)) = short {
                write_value(&mut cut, &short);
                fields.retain(|(key, _)| *key != "description_truncated");
                if let Some(field) = fields.get_mut(i) {
                    field.1 = &cut;
                }
                fields.push(("description_truncated", b"true"));
            }
        }
    }
    scratch.layout.fit(&fields);
    out.push(b'{');
    for (n, (i, head)) in scratch.layout.order.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(head);
        out.extend_from_slice(fields.get(*i).map_or(&b"null"[..], |field| field.1));
    }
    out.push(b'}');
}

thread_local! {
    /// The layout of the last row this thread wrote: a list's rows, and the next list of the
    /// same tool's, share it.
    static LAYOUT: std::cell::Cell<Layout> = std::cell::Cell::new(Layout::default());
}

/// The order a row's fields are written in, kept from row to row: the rows of a list are
/// one struct, so their keys come in the same order and are sorted once, not once per row.
#[derive(Debug, Default)]
struct Layout {
    /// The keys, in the order the row gave them.
    keys: Vec<&'static str>,
    /// The index of each field written, in key order, with its key as JSON text and a colon.
    /// Of two fields with one key (not possible in a struct), the last given is kept.
    order: Vec<(usize, Vec<u8>)>,
}

impl Layout {
    /// Makes the layout that of `fields`, unless it is already.
    fn fit(&mut self, fields: &[(&'static str, &[u8])]) {
        let same = self.keys.len() == fields.len()
            && self
                .keys
                .iter()
                .zip(fields)
                .all(|(a, (b, _))| std::ptr::eq(*a, *b) || a == b);
        if same {
            return;
        }
        self.keys = fields.iter().map(|(key, _)| *key).collect();
        let mut sorted: Vec<(&'static str, usize)> = self.keys.iter().copied().zip(0..).collect();
        // Stable: of two fields with one key, the last given ends last.
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        self.order.clear();
        for (n, (key, i)) in sorted.iter().enumerate() {
            if sorted.get(n + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            let mut head = Vec::with_capacity(key.len() + 3);
            write_value(&mut head, *key);
            head.push(b':');
            self.order.push((*i, head));
        }
    }
}

/// A JSON string longer than [`LIST_DESCRIPTION_LIMIT`] characters, cut to that length; else
/// `None`. Every character takes at least one byte of its escaped form, so a short raw string
/// is known short without decoding it.
fn long_text(escaped: &[u8]) -> Option<String> {
    if escaped.len() <= LIST_DESCRIPTION_LIMIT + 2 {
        return None;
    }
    let text: String = serde_json::from_slice(escaped).ok()?;
    cut_description(&text)
}

/// A struct's top-level fields as JSON text: a `serde::Serializer` that accepts a struct only
/// and serialises each field's value into one buffer, remembered by its key.
#[derive(Debug, Default)]
struct FieldTexts {
    text: Vec<u8>,
    fields: Vec<(&'static str, std::ops::Range<usize>)>,
    /// The order the last row was written in.
    layout: Layout,
}

impl FieldTexts {
    fn clear(&mut self) {
        self.text.clear();
        self.fields.clear();
    }
}

fn not_a_struct() -> serde_json::Error {
    serde::ser::Error::custom("not a struct")
}

/// `Serializer` methods of [`FieldTexts`] for what is not a struct: refused.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, serde_json::Error> {
            Err(not_a_struct())
        })*
    };
}

type Refused = serde::ser::Impossible<(), serde_json::Error>;

impl serde::Serializer for &mut FieldTexts {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Refused;
    type SerializeTuple = Refused;
    type SerializeTupleStruct = Refused;
    type SerializeTupleVariant = Refused;
    type SerializeMap = Refused;
    type SerializeStruct = Self;
    type SerializeStructVariant = Refused;

    refuse! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Refused;
        serialize_tuple(usize) -> Refused;
        serialize_tuple_struct(&'static str, usize) -> Refused;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Refused;
        serialize_map(Option<usize>) -> Refused;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Refused;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), serde_json::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), serde_json::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), serde_json::Error> {
        Err(not_a_struct())
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, serde_json::Error> {
        Ok(self)
    }
}

impl serde::ser::SerializeStruct for &mut FieldTexts {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let start = self.text.len();
        serde_json::to_writer(&mut self.text, value)?;
        self.fields.push((key, start..self.text.len()));
        Ok(())
    }

    fn end(self) -> Result<(), serde_json::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_view_truncates_long_descriptions_only() {
        let long = "é".repeat(LIST_DESCRIPTION_LIMIT + 5);
        let value = list_view(&json!({ "description": long }));
        assert_eq!(
            value["description"].as_str().unwrap().chars().count(),
            LIST_DESCRIPTION_LIMIT
        );
        assert_eq!(value["description_truncated"], true);
        let short = list_view(&json!({ "description": "short" }));
        assert!(short.get("description_truncated").is_none());
    }

    /// A row whose fields are not in sorted order, with a nested `Value`.
    #[derive(Serialize)]
    struct Row {
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        title: String,
        description: String,
        content: Value,
        archived: bool,
        order: i32,
    }

    fn row(description: String) -> Row {
        Row {
            note: description.len().is_multiple_of(2).then(|| "even".into()),
            title: "a \"quoted\" title\n".into(),
            description,
            content: json!({ "z": [1, 2.5, null], "a": { "y": "é", "b": true } }),
            archived: false,
            order: -3,
        }
    }

    #[test]
    fn fields_write_what_the_value_path_writes() {
        let found = crate::store::Paged {
            items: vec![
                row("short".into()),
                row("é".repeat(LIST_DESCRIPTION_LIMIT + 1)),
                row("x".repeat(LIST_DESCRIPTION_LIMIT)),
                row("\u{1}".repeat(LIST_DESCRIPTION_LIMIT)),
            ],
            total: 9,
        };
        let page = crate::store::Page {
            page: 2,
            per_page: 4,
        };
        for (fast, slow) in [
            (RowView::List, list_view as fn(&Row) -> Value),
            (RowView::Summary, summary_view),
        ] {
            let text = Fields::new()
                .value("success", &true)
                .value("zeta", &Some("q"))
                .page("rows", &found, page, fast)
                .value("closed_matches", &3)
                .into_text();
            let mut value = json!({ "success": true });
            let built = merge([
                page_view("rows", &found, page, slow),
                json!({ "zeta": "q", "closed_matches": 3 }),
            ]);
            value
                .as_object_mut()
                .unwrap()
                .extend(built.as_object().unwrap().clone());
            assert_eq!(text, value.to_string());
        }
    }

    #[test]
    fn fields_keep_the_last_value_of_a_key() {
        let text = Fields::new()
            .value("a", &1)
            .value("b", &2)
            .merged(Fields::new().value("a", &3))
            .into_text();
        assert_eq!(text, r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn page_info_reports_more_pages() {
        let page = crate::store::Page {
            page: 1,
            per_page: 2,
        };
        assert_eq!(page_info(page, 2, 3)["has_more"], true);
        assert_eq!(
            page_info(
                crate::store::Page {
                    page: 2,
                    per_page: 2
                },
                1,
                3
            )["has_more"],
            false
        );
    }
}
