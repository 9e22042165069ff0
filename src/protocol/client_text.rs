//! Client strings kept beyond the request (client name and version, titles, method and tool
//! names, JSON-RPC ids, in sessions, logical sessions, ledger rows, metrics and logs) are cut to
//! [`MAX_CLIENT_TEXT_CHARS`] characters and marked as cut ([`cut_client_text`]).

use std::borrow::Cow;

use serde_json::Value;

/// The most characters of a client-chosen string Steward keeps.
pub const MAX_CLIENT_TEXT_CHARS: usize = 256;
/// Appended to a string that was cut.
pub const CUT_MARK: &str = "…[cut]";

/// `text`, cut to [`MAX_CLIENT_TEXT_CHARS`] characters with [`CUT_MARK`] appended when longer.
pub fn cut_client_text(text: &str) -> Cow<'_, str> {
    // A character takes at least one byte: a text of no more bytes than the limit is whole,
    // known without walking its characters (every ledger row cuts three texts, nearly
    // always short).
    if text.len() <= MAX_CLIENT_TEXT_CHARS {
        return Cow::Borrowed(text);
    }
    match text.char_indices().nth(MAX_CLIENT_TEXT_CHARS) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}{CUT_MARK}", &text[..at])),
    }
}

/// `value` with every string in it (keys included) cut by [`cut_client_text`].
pub fn cut_client_json(value: Value) -> Value {
    match value {
        Value::String(text) => match cut_client_text(&text) {
            Cow::Borrowed(_) => Value::String(text),
            Cow::Owned(cut) => Value::String(cut),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(cut_client_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (cut_client_text(&k).into_owned(), cut_client_json(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_cut_and_marked() {
        assert_eq!(cut_client_text("claude-code"), "claude-code");
        let exact = "é".repeat(MAX_CLIENT_TEXT_CHARS);
        assert_eq!(cut_client_text(&exact), exact);
        // At the limit in bytes, one character a byte: whole; one more is cut.
        let ascii = "a".repeat(MAX_CLIENT_TEXT_CHARS);
        assert!(matches!(cut_client_text(&ascii), Cow::Borrowed(t) if t == ascii));
        let over = "a".repeat(MAX_CLIENT_TEXT_CHARS + 1);
        assert_eq!(cut_client_text(&over), format!("{ascii}{CUT_MARK}"));
        let long = "é".repeat(1024 * 1024);
        let cut = cut_client_text(&long);
        assert_eq!(
            cut.chars().count(),
            MAX_CLIENT_TEXT_CHARS + CUT_MARK.chars().count()
        );
        assert!(cut.ends_with(CUT_MARK));
        let json = cut_client_json(serde_json::json!({ "a": [long.clone()], long: 1 }));
        assert!(json.to_string().len() < 2 * 1024, "{json}");
    }
}
