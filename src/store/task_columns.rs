//! Reading a page of tasks by column position. sqlx's derived `FromRow` looks every column up
//! by name in every row (a hash of the name and a compare: about a tenth of what a listing
//! costs Steward); the rows of one statement share their columns, so [`TaskColumns`] looks the
//! names up once, in the page's first row, and each row is read by position.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::Id;
use super::tasks::Task;

/// Where each of [`Task`]'s columns is in a statement's rows.
pub(super) struct TaskColumns {
    id: usize,
    project_id: usize,
    title: usize,
    description: usize,
    status: usize,
    assignee: usize,
    task_order: usize,
    feature: usize,
    archived: usize,
    archived_at: usize,
    archived_by: usize,
    created_at: usize,
    updated_at: usize,
    parent_task_id: usize,
    sources: usize,
    code_examples: usize,
    claimed_by: usize,
    claimed_client: usize,
    claimed_principal: usize,
    claim_token: usize,
    claimed_at: usize,
    lease_until: usize,
}

impl TaskColumns {
    /// The positions of the task's columns in `row` (any row of the statement); an error if
    /// one is missing, as `FromRow` gives.
    pub(super) fn of<R: Row>(row: &R) -> Result<TaskColumns, sqlx::Error>
    where
        &'static str: ColumnIndex<R>,
    {
        let at = |name: &'static str| name.index(row);
        Ok(TaskColumns {
            id: at("id")?,
            project_id: at("project_id")?,
            title: at("title")?,
            description: at("description")?,
            status: at("status")?,
            assignee: at("assignee")?,
            task_order: at("task_order")?,
            feature: at("feature")?,
            archived: at("archived")?,
            archived_at: at("archived_at")?,
            archived_by: at("archived_by")?,
            created_at: at("created_at")?,
            updated_at: at("updated_at")?,
            parent_task_id: at("parent_task_id")?,
            sources: at("sources")?,
            code_examples: at("code_examples")?,
            claimed_by: at("claimed_by")?,
            claimed_client: at("claimed_client")?,
            claimed_principal: at("claimed_principal")?,
            claim_token: at("claim_token")?,
            claimed_at: at("claimed_at")?,
            lease_until: at("lease_until")?,
        })
    }

    /// The task in `row`, each column decoded as `FromRow` does, and type-checked when
    /// `checked`; its blockers are left empty. On PostgreSQL a column's type comes with the
    /// statement, the same in every row; SQLite's decoders take any storage class (they
    /// convert it or fail, never panic). So the check, about a third of what reading a
    /// column costs, is made in a page's first row only.
    pub(super) fn read<'r, R: Row>(&self, row: &'r R, checked: bool) -> Result<Task, sqlx::Error>
    where
        usize: ColumnIndex<R>,
        Id: Decode<'r, R::Database> + Type<R::Database>,
        Option<Id>: Decode<'r, R::Database> + Type<R::Database>,
        String: Decode<'r, R::Database> + Type<R::Database>,
        Option<String>: Decode<'r, R::Database> + Type<R::Database>,
        i32: Decode<'r, R::Database> + Type<R::Database>,
        bool: Decode<'r, R::Database> + Type<R::Database>,
        DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
        Option<DateTime<Utc>>: Decode<'r, R::Database> + Type<R::Database>,
        Json<Value>: Decode<'r, R::Database> + Type<R::Database>,
    {
        Ok(Task {
            id: get(row, self.id, checked)?,
            project_id: get(row, self.project_id, checked)?,
            title: get(row, self.title, checked)?,
            description: get(row, self.description, checked)?,
            status: get(row, self.status, checked)?,
            assignee: get(row, self.assignee, checked)?,
            task_order: get(row, self.task_order, checked)?,
            feature: get(row, self.feature, checked)?,
            archived: get(row, self.archived, checked)?,
            archived_at: get(row, self.archived_at, checked)?,
            archived_by: get(row, self.archived_by, checked)?,
            created_at: get(row, self.created_at, checked)?,
            updated_at: get(row, self.updated_at, checked)?,
            parent_task_id: get(row, self.parent_task_id, checked)?,
            sources: get(row, self.sources, checked)?,
            code_examples: get(row, self.code_examples, checked)?,
            claimed_by: get(row, self.claimed_by, checked)?,
            claimed_client: get(row, self.claimed_client, checked)?,
            claimed_principal: get(row, self.claimed_principal, checked)?,
            claim_token: get(row, self.claim_token, checked)?,
            claimed_at: get(row, self.claimed_at, checked)?,
            lease_until: get(row, self.lease_until, checked)?,
            blocked_by: Vec::new(),
            open_blockers: Vec::new(),
        })
    }
}

/// Column `index` of `row`, type-checked when `checked`.
fn get<'r, R, T>(row: &'r R, index: usize, checked: bool) -> Result<T, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    match checked {
        true => row.try_get(index),
        false => row.try_get_unchecked(index),
    }
}
