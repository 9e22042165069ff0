//! Prompts built from board data: the assistant gets the facts, the user gets a one-click
//! starting point.
//! - `plan_feature`: break a feature into tasks on a project, knowing what already exists.
//! - `standup`: what moved on a project since a time (default: the last 24 hours).

use chrono::{Duration, Utc};
use rmcp::model::{GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage, Role};
use serde_json::{Value, json};

use crate::resources::BoardUri;
use crate::store::tasks::TaskQuery;
use crate::store::{Id, Page, Store};

/// Most tasks and changes a prompt carries; beyond that the assistant can call find_tasks.
const MAX_ROWS: u32 = 100;

/// Why a prompt could not be built, in words that say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("unknown prompt {0:?}; prompts/list names the prompts")]
    Unknown(String),
    #[error("argument {name}: {message}")]
    Argument { name: &'static str, message: String },
    #[error("project {0} not found; use find_projects or the steward://projects resource for ids")]
    NoProject(Id),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

pub fn list() -> Vec<Prompt> {
    let project = PromptArgument::new("project_id")
        .with_description("The project (its UUID; completion suggests them)")
        .with_required(true);
    vec![
        Prompt::new(
            "plan_feature",
            Some("Break a feature into tasks on a project, given the project, its documents and the tasks that already exist"),
            Some(vec![
                project.clone(),
                PromptArgument::new("feature")
                    .with_description("The feature's name, also used as the tasks' `feature` field")
                    .with_required(true),
                PromptArgument::new("goal")
                    .with_description("What the feature should achieve, in a sentence or two")
                    .with_required(false),
            ]),
        )
        .with_title("Plan a feature into tasks"),
        Prompt::new(
            "standup",
            Some("A stand-up summary of what moved on a project: task changes since a time, and what is in progress"),
            Some(vec![
                project,
                PromptArgument::new("since")
                    .with_description("How far back, as a duration such as 24h or 3d (default 24h)")
                    .with_required(false),
            ]),
        )
        .with_title("Stand-up summary"),
    ]
}

pub fn is_board_prompt(name: &str) -> bool {
    matches!(name, "plan_feature" | "standup")
}

pub async fn get(
    store: &Store,
    name: &str,
    arguments: Option<&JsonObject>,
) -> Result<GetPromptResult, PromptError> {
    let args = Arguments(arguments);
    match name {
        "plan_feature" => plan_feature(store, &args).await,
        "standup" => standup(store, &args).await,
        other => Err(PromptError::Unknown(other.to_string())),
    }
}

async fn plan_feature(store: &Store, args: &Arguments<'_>) -> Result<GetPromptResult, PromptError> {
    let project_id = args.project_id()?;
    let feature = args.required("feature")?;
    let goal = args.optional("goal");
    let project = store
        .get_project(project_id)
        .await?
        .ok_or(PromptError::NoProject(project_id))?;
    let tasks = open_tasks(store, project_id).await?;
    let same_feature: Vec<&Value> = tasks
        .iter()
        .filter(|t| t["feature"].as_str() == Some(feature))
        .collect();
    let text = format!(
        "Plan the feature \"{feature}\" for the project \"{title}\" (project_id {project_id}).\n\
         {goal}\n\
         Project description: {description}\n\n\
         Open tasks already on this feature ({n_same}): {same}\n\
         Other open tasks on the project: {n_all}.\n\n\
         Break the feature into small tasks that each fit in a day, in the order they should be \
         done. Do not repeat tasks that already exist. For each new task call manage_task with \
         action=\"create\", project_id=\"{project_id}\", feature=\"{feature}\", a short title, a \
         description saying what done looks like, and task_order from 100 (first) downwards. \
         The project's documents are at {documents}; read the specs there first if any.",
        title = project.title,
        description = if project.description.is_empty() {
            "(none)"
        } else {
            &project.description
        },
        goal = goal.map(|g| format!("Goal: {g}")).unwrap_or_default(),
        n_same = same_feature.len(),
        same = json!(same_feature),
        n_all = tasks.len(),
        documents = BoardUri::ProjectDocuments(project_id),
    );
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(format!("Plan \"{feature}\" on {}", project.title)),
    )
}

async fn standup(store: &Store, args: &Arguments<'_>) -> Result<GetPromptResult, PromptError> {
    let project_id = args.project_id()?;
    let since_text = args.optional("since").unwrap_or("24h");
    let period = humantime::parse_duration(since_text).map_err(|e| PromptError::Argument {
        name: "since",
        message: format!("{since_text:?} is not a duration ({e}); use e.g. 24h or 3d"),
    })?;
    let period = Duration::from_std(period).map_err(|_| PromptError::Argument {
        name: "since",
        message: format!("{since_text:?} is too long; use at most a few years"),
    })?;
    let project = store
        .get_project(project_id)
        .await?
        .ok_or(PromptError::NoProject(project_id))?;
    let since = Utc::now() - period;
    let changes = store
        .task_changes_since(project_id, since, i64::from(MAX_ROWS))
        .await?;
    let in_progress: Vec<Value> = open_tasks(store, project_id)
        .await?
        .into_iter()
        .filter(|t| matches!(t["status"].as_str(), Some("doing" | "review")))
        .collect();
    let text = format!(
        "Write a short stand-up summary for the project \"{title}\" covering the last {since_text} \
         (since {since}). Group it as: done, moved forward, started, blocked or stuck (in progress \
         with no change), and say who did what when the data says so. Be brief: one line per task.\n\n\
         Task changes in that period ({n_changes}, oldest first; field \"created\" is a new task):\n{changes}\n\n\
         Tasks now in progress (doing or review):\n{in_progress}",
        title = project.title,
        since = since.to_rfc3339(),
        n_changes = changes.len(),
        changes = json!(changes),
        in_progress = json!(in_progress),
    );
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(format!("Stand-up for {} ({since_text})", project.title)),
    )
}

async fn open_tasks(store: &Store, project_id: Id) -> Result<Vec<Value>, sqlx::Error> {
    let query = TaskQuery {
        project_id: Some(project_id),
        ..TaskQuery::default()
    };
    let page = Page {
        page: 1,
        per_page: MAX_ROWS,
    };
    let tasks = store.list_tasks(&query, page).await?;
    Ok(tasks.items.iter().map(crate::views::list_view).collect())
}

/// A prompt's arguments (all strings, as the protocol sends them).
struct Arguments<'a>(Option<&'a JsonObject>);

impl Arguments<'_> {
    fn optional(&self, name: &str) -> Option<&str> {
        self.0
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<&str, PromptError> {
        self.optional(name).ok_or_else(|| PromptError::Argument {
            name,
            message: "is required".to_string(),
        })
    }

    fn project_id(&self) -> Result<Id, PromptError> {
        let value = self.required("project_id")?;
        value.parse().map_err(|_| PromptError::Argument {
            name: "project_id",
            message: format!("{value:?} is not a project UUID; find_projects lists them"),
        })
    }
}
