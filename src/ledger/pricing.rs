//! Cost ESTIMATES for ledger rows: which model a client's requests are priced as, the price in
//! force at the request's time, and the arithmetic (exact decimals, never floats).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::store::Money;
use crate::store::Store;
use crate::store::pricing::PriceRow;

/// Which model's prices apply to a client's requests. The server cannot see the model behind a
/// client, so this is a policy: a model per client type, else a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PricingPolicy {
    /// Model for client types with no entry in `by_client_type`.
    pub default_model: String,
    /// Client type (as detected for sessions, e.g. `"Codex"`) → model.
    pub by_client_type: HashMap<String, String, foldhash::fast::RandomState>,
}

impl Default for PricingPolicy {
    fn default() -> Self {
        let by_client_type = [("Gemini CLI", "gemini-2.5-pro"), ("Codex", "gpt-5")]
            .into_iter()
            .map(|(client, model)| (client.to_string(), model.to_string()))
            .collect();
        PricingPolicy {
            default_model: "claude-sonnet-4-5".to_string(),
            by_client_type,
        }
    }
}

impl PricingPolicy {
    /// The model `client_type`'s requests are priced as.
    pub fn model_for(&self, client_type: &str) -> &str {
        self.by_client_type
            .get(client_type)
            .map_or(self.default_model.as_str(), String::as_str)
    }
}

/// Every price row, held in memory so pricing a request needs no query.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    /// Sorted by model, then `effective_from`.
    rows: Vec<PriceRow>,
}

impl PriceTable {
    pub fn new(mut rows: Vec<PriceRow>) -> PriceTable {
        rows.sort_by(|a, b| {
            (a.model.as_str(), a.effective_from).cmp(&(b.model.as_str(), b.effective_from))
        });
        PriceTable { rows }
    }

    /// Loads every row of `llm_pricing`.
    pub async fn load(store: &Store) -> Result<PriceTable, sqlx::Error> {
        Ok(PriceTable::new(store.list_pricing().await?))
    }

    /// All rows, by model, then oldest first.
    pub fn rows(&self) -> &[PriceRow] {
        &self.rows
    }

    /// The price of `model` in force at `at` (its latest row with `effective_from <= at`), or
    /// `None` when the model has no price at that time.
    pub fn price(&self, model: &str, at: DateTime<Utc>) -> Option<&PriceRow> {
        self.period(model, at).and_then(|period| self.at(period))
    }

    /// [`PriceTable::price`] as the row's place in this table and the instants it is in force
    /// between, so a caller can tell without a search that a later time has the same price.
    pub fn period(&self, model: &str, at: DateTime<Utc>) -> Option<Period> {
        let end = self
            .rows
            .partition_point(|r| (r.model.as_str(), r.effective_from) <= (model, at));
        let index = end
            .checked_sub(1)
            .filter(|&i| self.rows[i].model == model)?;
        let until = self
            .rows
            .get(end)
            .filter(|next| next.model == model)
            .map(|next| next.effective_from);
        Some(Period {
            index,
            from: self.rows[index].effective_from,
            until,
        })
    }

    /// The row a [`Period`] of this table names.
    pub fn at(&self, period: Period) -> Option<&PriceRow> {
        self.rows.get(period.index)
    }
}

/// Where a price row is in a [`PriceTable`] and when it is in force: from its
/// `effective_from` until the model's next row's (`None`: no later row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    index: usize,
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

impl Period {
    /// Whether the price is in force at `at`.
    pub fn holds(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && self.until.is_none_or(|until| at < until)
    }
}

/// The estimated cost of one request. Arguments are what the model wrote (priced at its output
/// rate); the result is what it will read (priced at its input rate):
/// `args × output_per_1k / 1000 + result × input_per_1k / 1000`, in exact decimals.
pub fn estimate_cost(price: &PriceRow, args_tokens: u32, result_tokens: u32) -> Money {
    let per_1k = Decimal::from(args_tokens) * price.output_per_1k.0
        + Decimal::from(result_tokens) * price.input_per_1k.0;
    Money(thousandth(per_1k).normalize())
}

/// `value / 1000`: the decimal point moved three places (a `Decimal` division costs ~5 times
/// as much), or, past `Decimal`'s 28 places, the division, which rounds as it always did.
fn thousandth(mut value: Decimal) -> Decimal {
    match value.set_scale(value.scale() + 3) {
        Ok(()) => value,
        Err(_) => value / Decimal::ONE_THOUSAND,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn row(model: &str, input: &str, output: &str, from: DateTime<Utc>) -> PriceRow {
        PriceRow {
            model: model.to_string(),
            provider: "test".to_string(),
            input_per_1k: input.parse().unwrap(),
            output_per_1k: output.parse().unwrap(),
            effective_from: from,
        }
    }

    fn money(s: &str) -> Money {
        s.parse().unwrap()
    }

    #[test]
    fn policy_defaults() {
        let policy = PricingPolicy::default();
        assert_eq!(policy.model_for("Claude Code"), "claude-sonnet-4-5");
        assert_eq!(policy.model_for("unknown"), "claude-sonnet-4-5");
        assert_eq!(policy.model_for("Gemini CLI"), "gemini-2.5-pro");
        assert_eq!(policy.model_for("Codex"), "gpt-5");
    }

    #[test]
    fn policy_reads_partial_config() {
        let policy: PricingPolicy =
            serde_json::from_str(r#"{"default_model": "claude-opus-4-5"}"#).unwrap();
        assert_eq!(policy.model_for("Cursor"), "claude-opus-4-5");
        // Fields left out keep their defaults.
        assert_eq!(policy.model_for("Codex"), "gpt-5");
    }

    #[test]
    fn costs_are_exact() {
        let sonnet = row("claude-sonnet-4-5", "0.003", "0.015", at(2025, 9, 29));
        // 1000 written at $0.015/1k + 2000 read at $0.003/1k.
        assert_eq!(estimate_cost(&sonnet, 1000, 2000), money("0.021"));
        assert_eq!(estimate_cost(&sonnet, 1000, 2000).to_string(), "0.021");
        assert_eq!(estimate_cost(&sonnet, 0, 0), Money::ZERO);
        assert_eq!(estimate_cost(&sonnet, 1, 0), money("0.000015"));
        assert_eq!(estimate_cost(&sonnet, 0, 1), money("0.000003"));

        let gpt5 = row("gpt-5", "0.00125", "0.01", at(2025, 8, 7));
        assert_eq!(estimate_cost(&gpt5, 1, 1), money("0.00001125"));
        assert_eq!(estimate_cost(&gpt5, 123, 4567), money("0.00693875"));

        let flash = row("gemini-2.5-flash", "0.0003", "0.0025", at(2025, 6, 17));
        assert_eq!(estimate_cost(&flash, 7, 3), money("0.0000184"));

        // The largest counts stay exact.
        let opus = row("claude-opus-4-1", "0.015", "0.075", at(2025, 8, 5));
        assert_eq!(
            estimate_cost(&opus, u32::MAX, u32::MAX),
            money("386547.05655") // 4294967295 × 0.09 / 1000
        );
    }

    /// Moving the point gives exactly what dividing by 1000 gave, to the last place and in
    /// the same form, including where 28 places round.
    #[test]
    fn a_thousandth_is_the_division() {
        let values = [
            "0",
            "1",
            "-1",
            "0.021",
            "6.219",
            "123456789.123456789",
            "0.0000000000000000000000001",
            "0.0000000000000000000000000123",
            "79228162514264337593543950335",
            "-7.9228162514264337593543950335",
        ];
        for text in values {
            let value: Decimal = text.parse().unwrap();
            let divided = (value / Decimal::ONE_THOUSAND).normalize();
            let moved = thousandth(value).normalize();
            assert_eq!(moved, divided, "{text}");
            assert_eq!(moved.to_string(), divided.to_string(), "{text}");
        }
    }

    #[test]
    fn price_is_the_one_in_force_at_the_time() {
        let table = PriceTable::new(vec![
            row("b", "0.2", "0.4", at(2025, 6, 1)),
            row("a", "0.3", "0.6", at(2025, 3, 1)),
            row("a", "0.1", "0.2", at(2025, 1, 1)),
            row("c", "0.5", "0.5", at(2025, 1, 1)),
        ]);
        let input = |model: &str, time| table.price(model, time).map(|p| p.input_per_1k);
        let expected = [
            (at(2024, 12, 31), None),
            (at(2025, 1, 1), Some(money("0.1"))),
            (at(2025, 2, 28), Some(money("0.1"))),
            (at(2025, 3, 1), Some(money("0.3"))),
            (at(2030, 1, 1), Some(money("0.3"))),
        ];
        for (time, price) in expected {
            assert_eq!(input("a", time), price, "{time}");
        }
        assert!(table.price("b", at(2025, 5, 31)).is_none());
        assert_eq!(table.price("b", at(2025, 6, 2)).unwrap().model, "b");
        assert!(table.price("aa", at(2030, 1, 1)).is_none());
        assert!(table.price("zzz", at(2030, 1, 1)).is_none());
        assert!(PriceTable::default().price("a", at(2030, 1, 1)).is_none());
        // A period holds exactly while its row is the one in force.
        let mut time = at(2024, 12, 1);
        while time < at(2025, 7, 1) {
            for model in ["a", "b", "c", "d"] {
                let period = table.period(model, time);
                assert_eq!(
                    period.and_then(|p| table.at(p)),
                    table.price(model, time),
                    "{model} {time}"
                );
                for later in [time, time + chrono::Duration::days(3)] {
                    let same = period.is_some_and(|p| p.holds(later));
                    let found = period.and_then(|p| table.at(p));
                    let expected = found.is_some() && found == table.price(model, later);
                    assert_eq!(same, expected, "{model} {time} {later}");
                }
            }
            time += chrono::Duration::days(1);
        }
        let models: Vec<&str> = table.rows().iter().map(|r| r.model.as_str()).collect();
        assert_eq!(models, ["a", "a", "b", "c"]);
    }
}
