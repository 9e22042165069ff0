//! `find_documents`, `manage_document`.

use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::params::tool_args;
use super::{
    Fields, Parameters, RowView, ToolError, ToolResult, remembered, success, success_fields,
    to_json, validate, written,
};
use crate::board::{Action, DocumentType};
use crate::mcp::BoardServer;
use crate::resources::changes::Change;
use crate::store::Id;
use crate::store::answer_memo::AnswerKey;
use crate::store::documents::{DocumentChanges, DocumentQuery, NewDocument};

const NOT_FOUND_HINT: &str = "Use find_documents with the project_id to list its documents";

tool_args! {
    paged pub struct FindDocumentsArgs {
        pub project_id: String,
        /// Return this one document with its full content.
        pub document_id: Option<String>,
        /// Only documents of this type.
        pub document_type: Option<DocumentType>,
        /// Case-insensitive text to look for in titles.
        pub query: Option<String>,
    }
}

tool_args! {
    pub struct ManageDocumentArgs {
        /// create, update or delete.
        pub action: Action,
        pub project_id: String,
        /// Required for update and delete.
        pub document_id: Option<String>,
        /// Required for create.
        pub title: Option<String>,
        /// spec, design, note, prp, api or guide. Required for create.
        pub document_type: Option<DocumentType>,
        /// The document body as a JSON object, e.g. {"sections": [...]}.
        #[serde(default)]
        #[schemars(schema_with = "super::params::json_object")]
        pub content: Option<Value>,
        pub tags: Option<Vec<String>>,
        pub author: Option<String>,
    }
}

#[tool_router(router = document_tools, vis = "pub(crate)")]
impl BoardServer {
    #[tool(
        description = "List a project's documents (paginated, newest first; content left out), filter by type or title text, or get one document with its content by `document_id`."
    )]
    pub async fn find_documents(
        &self,
        Parameters(args): Parameters<FindDocumentsArgs>,
    ) -> ToolResult {
        let project_id = validate::id("project_id", Some(&args.project_id))?;
        if let Some(id) = validate::opt_id("document_id", args.document_id.as_deref())? {
            let document = self.store().get_document(project_id, id).await?;
            return ToolError::found("document", id, document, NOT_FOUND_HINT);
        }
        let page = args.asked_page()?;
        let query = DocumentQuery {
            project_id,
            document_type: args.document_type.map(DocumentType::as_str),
            text: validate::opt_text("query", args.query, validate::MAX_TITLE_CHARS)?,
        };
        let key = AnswerKey::new("find_documents", &(&query, page));
        remembered(&self.ctx.answers, key, async {
            let found = self.store().list_documents(&query, page).await?;
            Ok(success_fields(Fields::new().page(
                "documents",
                &found,
                page,
                RowView::Summary,
            )))
        })
        .await
    }

    #[tool(
        description = "Create, update or delete a project document (spec, design, note, prp, api, guide) with JSON content, tags and author."
    )]
    pub async fn manage_document(
        &self,
        Parameters(args): Parameters<ManageDocumentArgs>,
    ) -> ToolResult {
        let store = self.store();
        let project_id = validate::id("project_id", Some(&args.project_id))?;
        match args.action {
            Action::Create => {
                let document_type = args.document_type.ok_or_else(|| {
                    ToolError::invalid(
                        "document_type",
                        format!(
                            "document_type is required to create a document; allowed: {}",
                            DocumentType::ALL.join(", ")
                        ),
                        "Pass document_type, e.g. \"spec\"",
                    )
                })?;
                self.require_project(project_id).await?;
                let new = NewDocument {
                    project_id,
                    document_type: document_type.as_str(),
                    title: validate::title("title", args.title)?,
                    content: validate::json("content", args.content.unwrap_or_else(|| json!({})))?,
                    tags: validate::tags(args.tags.unwrap_or_default())?,
                    author: validate::opt_text("author", args.author, validate::MAX_TITLE_CHARS)?
                        .unwrap_or_default(),
                };
                let document = store.create_document(&new).await?;
                self.document_changed(project_id, document.id);
                Ok(success(
                    json!({ "document": to_json(&document), "document_id": document.id, "message": "Document created" }),
                ))
            }
            Action::Update => {
                let id = validate::id("document_id", args.document_id.as_deref())?;
                let changes = DocumentChanges {
                    document_type: args.document_type.map(DocumentType::as_str),
                    title: validate::opt_title("title", args.title)?,
                    content: args
                        .content
                        .map(|c| validate::json("content", c))
                        .transpose()?,
                    tags: args.tags.map(validate::tags).transpose()?,
                    author: validate::opt_text("author", args.author, validate::MAX_TITLE_CHARS)?,
                };
                let document = store.update_document(project_id, id, &changes).await?;
                let document = ToolError::present("document", id, document, NOT_FOUND_HINT)?;
                self.document_changed(project_id, id);
                Ok(written("document", &document, "Document updated"))
            }
            Action::Delete => {
                let id = validate::id("document_id", args.document_id.as_deref())?;
                if !store.delete_document(project_id, id).await? {
                    return Err(ToolError::not_found("document", id, NOT_FOUND_HINT));
                }
                self.document_changed(project_id, id);
                Ok(success(
                    json!({ "document_id": id, "message": "Document deleted" }),
                ))
            }
        }
    }
}

impl BoardServer {
    /// Tells subscribers the document changed.
    pub(super) fn document_changed(&self, project_id: Id, document_id: Id) {
        self.changed(Change::Document {
            project_id,
            document_id,
        });
    }
}
