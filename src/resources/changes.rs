//! What changed on the board, told to whoever listens on this replica: resource subscribers
//! (`resources/subscribe` in the session era, `subscriptions/listen` in 2026-07-28).
//!
//! Changes made through another replica are not seen here; a subscriber learns of them on its
//! next read. That is the documented limit ("at least on this replica").

use tokio::sync::broadcast;

use super::uri::BoardUri;
use crate::store::Id;
use crate::store::tasks::Task;

/// Changes that waited longer than this many sends for a slow listener are dropped for it;
/// it then gets a catch-all notice (see [`Listener::recv`]).
const BUFFER: usize = 256;

/// One change to the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Project { project_id: Id },
    Task { project_id: Id, task_id: Id },
    Document { project_id: Id, document_id: Id },
}

impl Change {
    /// A change to this task.
    pub fn of_task(task: &Task) -> Self {
        Change::Task {
            project_id: task.project_id,
            task_id: task.id,
        }
    }

    /// The project this change belongs to.
    pub fn project_id(&self) -> Id {
        match *self {
            Change::Project { project_id }
            | Change::Task { project_id, .. }
            | Change::Document { project_id, .. } => project_id,
        }
    }

    /// The resources whose content this change alters.
    pub fn affected(&self) -> Vec<BoardUri> {
        match *self {
            Change::Project { project_id } => {
                vec![BoardUri::Projects, BoardUri::Project(project_id)]
            }
            Change::Task {
                project_id,
                task_id,
            } => vec![
                BoardUri::Project(project_id),
                BoardUri::ProjectTasks(project_id),
                BoardUri::Task(task_id),
            ],
            Change::Document {
                project_id,
                document_id,
            } => vec![
                BoardUri::ProjectDocuments(project_id),
                BoardUri::Document(project_id, document_id),
            ],
        }
    }
}

/// The replica-wide channel of board changes.
#[derive(Debug, Clone)]
pub struct BoardChanges {
    sender: broadcast::Sender<Change>,
}

impl Default for BoardChanges {
    fn default() -> Self {
        BoardChanges {
            sender: broadcast::channel(BUFFER).0,
        }
    }
}

impl BoardChanges {
    /// Tells every listener; nobody listening is the common case, not an error.
    pub fn publish(&self, change: Change) {
        if self.sender.send(change).is_err() {
            tracing::trace!(?change, "board change with no listener");
        }
    }

    /// Tells every listener that each of these tasks, as `(project_id, task_id)`, changed.
    pub fn publish_tasks(&self, tasks: &[(Id, Id)]) {
        for &(project_id, task_id) in tasks {
            self.publish(Change::Task {
                project_id,
                task_id,
            });
        }
    }

    /// Every change as it happens, for live views (`/api/events`).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    pub fn listen(&self) -> Listener {
        Listener {
            receiver: self.sender.subscribe(),
        }
    }
}

pub struct Listener {
    receiver: broadcast::Receiver<Change>,
}

impl Listener {
    /// The URIs changed by the next change; `None` once the channel is closed. A listener that
    /// fell behind learns that everything may have changed (`Some(None)`), rather than nothing.
    pub async fn recv(&mut self) -> Option<Option<Vec<BoardUri>>> {
        match self.receiver.recv().await {
            Ok(change) => Some(Some(change.affected())),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "a resource subscriber fell behind; telling it everything changed"
                );
                Some(None)
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_change_touches_its_project_and_task_lists() {
        let (project_id, task_id) = (Id::new(), Id::new());
        let uris: Vec<String> = Change::Task {
            project_id,
            task_id,
        }
        .affected()
        .iter()
        .map(ToString::to_string)
        .collect();
        assert!(uris.contains(&format!("steward://projects/{project_id}/tasks")));
        assert!(uris.contains(&format!("steward://tasks/{task_id}")));
    }

    #[tokio::test]
    async fn listeners_hear_published_changes() {
        let changes = BoardChanges::default();
        let mut listener = changes.listen();
        let project_id = Id::new();
        changes.publish(Change::Project { project_id });
        let uris = listener.recv().await.flatten().unwrap_or_default();
        assert!(uris.contains(&BoardUri::Project(project_id)));
    }
}
