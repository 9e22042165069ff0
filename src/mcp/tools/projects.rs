//! `find_projects`, `manage_project`, `get_project_features`.

use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::params::tool_args;
use super::shapes;
use super::{
    Fields, Parameters, RowView, ToolError, ToolResult, remembered, success, success_fields,
    to_json, validate, written,
};
use crate::board::{Action, VersionField};
use crate::mcp::BoardServer;
use crate::resources::changes::Change;
use crate::store::Id;
use crate::store::answer_memo::AnswerKey;
use crate::store::projects::{NewProject, Project, ProjectChanges};

/// What to do about a project id that names no project; every tool that takes one says it.
pub(super) const PROJECT_HINT: &str = "Use find_projects to list existing projects and their ids";

tool_args! {
    paged pub struct FindProjectsArgs {
        /// Return this one project (full description).
        pub project_id: Option<String>,
        /// Case-insensitive text to look for in titles and descriptions.
        pub query: Option<String>,
    }
}

tool_args! {
    pub struct ManageProjectArgs {
        /// create, update or delete.
        pub action: Action,
        /// Required for update and delete.
        pub project_id: Option<String>,
        /// Required for create.
        pub title: Option<String>,
        pub description: Option<String>,
        /// e.g. https://github.com/owner/repo
        pub github_repo: Option<String>,
        /// Pin the project (true) so people see it first, or unpin it (false).
        pub pinned: Option<bool>,
        /// The project's features: a list of objects with a "name", e.g.
        /// [{"name": "login", "status": "planned"}]. Each change is kept as a version.
        #[serde(default)]
        #[schemars(schema_with = "super::params::json_list")]
        pub features: Option<Value>,
        /// The product requirements: a JSON object. Each change is kept as a version.
        #[serde(default)]
        #[schemars(schema_with = "super::params::json_object")]
        pub prd: Option<Value>,
        /// Free project data: a JSON object (a list is accepted too). Each change is kept as a
        /// version.
        #[serde(default)]
        #[schemars(schema_with = "super::params::json_object")]
        pub data: Option<Value>,
    }
}

tool_args! {
    pub struct ProjectIdArgs {
        pub project_id: String,
    }
}

#[tool_router(router = project_tools, vis = "pub(crate)")]
impl BoardServer {
    /// List or search projects, or get one by id.
    #[tool(
        description = "List projects (paginated, newest first), search them by text with `query`, or get one project with `project_id`."
    )]
    pub async fn find_projects(
        &self,
        Parameters(args): Parameters<FindProjectsArgs>,
    ) -> ToolResult {
        if let Some(id) = validate::opt_id("project_id", args.project_id.as_deref())? {
            let project = self.store().get_project(id).await?;
            return ToolError::found("project", id, project, PROJECT_HINT);
        }
        let page = args.asked_page()?;
        let query = validate::opt_text("query", args.query, validate::MAX_TITLE_CHARS)?;
        let key = AnswerKey::new("find_projects", &(&query, page));
        remembered(&self.ctx.answers, key, async {
            let found = self.store().list_projects(query.as_deref(), page).await?;
            Ok(success_fields(
                Fields::new()
                    .page("projects", &found, page, RowView::List)
                    .value("query", &query),
            ))
        })
        .await
    }

    #[tool(
        description = "Create, update or delete a project, including its features (a list of {\"name\": ...} objects), prd (an object) and data (an object or list); each change of those three is kept as a version (see find_versions). Deleting a project also deletes its tasks, documents and versions."
    )]
    pub async fn manage_project(
        &self,
        Parameters(args): Parameters<ManageProjectArgs>,
    ) -> ToolResult {
        let store = self.store();
        let json_fields = json_fields(args.features, args.prd, args.data)?;
        match args.action {
            Action::Create => {
                let title = validate::title("title", args.title)?;
                let (description, github_repo) = texts(args.description, args.github_repo)?;
                let new = NewProject {
                    title,
                    description: description.unwrap_or_default(),
                    github_repo,
                };
                let mut project = store.create_project(&new).await?;
                if args.pinned.is_some() {
                    let pin = ProjectChanges {
                        pinned: args.pinned,
                        ..ProjectChanges::default()
                    };
                    project = store
                        .update_project(project.id, &pin)
                        .await?
                        .unwrap_or(project);
                }
                if !json_fields.is_empty() {
                    self.set_json_fields(project.id, json_fields, true).await?;
                    project = store.get_project(project.id).await?.unwrap_or(project);
                }
                self.changed(Change::Project {
                    project_id: project.id,
                });
                Ok(success(json!({
                    "project": to_json(&project),
                    "project_id": project.id,
                    "message": "Project created",
                })))
            }
            Action::Update => {
                let id = validate::id("project_id", args.project_id.as_deref())?;
                let title = validate::opt_title("title", args.title)?;
                let (description, github_repo) = texts(args.description, args.github_repo)?;
                let changes = ProjectChanges {
                    title,
                    description,
                    github_repo,
                    pinned: args.pinned,
                };
                let project = store.update_project(id, &changes).await?;
                let mut project = ToolError::present("project", id, project, PROJECT_HINT)?;
                if !json_fields.is_empty() {
                    self.set_json_fields(id, json_fields, false).await?;
                    project = store.get_project(id).await?.unwrap_or(project);
                }
                self.changed(Change::Project { project_id: id });
                Ok(written("project", &project, "Project updated"))
            }
            Action::Delete => {
                let id = validate::id("project_id", args.project_id.as_deref())?;
                if !store.delete_project(id).await? {
                    return Err(ToolError::not_found("project", id, PROJECT_HINT));
                }
                self.changed(Change::Project { project_id: id });
                Ok(success(
                    json!({ "project_id": id, "message": "Project deleted" }),
                ))
            }
        }
    }

    #[tool(description = "Get a project's features (the JSON list kept on the project).")]
    pub async fn get_project_features(
        &self,
        Parameters(args): Parameters<ProjectIdArgs>,
    ) -> ToolResult {
        let id = validate::id("project_id", Some(&args.project_id))?;
        let project = self.project(id).await?;
        let count = project.features.0.as_array().map_or(0, Vec::len);
        Ok(success(
            json!({ "project_id": id, "features": project.features, "count": count }),
        ))
    }
}

impl BoardServer {
    /// The project with id `id`; not_found when there is none.
    async fn project(&self, id: Id) -> Result<Project, ToolError> {
        let project = self.store().get_project(id).await?;
        ToolError::present("project", id, project, PROJECT_HINT)
    }

    /// Refuses a project id that names no project.
    pub(super) async fn require_project(&self, id: Id) -> Result<(), ToolError> {
        self.project(id).await.map(drop)
    }

    async fn set_json_fields(
        &self,
        id: Id,
        fields: Vec<(VersionField, Value)>,
        new_project: bool,
    ) -> Result<(), ToolError> {
        for (field, value) in fields {
            self.set_versioned(id, field, value, new_project).await?;
        }
        Ok(())
    }
}

/// The description and GitHub repository manage_project was given, each checked.
fn texts(
    description: Option<String>,
    github_repo: Option<String>,
) -> Result<(Option<String>, Option<String>), ToolError> {
    Ok((
        validate::opt_text("description", description, validate::MAX_TEXT_CHARS)?,
        validate::opt_text("github_repo", github_repo, validate::MAX_TITLE_CHARS)?,
    ))
}

/// The features, prd and data manage_project was given, each checked against its shape.
fn json_fields(
    features: Option<Value>,
    prd: Option<Value>,
    data: Option<Value>,
) -> Result<Vec<(VersionField, Value)>, ToolError> {
    [
        ("features", VersionField::Features, features),
        ("prd", VersionField::Prd, prd),
        ("data", VersionField::Data, data),
    ]
    .into_iter()
    .filter_map(|(name, field, value)| value.map(|v| (name, field, v)))
    .map(|(name, field, value)| Ok((field, shapes::check(name, field, value)?)))
    .collect()
}
