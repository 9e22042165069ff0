//! Argument checks shared by the MCP tools and the JSON API. Each failure names the field, says what is allowed,
//! and suggests a fix.

use serde_json::Value;

use super::FieldError;
use crate::store::{Id, Page};

pub const MAX_PER_PAGE: u32 = 100;
/// Upper bound on a title; long enough for any real title, short enough to show in a list.
pub const MAX_TITLE_CHARS: usize = 500;
/// Upper bound on free text (descriptions); beyond this a document is the better place.
pub const MAX_TEXT_CHARS: usize = 100_000;

/// PostgreSQL cannot store U+0000 in text; Steward rejects it on both engines so the two
/// behave the same and nothing is silently altered.
fn reject_nul(field: &str, text: &str) -> Result<(), FieldError> {
    if text.contains('\0') {
        return Err(FieldError::new(
            field,
            format!("{field} contains a NUL character (U+0000), which cannot be stored"),
            format!("Remove the U+0000 characters from {field}"),
        ));
    }
    Ok(())
}

/// Free text: no NUL, at most `max` characters.
pub fn text(field: &str, value: String, max: usize) -> Result<String, FieldError> {
    reject_nul(field, &value)?;
    let chars = value.chars().count();
    if chars > max {
        return Err(FieldError::new(
            field,
            format!("{field} is {chars} characters long; the limit is {max}"),
            format!("Shorten {field} to at most {max} characters"),
        ));
    }
    Ok(value)
}

/// Optional free text.
pub fn opt_text(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    value.map(|v| text(field, v, max)).transpose()
}

/// A required, non-blank title.
pub fn title(field: &str, value: Option<String>) -> Result<String, FieldError> {
    let value = value.unwrap_or_default();
    if value.trim().is_empty() {
        return Err(FieldError::new(
            field,
            format!("{field} is required and must not be blank"),
            format!("Pass a short, descriptive {field}"),
        ));
    }
    text(field, value, MAX_TITLE_CHARS)
}

/// An optional title: when given it must not be blank.
pub fn opt_title(field: &str, value: Option<String>) -> Result<Option<String>, FieldError> {
    value.map(|v| title(field, Some(v))).transpose()
}

/// A required id.
pub fn id(field: &str, value: Option<&str>) -> Result<Id, FieldError> {
    let Some(value) = value else {
        return Err(FieldError::new(
            field,
            format!("{field} is required for this action"),
            format!("Pass {field}; the find_* tools list the ids"),
        ));
    };
    parse_id(field, value)
}

/// An optional id.
pub fn opt_id(field: &str, value: Option<&str>) -> Result<Option<Id>, FieldError> {
    value.map(|v| parse_id(field, v)).transpose()
}

fn parse_id(field: &str, value: &str) -> Result<Id, FieldError> {
    value.trim().parse().map_err(|_| {
        FieldError::new(
            field,
            format!("{field} {value:?} is not a valid id (ids are UUIDs like 123e4567-e89b-12d3-a456-426614174000)"),
            format!("Copy {field} from a find_* result"),
        )
    })
}

/// `page` ≥ 1 and `per_page` in 1..=100.
pub fn page(page: u32, per_page: u32) -> Result<Page, FieldError> {
    if page == 0 {
        return Err(FieldError::new(
            "page",
            "page must be 1 or more",
            "Pages start at 1",
        ));
    }
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(FieldError::new(
            "per_page",
            format!("per_page must be between 1 and {MAX_PER_PAGE}, got {per_page}"),
            format!("Use per_page between 1 and {MAX_PER_PAGE} and page through the results"),
        ));
    }
    Ok(Page { page, per_page })
}

/// `task_order` in 0..=100.
pub fn task_order(value: i64) -> Result<i32, FieldError> {
    match i32::try_from(value) {
        Ok(order) if (0..=100).contains(&order) => Ok(order),
        _ => Err(FieldError::new(
            "task_order",
            format!("task_order must be between 0 and 100, got {value}"),
            "Use 0 (lowest priority) to 100 (highest)",
        )),
    }
}

/// A JSON value with no NUL character in any string or key.
pub fn json(field: &str, value: Value) -> Result<Value, FieldError> {
    fn check(field: &str, value: &Value) -> Result<(), FieldError> {
        match value {
            Value::String(s) => reject_nul(field, s),
            Value::Array(items) => items.iter().try_for_each(|v| check(field, v)),
            Value::Object(map) => map.iter().try_for_each(|(k, v)| {
                reject_nul(field, k)?;
                check(field, v)
            }),
            _ => Ok(()),
        }
    }
    check(field, &value)?;
    Ok(value)
}

/// Most items a task's `sources` or `code_examples` list holds.
pub const MAX_LIST_ITEMS: usize = 100;
/// Most bytes such a list takes as JSON.
pub const MAX_LIST_BYTES: usize = 64 * 1024;

/// A bounded JSON list (a task's `sources`, `code_examples`): at most [`MAX_LIST_ITEMS`]
/// items and [`MAX_LIST_BYTES`] bytes of JSON, no NUL.
pub fn json_list(field: &str, value: Value) -> Result<Value, FieldError> {
    let Some(items) = value.as_array() else {
        return Err(FieldError::new(
            field,
            format!("{field} must be a JSON list"),
            format!(r#"Pass {field} as a list, e.g. [{{"url": "https://...", "note": "why"}}]"#),
        ));
    };
    let bytes = value.to_string().len();
    if items.len() > MAX_LIST_ITEMS || bytes > MAX_LIST_BYTES {
        return Err(FieldError::new(
            field,
            format!(
                "{field} has {} items in {bytes} bytes; the limit is {MAX_LIST_ITEMS} items and {MAX_LIST_BYTES} bytes",
                items.len()
            ),
            format!("Keep {field} short: link to a document for longer material"),
        ));
    }
    json(field, value)
}

/// A parent task id; an empty string means "no parent".
pub fn parent_id(value: &str) -> Result<Option<Id>, FieldError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    parse_id("parent_task_id", value).map(Some)
}

/// A list of tags: each non-blank, no NUL.
pub fn tags(value: Vec<String>) -> Result<Vec<String>, FieldError> {
    value
        .into_iter()
        .map(|tag| {
            if tag.trim().is_empty() {
                return Err(FieldError::new(
                    "tags",
                    "tags must not be blank",
                    "Remove empty tags or give them text",
                ));
            }
            text("tags", tag, MAX_TITLE_CHARS)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: FieldError) -> String {
        err.field
    }

    #[test]
    fn rejects_nul_anywhere() {
        assert_eq!(
            field_of(text("title", "a\0b".into(), 10).unwrap_err()),
            "title"
        );
        assert!(json("content", serde_json::json!({"k": ["ok", "b\u{0}"]})).is_err());
        assert!(json("content", serde_json::json!({"k\u{0}": 1})).is_err());
        assert!(json("content", serde_json::json!({"k": "é🙂"})).is_ok());
    }

    #[test]
    fn checks_ranges() {
        assert_eq!(field_of(page(0, 10).unwrap_err()), "page");
        assert_eq!(field_of(page(1, 101).unwrap_err()), "per_page");
        assert!(page(1, 100).is_ok());
        assert!(task_order(101).is_err() && task_order(-1).is_err() && task_order(50).is_ok());
    }

    #[test]
    fn titles_must_not_be_blank() {
        assert!(title("title", Some("  ".into())).is_err());
        assert!(title("title", None).is_err());
        assert_eq!(title("title", Some("Plan".into())).unwrap(), "Plan");
    }

    #[test]
    fn task_lists_are_bounded_lists() {
        use serde_json::json;
        assert!(json_list("sources", json!({"url": "x"})).is_err());
        assert!(json_list("sources", json!([{"url": "x"}])).is_ok());
        let many: Vec<Value> = (0..=MAX_LIST_ITEMS).map(|i| json!(i)).collect();
        assert_eq!(
            field_of(json_list("code_examples", json!(many)).unwrap_err()),
            "code_examples"
        );
        let big = "x".repeat(MAX_LIST_BYTES);
        assert!(json_list("sources", json!([big])).is_err());
        assert_eq!(parent_id(" ").unwrap(), None);
        assert!(parent_id("nope").is_err());
    }

    #[test]
    fn ids_must_be_uuids() {
        assert_eq!(field_of(id("task_id", Some("42")).unwrap_err()), "task_id");
        assert_eq!(field_of(id("task_id", None).unwrap_err()), "task_id");
        assert!(id("task_id", Some("123e4567-e89b-12d3-a456-426614174000")).is_ok());
    }
}
