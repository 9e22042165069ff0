//! `find_versions`, `manage_version`: numbered snapshots of a project's docs, features, data
//! or PRD, and restoring one.

use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::params::tool_args;
use super::projects::PROJECT_HINT;
use super::shapes;
use super::{
    Fields, Parameters, RowView, ToolError, ToolResult, success, success_fields, to_json, validate,
};
use crate::board::{VersionAction, VersionField};
use crate::mcp::BoardServer;
use crate::resources::changes::Change;
use crate::store::Id;
use crate::store::restore::{RestoreRefusal, project_json};
use crate::store::versions::{NewVersion, Version};

const VERSION_HINT: &str =
    "Use find_versions with the project_id and field_name to list version numbers";

tool_args! {
    paged pub struct FindVersionsArgs {
        pub project_id: String,
        /// Only versions of this field: docs, features, data or prd.
        pub field_name: Option<VersionField>,
        /// Return this one version with its content (needs field_name).
        pub version_number: Option<i32>,
    }
}

tool_args! {
    pub struct ManageVersionArgs {
        /// create (snapshot) or restore.
        pub action: VersionAction,
        pub project_id: String,
        /// docs, features, data or prd.
        pub field_name: VersionField,
        /// Required for restore: the version to bring back.
        pub version_number: Option<i32>,
        /// For create: the content to record, in the field's shape (docs: a list of documents as
        /// find_documents returns them; features: a list of {"name": ...} objects as
        /// get_project_features returns them; prd: an object; data: an object or list). When
        /// omitted, the field's current value is recorded (the way to snapshot docs or features
        /// for a client whose schema checks accept only an object here).
        #[serde(default)]
        #[schemars(schema_with = "super::params::json_object")]
        pub content: Option<Value>,
        /// What changed in this version.
        pub change_summary: Option<String>,
        /// The document this version is about, if any.
        pub document_id: Option<String>,
        /// Who made the version. Defaults to "system".
        pub created_by: Option<String>,
    }
}

#[tool_router(router = version_tools, vis = "pub(crate)")]
impl BoardServer {
    #[tool(
        description = "List a project's versions (paginated, newest first; content left out), optionally of one field, or get one version with its content by field_name and version_number."
    )]
    pub async fn find_versions(
        &self,
        Parameters(args): Parameters<FindVersionsArgs>,
    ) -> ToolResult {
        let project_id = validate::id("project_id", Some(&args.project_id))?;
        if let Some(number) = args.version_number {
            let field = args.field_name.ok_or_else(|| {
                ToolError::invalid(
                    "field_name",
                    "field_name is required with version_number",
                    "Pass field_name: docs, features, data or prd",
                )
            })?;
            let version = self.find_version(project_id, field, number).await?;
            return Ok(success(json!({ "version": to_json(&version) })));
        }
        let page = args.asked_page()?;
        let field = args.field_name.map(VersionField::as_str);
        let found = self.store().list_versions(project_id, field, page).await?;
        Ok(success_fields(Fields::new().page(
            "versions",
            &found,
            page,
            RowView::Summary,
        )))
    }

    #[tool(
        description = "Create a version (a numbered snapshot of a project's docs, features, data or prd), or restore one. Restoring first snapshots the current value, so nothing is lost."
    )]
    pub async fn manage_version(
        &self,
        Parameters(args): Parameters<ManageVersionArgs>,
    ) -> ToolResult {
        let project_id = validate::id("project_id", Some(&args.project_id))?;
        self.require_project(project_id).await?;
        let created_by =
            validate::opt_title("created_by", args.created_by)?.unwrap_or_else(|| "system".into());
        match args.action {
            VersionAction::Create => {
                let content = match args.content {
                    Some(content) => shapes::check("content", args.field_name, content)?,
                    None => self.current_value(project_id, args.field_name).await?,
                };
                let version = self
                    .store()
                    .create_version(&NewVersion {
                        project_id,
                        field_name: args.field_name.as_str(),
                        content,
                        change_summary: validate::opt_text(
                            "change_summary",
                            args.change_summary,
                            validate::MAX_TEXT_CHARS,
                        )?
                        .unwrap_or_default(),
                        change_type: "create",
                        document_id: validate::opt_id("document_id", args.document_id.as_deref())?,
                        created_by,
                    })
                    .await?;
                Ok(success(json!({
                    "version": to_json(&version),
                    "version_number": version.version_number,
                    "message": format!("Version {} of {} created", version.version_number, version.field_name),
                })))
            }
            VersionAction::Restore => {
                let number = args.version_number.ok_or_else(|| {
                    ToolError::invalid(
                        "version_number",
                        "version_number is required to restore",
                        VERSION_HINT,
                    )
                })?;
                let restored = self
                    .store()
                    .restore_version(project_id, args.field_name, number, &created_by)
                    .await?
                    .map_err(refused)?;
                for &document_id in &restored.documents {
                    self.document_changed(project_id, document_id);
                }
                self.changed(Change::Project { project_id });
                Ok(success(json!({
                    "restored_version": number,
                    "backup_version": restored.backup.version_number,
                    "version": to_json(&restored.restored),
                    "message": format!("Restored {} to version {number}", args.field_name.as_str()),
                })))
            }
        }
    }
}

impl BoardServer {
    async fn find_version(
        &self,
        project_id: Id,
        field: VersionField,
        number: i32,
    ) -> Result<Version, ToolError> {
        let version = self
            .store()
            .get_version(project_id, field.as_str(), number)
            .await?;
        version.ok_or_else(|| {
            ToolError::not_found(
                "version",
                format!("{} #{number}", field.as_str()),
                VERSION_HINT,
            )
        })
    }

    /// Sets a project's features, prd or data as manage_project asked, versioned like a
    /// restore: a snapshot of the value before (unless the project is new), then the new value.
    pub(crate) async fn set_versioned(
        &self,
        project_id: Id,
        field: VersionField,
        value: Value,
        new_project: bool,
    ) -> Result<(), ToolError> {
        let Some(column) = project_json(field) else {
            return Ok(());
        };
        let mut version = NewVersion {
            project_id,
            field_name: field.as_str(),
            content: self.current_value(project_id, field).await?,
            change_summary: "Automatic snapshot before manage_project changed it".into(),
            change_type: "create",
            document_id: None,
            created_by: "manage_project".into(),
        };
        if !new_project {
            self.store().create_version(&version).await?;
        }
        self.store()
            .set_project_json(project_id, column, &value)
            .await?;
        version.content = value;
        version.change_summary = "Set by manage_project".into();
        self.store().create_version(&version).await?;
        Ok(())
    }

    /// The field's value now: the project's JSON column, or the list of its documents.
    async fn current_value(&self, project_id: Id, field: VersionField) -> Result<Value, ToolError> {
        let value = self.store().field_value(project_id, field).await?;
        ToolError::present("project", project_id, value, PROJECT_HINT)
    }
}

/// A refused restore, in the tool's terms.
fn refused(refusal: RestoreRefusal) -> ToolError {
    match refusal {
        RestoreRefusal::NoProject(id) => ToolError::not_found("project", id, PROJECT_HINT),
        RestoreRefusal::NoVersion { field, number } => {
            ToolError::not_found("version", format!("{field} #{number}"), VERSION_HINT)
        }
        RestoreRefusal::NotDocuments { .. } => ToolError::invalid(
            "version_number",
            refusal.to_string(),
            "Restore a docs version that Steward recorded itself (created without content)",
        ),
    }
}
