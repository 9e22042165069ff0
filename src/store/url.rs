//! Where the database is: `sqlite://PATH` or `postgres://...`, never shown with its secrets.

use std::fmt;
use std::path::PathBuf;

/// A database URL Steward cannot use, with what to write instead.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid database URL {url:?}: {reason}. Use sqlite://PATH (e.g. sqlite://steward.db) or postgres://USER@HOST:PORT/DB"
)]
pub struct UrlError {
    pub url: String,
    pub reason: String,
}

/// Which engine a database URL points at.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH` — the file is created on first run.
    Sqlite { path: PathBuf },
    /// `postgres://...` (or `postgresql://...`), passed to sqlx as is.
    Postgres { url: String },
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let invalid = |reason: &str| UrlError {
            url: redact(url),
            reason: reason.to_string(),
        };
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(invalid("the SQLite URL has no file path"));
            }
            return Ok(Self::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if url.split("://").nth(1).is_none_or(str::is_empty) {
                return Err(invalid("the PostgreSQL URL has no host"));
            }
            return Ok(Self::Postgres {
                url: url.to_string(),
            });
        }
        Err(invalid("unsupported scheme"))
    }

    /// The URL with any password replaced, for logs and error messages.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { url } => redact(url),
        }
    }

    /// The URL with its secrets, for a process Steward starts on the same database
    /// (`--database`); never for a log line or a message ([`DatabaseUrl::redacted`] is). It
    /// parses back to the same URL.
    pub fn unredacted(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { url } => url.clone(),
        }
    }
}

// Hand-written so a password never reaches a log line.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces every secret in a URL with `***`: the password in `scheme://user:password@host`
/// and the value of a `password`/`sslpassword` query parameter.
fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_string(),
            },
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                    format!("{key}=***")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_and_postgres_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://steward.db").unwrap(),
            DatabaseUrl::Sqlite {
                path: "steward.db".into()
            }
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db?mode=rwc").unwrap(),
            DatabaseUrl::Sqlite {
                path: "/tmp/x.db".into()
            }
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@localhost:5432/db").unwrap(),
            DatabaseUrl::Postgres { .. }
        ));
    }

    #[test]
    fn unredacted_urls_parse_back_to_the_same_url() {
        for text in [
            "sqlite://steward.db",
            "sqlite:/tmp/x.db?mode=rwc",
            "postgres://bob:hunter2@db:5432/steward?sslmode=require",
        ] {
            let url = DatabaseUrl::parse(text).unwrap();
            assert!(
                DatabaseUrl::parse(&url.unredacted()).unwrap() == url,
                "{text}"
            );
        }
        let url = DatabaseUrl::parse("postgres://bob:hunter2@db/steward").unwrap();
        assert_eq!(url.unredacted(), "postgres://bob:hunter2@db/steward");
    }

    #[test]
    fn rejects_unknown_schemes_with_a_hint() {
        let err = DatabaseUrl::parse("mysql://localhost/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sqlite://PATH"), "{err}");
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn never_shows_passwords() {
        let url = DatabaseUrl::parse("postgres://bob:hunter2@db:5432/steward").unwrap();
        assert_eq!(format!("{url:?}"), "postgres://bob:***@db:5432/steward");
        let err = DatabaseUrl::parse("mysql://bob:hunter2@db/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn never_shows_a_password_given_as_a_query_parameter() {
        let url =
            DatabaseUrl::parse("postgres://db/steward?user=bob&password=hunter2&sslmode=require")
                .unwrap();
        assert_eq!(
            url.redacted(),
            "postgres://db/steward?user=bob&password=***&sslmode=require"
        );
    }
}
