//! `find_projects`, `manage_project`, `get_project_features`.

use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::{
    Parameters, ToolError, ToolResult, list_view, merge, page_info, respond, success, to_json,
    validate,
};
use crate::board::Action;
use crate::mcp::BoardServer;
use crate::resources::changes::Change;
use crate::store::projects::{NewProject, ProjectChanges};

const NOT_FOUND_HINT: &str = "Use find_projects to list existing projects and their ids";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindProjectsArgs {
    /// Return this one project (full description).
    pub project_id: Option<String>,
    /// Case-insensitive text to look for in titles and descriptions.
    pub query: Option<String>,
    /// Page number, from 1.
    #[serde(default = "default_page")]
    pub page: u32,
    /// Results per page, 1 to 100.
    #[serde(default = "default_per_page")]
    pub per_page: u32,
}

pub(crate) fn default_page() -> u32 {
    1
}
pub(crate) fn default_per_page() -> u32 {
    10
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
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
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectIdArgs {
    pub project_id: String,
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
    ) -> Result<CallToolResult, ErrorData> {
        Ok(respond(
            "find_projects",
            self.find_projects_impl(args).await,
        ))
    }

    #[tool(
        description = "Create, update or delete a project. Deleting a project also deletes its tasks, documents and versions."
    )]
    pub async fn manage_project(
        &self,
        Parameters(args): Parameters<ManageProjectArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(respond(
            "manage_project",
            self.manage_project_impl(args).await,
        ))
    }

    #[tool(description = "Get a project's features (the JSON list kept on the project).")]
    pub async fn get_project_features(
        &self,
        Parameters(args): Parameters<ProjectIdArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(respond(
            "get_project_features",
            self.project_features_impl(args).await,
        ))
    }
}

impl BoardServer {
    async fn find_projects_impl(&self, args: FindProjectsArgs) -> ToolResult {
        if let Some(id) = validate::opt_id("project_id", args.project_id.as_deref())? {
            let project = self.store().get_project(id).await?;
            let project =
                project.ok_or_else(|| ToolError::not_found("project", id, NOT_FOUND_HINT))?;
            return Ok(success(json!({ "project": to_json(&project) })));
        }
        let page = validate::page(args.page, args.per_page)?;
        let query = validate::opt_text("query", args.query, validate::MAX_TITLE_CHARS)?;
        let found = self.store().list_projects(query.as_deref(), page).await?;
        let projects: Vec<_> = found.items.iter().map(list_view).collect();
        Ok(success(merge([
            json!({ "projects": projects, "query": query }),
            page_info(page, found.items.len(), found.total),
        ])))
    }

    async fn manage_project_impl(&self, args: ManageProjectArgs) -> ToolResult {
        let store = self.store();
        match args.action {
            Action::Create => {
                let new = NewProject {
                    title: validate::title("title", args.title)?,
                    description: validate::opt_text(
                        "description",
                        args.description,
                        validate::MAX_TEXT_CHARS,
                    )?
                    .unwrap_or_default(),
                    github_repo: validate::opt_text(
                        "github_repo",
                        args.github_repo,
                        validate::MAX_TITLE_CHARS,
                    )?,
                };
                let project = store.create_project(&new).await?;
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
                let changes = ProjectChanges {
                    title: validate::opt_title("title", args.title)?,
                    description: validate::opt_text(
                        "description",
                        args.description,
                        validate::MAX_TEXT_CHARS,
                    )?,
                    github_repo: validate::opt_text(
                        "github_repo",
                        args.github_repo,
                        validate::MAX_TITLE_CHARS,
                    )?,
                };
                let project = store.update_project(id, &changes).await?;
                let project =
                    project.ok_or_else(|| ToolError::not_found("project", id, NOT_FOUND_HINT))?;
                self.changed(Change::Project { project_id: id });
                Ok(success(
                    json!({ "project": to_json(&project), "message": "Project updated" }),
                ))
            }
            Action::Delete => {
                let id = validate::id("project_id", args.project_id.as_deref())?;
                if !store.delete_project(id).await? {
                    return Err(ToolError::not_found("project", id, NOT_FOUND_HINT));
                }
                self.changed(Change::Project { project_id: id });
                Ok(success(
                    json!({ "project_id": id, "message": "Project deleted" }),
                ))
            }
        }
    }

    async fn project_features_impl(&self, args: ProjectIdArgs) -> ToolResult {
        let id = validate::id("project_id", Some(&args.project_id))?;
        let project = self.store().get_project(id).await?;
        let project = project.ok_or_else(|| ToolError::not_found("project", id, NOT_FOUND_HINT))?;
        let count = project.features.0.as_array().map_or(0, Vec::len);
        Ok(success(
            json!({ "project_id": id, "features": project.features, "count": count }),
        ))
    }
}
