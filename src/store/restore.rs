//! Restoring a version of a project's docs, features, data or prd: the one path both
//! `manage_version restore` and the dashboard take. The current value is snapshotted first (so
//! a restore never loses work), then the old value is written back and the restore is recorded
//! as a version of its own, made by `created_by`.

use serde_json::Value;

use super::documents::Document;
use super::projects::ProjectJson;
use super::versions::{NewVersion, Version};
use super::{Id, Store};
use crate::board::VersionField;

/// What a restore did. The callers tell subscribers: the project changed, and so did each of
/// `documents` (a docs restore).
#[derive(Debug, Clone)]
pub struct Restored {
    /// The version recording the restore.
    pub restored: Version,
    /// The snapshot of the value the restore replaced.
    pub backup: Version,
    /// The number of the version brought back.
    pub from_version: i32,
    pub documents: Vec<Id>,
}

/// Why a restore was refused (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreRefusal {
    #[error("project {0} not found")]
    NoProject(Id),
    #[error("version {field} #{number} not found")]
    NoVersion { field: &'static str, number: i32 },
    /// A docs version whose content is not a list of documents (one a client recorded itself).
    #[error(
        "version {number} of docs is not a list of documents ({reason}), so it cannot be restored"
    )]
    NotDocuments { number: i32, reason: String },
}

/// The project column holding `field`, or `None` for docs (documents have their own table).
pub fn project_json(field: VersionField) -> Option<ProjectJson> {
    match field {
        VersionField::Docs => None,
        VersionField::Features => Some(ProjectJson::Features),
        VersionField::Data => Some(ProjectJson::Data),
        VersionField::Prd => Some(ProjectJson::Prd),
    }
}

impl Store {
    /// The field's value now: the project's JSON column, or the list of its documents. `None`
    /// when the project does not exist.
    pub async fn field_value(
        &self,
        project_id: Id,
        field: VersionField,
    ) -> Result<Option<Value>, sqlx::Error> {
        let Some(project) = self.get_project(project_id).await? else {
            return Ok(None);
        };
        let value = match project_json(field) {
            None => serde_json::to_value(self.all_documents(project_id).await?)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            Some(ProjectJson::Features) => project.features.0,
            Some(ProjectJson::Data) => project.data.0,
            Some(ProjectJson::Prd) => project.prd.0,
        };
        Ok(Some(value))
    }

    /// Restores version `number` of the project's `field`, recorded as made by `created_by`.
    pub async fn restore_version(
        &self,
        project_id: Id,
        field: VersionField,
        number: i32,
        created_by: &str,
    ) -> Result<Result<Restored, RestoreRefusal>, sqlx::Error> {
        let Some(current) = self.field_value(project_id, field).await? else {
            return Ok(Err(RestoreRefusal::NoProject(project_id)));
        };
        let Some(target) = self.get_version(project_id, field.as_str(), number).await? else {
            return Ok(Err(RestoreRefusal::NoVersion {
                field: field.as_str(),
                number,
            }));
        };
        // Check the target can be applied before anything is written.
        let documents = match project_json(field) {
            Some(_) => None,
            None => match serde_json::from_value::<Vec<Document>>(target.content.0.clone()) {
                Ok(documents) => Some(documents),
                Err(e) => {
                    return Ok(Err(RestoreRefusal::NotDocuments {
                        number,
                        reason: e.to_string(),
                    }));
                }
            },
        };
        let mut snapshot = NewVersion {
            project_id,
            field_name: field.as_str(),
            content: current,
            change_summary: format!("Automatic snapshot before restoring version {number}"),
            change_type: "create",
            document_id: None,
            created_by: created_by.to_string(),
        };
        let backup = self.create_version(&snapshot).await?;
        let mut changed = Vec::new();
        match (project_json(field), documents) {
            (Some(column), _) => {
                self.set_project_json(project_id, column, &target.content.0)
                    .await?;
            }
            (None, documents) => {
                let documents = documents.unwrap_or_default();
                self.replace_documents(project_id, &documents).await?;
                changed.extend(documents.iter().map(|d| d.id));
            }
        }
        snapshot.content = target.content.0;
        snapshot.change_summary = format!("Restored version {number}");
        snapshot.change_type = "restore";
        let restored = self.create_version(&snapshot).await?;
        Ok(Ok(Restored {
            restored,
            backup,
            from_version: number,
            documents: changed,
        }))
    }
}
