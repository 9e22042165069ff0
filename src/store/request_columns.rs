//! The columns of `mcp_requests`, defined once from [`LedgerRow`]: the INSERT's column list
//! and arguments, PostgreSQL's COPY text, the stored row's JSON and the row read back all
//! follow [`LedgerRow::columns`].

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use sqlx::{ColumnIndex, Decode, FromRow, Row, Type};
use uuid::Uuid;

use super::request_row::{LedgerRow, Micros, Status, UpstreamHop};
use super::{Id, Money};

/// How many values one ledger row binds.
pub const COLUMN_COUNT: usize = 24;

/// One column's value, borrowed from the row, typed as it is bound.
#[derive(Clone, Copy, Debug)]
pub enum Column<'r> {
    Id(Option<Uuid>),
    Text(Option<&'r str>),
    Int(Option<i32>),
    BigInt(Option<i64>),
    Money(Option<Money>),
    Flag(bool),
    Time(DateTime<Utc>),
}

impl LedgerRow {
    /// The row's columns by name, in the order every statement lists them.
    pub fn columns(&self) -> [(&'static str, Column<'_>); COLUMN_COUNT] {
        use Column::{BigInt, Flag, Int, Text, Time};
        let hop = self.upstream.as_ref();
        [
            ("request_id", Column::Id(Some(self.request_id))),
            ("session_id", Text(self.session_id.as_deref())),
            ("jsonrpc_id", Text(self.jsonrpc_id.as_deref())),
            ("method", Text(Some(&self.method))),
            ("tool_name", Text(self.tool_name.as_deref())),
            ("status", Text(Some(self.status.as_str()))),
            ("error_code", Int(self.error_code)),
            ("error_message", Text(self.error_message.as_deref())),
            ("duration_ms", BigInt(Some(self.duration.millis()))),
            ("duration_us", BigInt(Some(self.duration.micros()))),
            ("request_bytes", BigInt(Some(self.request_bytes))),
            ("response_bytes", BigInt(Some(self.response_bytes))),
            ("args_tokens", Int(self.args_tokens)),
            ("result_tokens", Int(self.result_tokens)),
            ("total_tokens", Int(self.total_tokens)),
            ("estimated_cost_usd", Column::Money(self.estimated_cost_usd)),
            ("pricing_model", Text(self.pricing_model.as_deref())),
            ("tokenizer", Text(self.tokenizer.as_deref())),
            ("sanitized", Flag(self.sanitized)),
            ("timestamp", Time(self.timestamp)),
            ("upstream", Text(hop.map(|h| h.upstream.as_str()))),
            ("upstream_tool", Text(hop.and_then(|h| h.tool.as_deref()))),
            ("upstream_us", BigInt(hop.map(|h| h.duration.micros()))),
            ("subject_id", Column::Id(self.subject)),
        ]
    }
}

/// The columns an ordinary answered call leaves NULL: an error's code and message, the
/// upstream hop (gateway mode) and the subject (a tool that names a task).
const USUALLY_NULL: [&str; 6] = [
    "error_code",
    "error_message",
    "upstream",
    "upstream_tool",
    "upstream_us",
    "subject_id",
];

/// The tokenizer the ledger names on the rows it writes (`ledger::tokens::TOKENIZER`): a
/// row naming it can take the [`Shape::Lean`] statement, which writes it as a literal.
pub const USUAL_TOKENIZER: &str = "o200k_base";

/// The values an ordinary answered call's row holds in these columns, as SQL both engines read
/// into the column's type: the lean statement writes them instead of binding them (on SQLite a
/// bound text is copied by sqlx, then by SQLite, then freed again, for every row).
fn usually_constant() -> [(&'static str, String); 3] {
    [
        ("status", format!("'{}'", Status::Success.as_str())),
        ("tokenizer", format!("'{USUAL_TOKENIZER}'")),
        ("sanitized", "FALSE".to_string()),
    ]
}

/// How a statement of a [`Shape`] gives one column its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Not listed: the column takes its default (NULL).
    Left,
    /// A placeholder, bound to the row's value.
    Bound,
    /// This SQL, the same for every row of the statement.
    Written(String),
}

/// Which of [`LedgerRow::columns`] a statement lists and binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Every column, bound.
    Full,
    /// For ordinary rows (see [`LedgerRow::is_ordinary`]): all but [`USUALLY_NULL`], which take
    /// their default (NULL), and with [`usually_constant`]'s values written, not bound: 15
    /// values to bind per row instead of 24.
    Lean,
}

impl Shape {
    /// The leanest shape that holds every one of `rows`.
    pub fn of(rows: &[LedgerRow]) -> Shape {
        match rows.iter().all(LedgerRow::is_ordinary) {
            true => Shape::Lean,
            false => Shape::Full,
        }
    }

    /// How the statement gives each of [`LedgerRow::columns`] its value, in their order.
    pub fn slots(self) -> &'static [Slot; COLUMN_COUNT] {
        static SLOTS: LazyLock<[[Slot; COLUMN_COUNT]; 2]> = LazyLock::new(|| {
            let constants = usually_constant();
            let lean = LedgerRow::default().columns().map(|(name, _)| {
                match constants.iter().find(|(column, _)| *column == name) {
                    _ if USUALLY_NULL.contains(&name) => Slot::Left,
                    Some((_, sql)) => Slot::Written(sql.clone()),
                    None => Slot::Bound,
                }
            });
            [std::array::from_fn(|_| Slot::Bound), lean]
        });
        &SLOTS[usize::from(self == Shape::Lean)]
    }

    /// Whether each of [`LedgerRow::columns`] is bound, in their order.
    pub fn bound(self) -> &'static [bool; COLUMN_COUNT] {
        static BOUND: LazyLock<[[bool; COLUMN_COUNT]; 2]> = LazyLock::new(|| {
            [Shape::Full, Shape::Lean].map(|shape| shape.slots().clone().map(|s| s == Slot::Bound))
        });
        &BOUND[usize::from(self == Shape::Lean)]
    }

    /// How many values a row binds.
    pub fn width(self) -> usize {
        self.bound().iter().filter(|bound| **bound).count()
    }

    /// The listed column names, comma-separated, in [`LedgerRow::columns`]'s order.
    pub fn column_list(self) -> &'static str {
        static LISTS: LazyLock<[String; 2]> = LazyLock::new(|| {
            [Shape::Full, Shape::Lean].map(|shape| {
                let names = LedgerRow::default().columns().map(|(name, _)| name);
                let listed = names
                    .iter()
                    .zip(shape.slots())
                    .filter(|(_, s)| **s != Slot::Left);
                listed.map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
            })
        });
        &LISTS[usize::from(self == Shape::Lean)]
    }
}

impl LedgerRow {
    /// Whether every one of [`USUALLY_NULL`] is NULL in this row and every one of
    /// [`usually_constant`] holds its usual value (checked field by field: building the row's
    /// columns to look costs more than the binding it saves).
    fn is_ordinary(&self) -> bool {
        self.error_code.is_none()
            && self.error_message.is_none()
            && self.upstream.is_none()
            && self.subject.is_none()
            && self.status == Status::Success
            && !self.sanitized
            && self.tokenizer.as_deref() == Some(USUAL_TOKENIZER)
    }
}

/// The column names, comma-separated, in [`LedgerRow::columns`]'s order.
pub fn column_list() -> &'static str {
    Shape::Full.column_list()
}

/// A ledger row as stored (for the API, the CLI and `steward check`): its JSON is the row's
/// columns by name, as [`LedgerRow::columns`] lists them.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord(pub LedgerRow);

impl std::ops::Deref for RequestRecord {
    type Target = LedgerRow;

    fn deref(&self) -> &LedgerRow {
        &self.0
    }
}

impl Serialize for RequestRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(COLUMN_COUNT))?;
        for (name, value) in self.0.columns() {
            match value {
                Column::Id(v) => map.serialize_entry(name, &v.map(Id))?,
                Column::Text(v) => map.serialize_entry(name, &v)?,
                Column::Int(v) => map.serialize_entry(name, &v)?,
                Column::BigInt(v) => map.serialize_entry(name, &v)?,
                Column::Money(v) => map.serialize_entry(name, &v)?,
                Column::Flag(v) => map.serialize_entry(name, &v)?,
                Column::Time(v) => map.serialize_entry(name, &v)?,
            }
        }
        map.end()
    }
}

/// A stored whole number that cannot be negative (the writer stores microseconds as `i64`).
fn micros(stored: i64) -> Micros {
    Micros::from_micros(u64::try_from(stored).unwrap_or(0))
}

impl<'r, R: Row> FromRow<'r, R> for RequestRecord
where
    &'r str: ColumnIndex<R>,
    Id: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    Money: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        let status = Status::parse(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "status".into(),
            source: format!("no request status is called {status:?}").into(),
        })?;
        let upstream = match row.try_get::<Option<String>, _>("upstream")? {
            Some(upstream) => Some(UpstreamHop {
                upstream,
                tool: row.try_get("upstream_tool")?,
                duration: micros(row.try_get::<Option<i64>, _>("upstream_us")?.unwrap_or(0)),
            }),
            None => None,
        };
        Ok(RequestRecord(LedgerRow {
            request_id: row.try_get::<Id, _>("request_id")?.0,
            session_id: row.try_get("session_id")?,
            jsonrpc_id: row.try_get("jsonrpc_id")?,
            method: row.try_get("method")?,
            tool_name: row.try_get("tool_name")?,
            status,
            error_code: row.try_get("error_code")?,
            error_message: row.try_get("error_message")?,
            duration: micros(row.try_get("duration_us")?),
            request_bytes: row.try_get("request_bytes")?,
            response_bytes: row.try_get("response_bytes")?,
            args_tokens: row.try_get("args_tokens")?,
            result_tokens: row.try_get("result_tokens")?,
            total_tokens: row.try_get("total_tokens")?,
            estimated_cost_usd: row.try_get("estimated_cost_usd")?,
            pricing_model: row.try_get("pricing_model")?,
            tokenizer: row
                .try_get::<Option<String>, _>("tokenizer")?
                .map(std::borrow::Cow::Owned),
            sanitized: row.try_get("sanitized")?,
            timestamp: row.try_get("timestamp")?,
            upstream,
            subject: row.try_get::<Option<Id>, _>("subject_id")?.map(|id| id.0),
            trace: Default::default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_list_names_each_column_once() {
        let names: Vec<&str> = column_list().split(", ").collect();
        assert_eq!(names.len(), COLUMN_COUNT);
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), COLUMN_COUNT);
        assert_eq!((names[0], names[23]), ("request_id", "subject_id"));
    }

    /// A row takes the lean shape exactly when every column that shape leaves out is NULL and
    /// every column it writes holds the value written.
    #[test]
    fn the_lean_shape_leaves_out_only_null_columns_and_writes_only_the_row_s_values() {
        let plain = LedgerRow {
            tokenizer: Some(std::borrow::Cow::Borrowed(USUAL_TOKENIZER)),
            ..LedgerRow::default()
        };
        let hop = UpstreamHop {
            upstream: "git".into(),
            tool: None,
            duration: Micros::from_micros(7),
        };
        let others = [
            LedgerRow {
                error_code: Some(-1),
                ..plain.clone()
            },
            LedgerRow {
                error_message: Some("boom".into()),
                ..plain.clone()
            },
            LedgerRow {
                upstream: Some(hop),
                ..plain.clone()
            },
            LedgerRow {
                subject: Some(Uuid::nil()),
                ..plain.clone()
            },
            LedgerRow {
                status: Status::ToolError,
                ..plain.clone()
            },
            LedgerRow {
                sanitized: true,
                ..plain.clone()
            },
            LedgerRow {
                tokenizer: None,
                ..plain.clone()
            },
            LedgerRow {
                tokenizer: Some("cl100k_base".into()),
                ..plain.clone()
            },
        ];
        let fits_lean = |row: &LedgerRow| {
            row.columns()
                .iter()
                .zip(Shape::Lean.slots())
                .all(|((_, value), slot)| match (slot, value) {
                    (Slot::Bound, _) => true,
                    (Slot::Left, value) => matches!(
                        value,
                        Column::Id(None)
                            | Column::Text(None)
                            | Column::Int(None)
                            | Column::BigInt(None)
                    ),
                    (Slot::Written(sql), Column::Text(Some(text))) => *sql == format!("'{text}'"),
                    (Slot::Written(sql), Column::Flag(false)) => sql == "FALSE",
                    (Slot::Written(_), _) => false,
                })
        };
        assert_eq!(Shape::of(std::slice::from_ref(&plain)), Shape::Lean);
        assert!(fits_lean(&plain));
        for row in &others {
            assert!(!fits_lean(row), "{row:?}");
            assert_eq!(Shape::of(&[plain.clone(), row.clone()]), Shape::Full);
        }
        let written = Shape::Lean
            .slots()
            .iter()
            .filter(|s| matches!(s, Slot::Written(_)));
        assert_eq!(written.count(), 3);
        assert_eq!(Shape::Lean.width(), COLUMN_COUNT - USUALLY_NULL.len() - 3);
        assert_eq!(Shape::Full.width(), COLUMN_COUNT);
        let lean = Shape::Lean.column_list();
        assert!(
            lean.starts_with("request_id, ") && !lean.contains("upstream"),
            "{lean}"
        );
        assert!(
            !lean.contains("error_") && !lean.contains("subject_id"),
            "{lean}"
        );
        assert!(lean.contains("status") && lean.contains("tokenizer, sanitized"));
    }

    #[test]
    fn a_stored_row_s_json_is_its_columns() -> Result<(), serde_json::Error> {
        let row = LedgerRow {
            method: "tools/call".into(),
            status: Status::ToolError,
            duration: Micros::from_micros(12_345),
            upstream: Some(UpstreamHop {
                upstream: "git".into(),
                tool: Some("log".into()),
                duration: Micros::from_micros(7),
            }),
            ..LedgerRow::default()
        };
        let json = serde_json::to_value(RequestRecord(row))?;
        assert_eq!(json["status"], "tool_error");
        assert_eq!(
            (json["duration_ms"].as_i64(), json["duration_us"].as_i64()),
            (Some(12), Some(12_345))
        );
        assert_eq!(
            (json["upstream_tool"].as_str(), json["upstream_us"].as_i64()),
            (Some("log"), Some(7))
        );
        assert!(json["subject_id"].is_null());
        assert_eq!(json.as_object().map(|o| o.len()), Some(COLUMN_COUNT));
        Ok(())
    }
}
