//! `api_keys`: hashed API keys. The store never sees a key, only its hash.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, on_pool};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub name: String,
    pub admin: bool,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records a key; `false` when the name is taken (also by a revoked key).
    pub async fn insert_api_key(
        &self,
        name: &str,
        key_hash: &str,
        admin: bool,
    ) -> Result<bool, sqlx::Error> {
        let sql = "INSERT INTO api_keys (name, key_hash, admin, created_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (name) DO NOTHING";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(name)
            .bind(key_hash)
            .bind(admin)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected() == 1))
    }

    /// The live (not revoked) key with this hash.
    pub async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRow>, sqlx::Error> {
        let sql = "SELECT name, admin, created_at, revoked_at FROM api_keys \
                   WHERE key_hash = $1 AND revoked_at IS NULL";
        on_pool!(self, pool => sqlx::query_as::<_, ApiKeyRow>(sql).bind(key_hash).fetch_optional(pool).await)
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
        let sql = "SELECT name, admin, created_at, revoked_at FROM api_keys ORDER BY name";
        on_pool!(self, pool => sqlx::query_as::<_, ApiKeyRow>(sql).fetch_all(pool).await)
    }

    /// Revokes a live key; `false` when there is none with this name.
    pub async fn revoke_api_key(&self, name: &str) -> Result<bool, sqlx::Error> {
        let sql = "UPDATE api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(name)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected() == 1))
    }

    /// Live HTTP sessions of `principal` (None: sessions made without authentication).
    pub async fn count_live_sessions(&self, principal: Option<&str>) -> Result<i64, sqlx::Error> {
        let sql = "SELECT COUNT(*) FROM mcp_sessions WHERE kind = 'session' \
                   AND status IN ('active', 'idle') \
                   AND (principal = $1 OR (principal IS NULL AND $1 IS NULL))";
        on_pool!(self, pool => sqlx::query_scalar::<_, i64>(sql).bind(principal).fetch_one(pool).await)
    }
}
