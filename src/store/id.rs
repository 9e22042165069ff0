//! [`Id`]: a UUID stored natively on PostgreSQL (`uuid`) and as hyphenated text on SQLite, so
//! ids read the same in `sqlite3` as in `psql` and compare as strings.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Id(pub Uuid);

impl Id {
    /// A new random (v4) id.
    pub fn new() -> Self {
        Id(Uuid::new_v4())
    }
}

impl Default for Id {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for Id {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Id)
    }
}

stored_as!(Id, Sqlite, String);
encoded_as!(Id, Sqlite, String, |id| {
    // The hyphenated text straight from a stack buffer (not through `Display`): every ledger
    // row binds one.
    let mut text = Uuid::encode_buffer();
    String::from(&*id.0.hyphenated().encode_lower(&mut text))
});
decoded_from!(Id, Sqlite, &str, |text| Ok(text.parse()?));

stored_as!(Id, Postgres, Uuid);
encoded_as!(Id, Postgres, Uuid, |id| id.0);
decoded_from!(Id, Postgres, Uuid, |uuid| Ok(Id(uuid)));
