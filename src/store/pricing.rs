//! `llm_pricing`: per-model list prices (USD per 1,000 tokens) with the time each took effect.
//! These drive the ledger's cost *estimates*.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Money, Store, on_pool};

/// One price of one model, in force from `effective_from` until the model's next row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PriceRow {
    pub model: String,
    pub provider: String,
    /// USD per 1,000 tokens the model reads.
    pub input_per_1k: Money,
    /// USD per 1,000 tokens the model writes.
    pub output_per_1k: Money,
    pub effective_from: DateTime<Utc>,
}

const COLUMNS: &str = "model, provider, input_per_1k, output_per_1k, effective_from";

impl Store {
    /// Every price row, by model, then oldest first.
    pub async fn list_pricing(&self) -> Result<Vec<PriceRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM llm_pricing ORDER BY model, effective_from");
        on_pool!(self, pool => sqlx::query_as::<_, PriceRow>(&sql).fetch_all(pool).await)
    }

    /// Adds a price, or replaces the one the model already has from the same `effective_from`.
    pub async fn add_pricing(&self, row: &PriceRow) -> Result<(), sqlx::Error> {
        let sql = format!(
            "INSERT INTO llm_pricing ({COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (model, effective_from) DO UPDATE SET provider = excluded.provider, \
             input_per_1k = excluded.input_per_1k, output_per_1k = excluded.output_per_1k"
        );
        on_pool!(self, pool => sqlx::query(&sql)
            .bind(&row.model)
            .bind(&row.provider)
            .bind(row.input_per_1k)
            .bind(row.output_per_1k)
            .bind(row.effective_from)
            .execute(pool)
            .await
            .map(|_| ()))
    }

    /// The price of `model` in force at `at`: its row with the latest `effective_from <= at`.
    /// Returns `Ok(None)` when the model has no price yet at that time.
    pub async fn current_price(
        &self,
        model: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<PriceRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM llm_pricing WHERE model = $1 AND effective_from <= $2 \
             ORDER BY effective_from DESC LIMIT 1"
        );
        on_pool!(self, pool => sqlx::query_as::<_, PriceRow>(&sql)
            .bind(model)
            .bind(at)
            .fetch_optional(pool)
            .await)
    }
}
