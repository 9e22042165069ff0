//! `steward://` resource URIs: what each names, parsed and printed in one place.

use std::fmt;

use crate::store::Id;

pub const SCHEME: &str = "steward://";

/// A board resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BoardUri {
    /// `steward://projects`: every project.
    Projects,
    /// `steward://projects/{project_id}`: one project, with task counts and its documents.
    Project(Id),
    /// `steward://projects/{project_id}/tasks`: the project's open tasks.
    ProjectTasks(Id),
    /// `steward://projects/{project_id}/documents`: the project's documents (without content).
    ProjectDocuments(Id),
    /// `steward://projects/{project_id}/documents/{document_id}`: one document with its content.
    Document(Id, Id),
    /// `steward://tasks/{task_id}`: one task with its full description.
    Task(Id),
}

/// Why a URI names no board resource, in words that say what to send instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    #[error("not a steward:// URI")]
    NotSteward,
    #[error("unknown resource path {0:?}; see resources/list and resources/templates/list")]
    UnknownPath(String),
    #[error("{what} {value:?} is not a UUID")]
    BadId { what: &'static str, value: String },
}

impl BoardUri {
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let path = uri.strip_prefix(SCHEME).ok_or(UriError::NotSteward)?;
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let id = |what: &'static str, value: &str| {
            value.parse::<Id>().map_err(|_| UriError::BadId {
                what,
                value: value.to_string(),
            })
        };
        match parts.as_slice() {
            ["projects"] => Ok(BoardUri::Projects),
            ["projects", project] => Ok(BoardUri::Project(id("project id", project)?)),
            ["projects", project, "tasks"] => {
                Ok(BoardUri::ProjectTasks(id("project id", project)?))
            }
            ["projects", project, "documents"] => {
                Ok(BoardUri::ProjectDocuments(id("project id", project)?))
            }
            ["projects", project, "documents", document] => Ok(BoardUri::Document(
                id("project id", project)?,
                id("document id", document)?,
            )),
            ["tasks", task] => Ok(BoardUri::Task(id("task id", task)?)),
            _ => Err(UriError::UnknownPath(path.to_string())),
        }
    }
}

impl fmt::Display for BoardUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoardUri::Projects => write!(f, "{SCHEME}projects"),
            BoardUri::Project(p) => write!(f, "{SCHEME}projects/{p}"),
            BoardUri::ProjectTasks(p) => write!(f, "{SCHEME}projects/{p}/tasks"),
            BoardUri::ProjectDocuments(p) => write!(f, "{SCHEME}projects/{p}/documents"),
            BoardUri::Document(p, d) => write!(f, "{SCHEME}projects/{p}/documents/{d}"),
            BoardUri::Task(t) => write!(f, "{SCHEME}tasks/{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_round_trips() {
        let (p, d) = (Id::new(), Id::new());
        for uri in [
            BoardUri::Projects,
            BoardUri::Project(p),
            BoardUri::ProjectTasks(p),
            BoardUri::ProjectDocuments(p),
            BoardUri::Document(p, d),
            BoardUri::Task(d),
        ] {
            assert_eq!(BoardUri::parse(&uri.to_string()), Ok(uri));
        }
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        assert_eq!(BoardUri::parse("test://x"), Err(UriError::NotSteward));
        assert!(matches!(
            BoardUri::parse("steward://projects/nope"),
            Err(UriError::BadId {
                what: "project id",
                ..
            })
        ));
        assert!(matches!(
            BoardUri::parse("steward://elsewhere"),
            Err(UriError::UnknownPath(_))
        ));
    }
}
