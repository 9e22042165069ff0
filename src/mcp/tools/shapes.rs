//! The shapes a project's versioned fields must have, checked before anything is stored, so
//! a version can always be restored later (and `get_project_features` always lists features).

use serde_json::Value;

use super::{ToolError, validate};
use crate::board::{DocumentType, VersionField};
use crate::store::documents::Document;

const DOCS_SHAPE: &str = r#"a list of documents as find_documents returns them: [{"id": "<uuid>", "project_id": "<uuid>", "document_type": "spec", "title": "Spec", "content": {}, "tags": [], "author": "", "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"}]"#;
const FEATURES_SHAPE: &str = r#"a list of features as get_project_features returns them: [{"name": "login", ...any other fields}]"#;
const PRD_SHAPE: &str = r#"a JSON object, e.g. {"goal": "...", "requirements": [...]}"#;
const DATA_SHAPE: &str = r#"a JSON object or list, e.g. {"metrics": [...]}"#;

/// `value` when it has the shape `field` needs; otherwise a `validation_error` on `field_name`
/// (named `error_field`) that shows the expected shape.
pub fn check(error_field: &str, field: VersionField, value: Value) -> Result<Value, ToolError> {
    let value = validate::json(error_field, value)?;
    let problem = match field {
        VersionField::Docs => docs_problem(&value),
        VersionField::Features => features_problem(&value),
        VersionField::Prd => (!value.is_object()).then(|| "it is not a JSON object".to_string()),
        VersionField::Data => (!value.is_object() && !value.is_array())
            .then(|| "it is neither a JSON object nor a list".to_string()),
    };
    match problem {
        None => Ok(value),
        Some(problem) => Err(ToolError::invalid(
            error_field,
            format!("{error_field} is not valid {}: {problem}", field.as_str()),
            format!("Pass {}", expected(field)),
        )),
    }
}

/// The expected shape of `field`, in words and an example.
pub fn expected(field: VersionField) -> &'static str {
    match field {
        VersionField::Docs => DOCS_SHAPE,
        VersionField::Features => FEATURES_SHAPE,
        VersionField::Prd => PRD_SHAPE,
        VersionField::Data => DATA_SHAPE,
    }
}

fn docs_problem(value: &Value) -> Option<String> {
    let documents: Vec<Document> =
        match serde_path_to_error::deserialize::<_, Vec<Document>>(value.clone()) {
            Ok(documents) => documents,
            Err(e) => return Some(e.to_string()),
        };
    documents
        .iter()
        .find(|d| !DocumentType::ALL.contains(&d.document_type.as_str()))
        .map(|d| {
            format!(
                "document {} has document_type {:?}; allowed: {}",
                d.id,
                d.document_type,
                DocumentType::ALL.join(", ")
            )
        })
}

fn features_problem(value: &Value) -> Option<String> {
    let Some(items) = value.as_array() else {
        return Some("it is not a list".to_string());
    };
    items.iter().enumerate().find_map(|(i, item)| {
        let named = item
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|name| !name.trim().is_empty());
        (!named).then(|| format!("item {i} is not an object with a non-blank \"name\""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_what_cannot_be_restored() {
        assert!(check("content", VersionField::Docs, json!({"v": 1})).is_err());
        assert!(check("content", VersionField::Features, json!({"auth": 1})).is_err());
        assert!(check("content", VersionField::Features, json!([{"name": "a"}])).is_ok());
        assert!(check("content", VersionField::Prd, json!([1])).is_err());
        assert!(check("content", VersionField::Data, json!("x")).is_err());
        assert!(check("content", VersionField::Docs, json!([])).is_ok());
    }
}
