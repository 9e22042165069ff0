//! The JSON shapes of the board's rows as tools, resources and prompts show them: a row whole,
//! its list-view form (long descriptions cut), its summary form (content left out), and the
//! paging fields every list carries.

use serde::Serialize;
use serde_json::{Value, json};

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
        && text.chars().count() > LIST_DESCRIPTION_LIMIT
    {
        let cut: String = text.chars().take(LIST_DESCRIPTION_LIMIT).collect();
        object.insert("description".into(), Value::String(cut));
        object.insert("description_truncated".into(), Value::Bool(true));
    }
    value
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

/// The paging fields every list response carries.
pub fn page_info(page: crate::store::Page, count: usize, total: i64) -> Value {
    let seen = i64::from(page.page - 1) * i64::from(page.per_page) + count as i64;
    json!({
        "count": count,
        "total": total,
        "page": page.page,
        "per_page": page.per_page,
        "has_more": seen < total,
    })
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
