//! `llm_pricing` and [`Money`] on both engines: the seeded list prices, prices taking effect
//! over time, and exact decimal round trips.

use crate::common;

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use steward::ledger::pricing::{PriceTable, estimate_cost};
use steward::store::Money;
use steward::store::pricing::PriceRow;

use common::{TestDb, backends, open_store};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

#[tokio::test]
async fn seeded_list_prices_exist() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        let engine = backend.name();

        let sonnet = store
            .current_price("claude-sonnet-4-5", Utc::now())
            .await?
            .unwrap_or_else(|| panic!("{engine}: claude-sonnet-4-5 is not seeded"));
        assert_eq!(sonnet.provider, "anthropic", "{engine}");
        assert_eq!(sonnet.input_per_1k.0, dec("0.003"), "{engine}");
        assert_eq!(sonnet.output_per_1k.0, dec("0.015"), "{engine}");
        assert_eq!(sonnet.effective_from, day(2025, 9, 29), "{engine}");
        // Text forms agree across engines (PostgreSQL hands back 0.0030000000).
        assert_eq!(sonnet.input_per_1k.to_string(), "0.003", "{engine}");
        assert_eq!(
            serde_json::to_value(&sonnet)?["output_per_1k"],
            serde_json::json!("0.015"),
            "{engine}"
        );

        let expected = [
            (
                "claude-opus-4-5",
                "anthropic",
                "0.005",
                "0.025",
                day(2025, 11, 24),
            ),
            (
                "claude-haiku-4-5",
                "anthropic",
                "0.001",
                "0.005",
                day(2025, 10, 15),
            ),
            (
                "claude-opus-4-1",
                "anthropic",
                "0.015",
                "0.075",
                day(2025, 8, 5),
            ),
            ("gpt-5", "openai", "0.00125", "0.01", day(2025, 8, 7)),
            ("gpt-5-mini", "openai", "0.00025", "0.002", day(2025, 8, 7)),
            ("gpt-4.1", "openai", "0.002", "0.008", day(2025, 4, 14)),
            (
                "gemini-2.5-pro",
                "google",
                "0.00125",
                "0.01",
                day(2025, 6, 17),
            ),
            (
                "gemini-2.5-flash",
                "google",
                "0.0003",
                "0.0025",
                day(2025, 6, 17),
            ),
        ];
        let all = store.list_pricing().await?;
        for (model, provider, input, output, from) in expected {
            let row = all
                .iter()
                .find(|r| r.model == model)
                .unwrap_or_else(|| panic!("{engine}: {model} is not seeded"));
            assert_eq!(row.provider, provider, "{engine} {model}");
            assert_eq!(row.input_per_1k.0, dec(input), "{engine} {model}");
            assert_eq!(row.output_per_1k.0, dec(output), "{engine} {model}");
            assert_eq!(row.effective_from, from, "{engine} {model}");
        }
        // Sorted by model, then time.
        let keys: Vec<_> = all
            .iter()
            .map(|r| (r.model.clone(), r.effective_from))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "{engine}");

        // Not yet in force the day before.
        assert!(
            store
                .current_price("claude-opus-4-5", day(2025, 11, 23))
                .await?
                .is_none(),
            "{engine}"
        );
        assert!(
            store
                .current_price("no-such-model", Utc::now())
                .await?
                .is_none()
        );

        // The in-memory table agrees, and prices a request exactly.
        let table = PriceTable::load(&store).await?;
        assert_eq!(table.rows(), all.as_slice(), "{engine}");
        let price = table
            .price("claude-sonnet-4-5", Utc::now())
            .expect("sonnet");
        assert_eq!(estimate_cost(price, 1000, 2000).0, dec("0.021"), "{engine}");
        store.close().await;
    }
    Ok(())
}

#[tokio::test]
async fn a_newer_price_takes_effect_from_its_time() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        let engine = backend.name();

        let change = Utc.with_ymd_and_hms(2026, 3, 1, 12, 30, 0).unwrap();
        let newer = PriceRow {
            model: "claude-sonnet-4-5".to_string(),
            provider: "anthropic".to_string(),
            input_per_1k: Money(dec("0.0025")),
            output_per_1k: Money(dec("0.0125")),
            effective_from: change,
        };
        store.add_pricing(&newer).await?;

        let before = store
            .current_price(
                "claude-sonnet-4-5",
                change - chrono::Duration::microseconds(1),
            )
            .await?
            .expect("old price");
        assert_eq!(before.input_per_1k.0, dec("0.003"), "{engine}");
        assert_eq!(before.effective_from, day(2025, 9, 29), "{engine}");

        let at = store
            .current_price("claude-sonnet-4-5", change)
            .await?
            .expect("new price");
        assert_eq!(at, newer, "{engine}");
        let later = store
            .current_price("claude-sonnet-4-5", day(2027, 1, 1))
            .await?
            .expect("new price");
        assert_eq!(later, newer, "{engine}");

        // Same (model, effective_from): replaced, not duplicated.
        let corrected = PriceRow {
            output_per_1k: Money(dec("0.012")),
            ..newer.clone()
        };
        store.add_pricing(&corrected).await?;
        let rows: Vec<_> = store
            .list_pricing()
            .await?
            .into_iter()
            .filter(|r| r.model == "claude-sonnet-4-5")
            .collect();
        assert_eq!(rows.len(), 2, "{engine}: {rows:?}");
        assert_eq!(rows[1], corrected, "{engine}");

        // A model with no seed row gets its first price.
        let fresh = PriceRow {
            model: "test-model".to_string(),
            provider: "test".to_string(),
            input_per_1k: Money(dec("0.0000000123")),
            output_per_1k: Money(dec("12345.6789012345")),
            effective_from: change,
        };
        store.add_pricing(&fresh).await?;
        assert_eq!(
            store.current_price("test-model", change).await?,
            Some(fresh),
            "{engine}"
        );

        let table = PriceTable::load(&store).await?;
        assert_eq!(
            table
                .price("claude-sonnet-4-5", change)
                .map(|r| r.output_per_1k),
            Some(Money(dec("0.012"))),
            "{engine}"
        );
        assert_eq!(
            table
                .price("claude-sonnet-4-5", day(2026, 1, 1))
                .map(|r| r.output_per_1k),
            Some(Money(dec("0.015"))),
            "{engine}"
        );
        store.close().await;
    }
    Ok(())
}

#[tokio::test]
async fn money_round_trips_exactly() -> anyhow::Result<()> {
    let amounts = [
        "0.0000000123",
        "12345.6789012345",
        "0",
        "0.021",
        "0.00001125",
        "9999999999.9999999999",
        "-1.5",
    ];
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        let engine = backend.name();
        for (i, text) in amounts.iter().enumerate() {
            let amount = Money(dec(text));
            let row = PriceRow {
                model: format!("round-trip-{i}"),
                provider: "test".to_string(),
                input_per_1k: amount,
                output_per_1k: amount,
                effective_from: day(2026, 1, 1),
            };
            store.add_pricing(&row).await?;
            let back = store
                .current_price(&row.model, day(2026, 1, 1))
                .await?
                .expect("stored row");
            assert_eq!(back.input_per_1k.0, dec(text), "{engine}: {text}");
            assert_eq!(back.input_per_1k.to_string(), *text, "{engine}: {text}");
            assert_eq!(
                serde_json::to_string(&back.output_per_1k)?,
                format!("\"{text}\""),
                "{engine}: {text}"
            );
        }

        // Beyond the column's 10 places both engines round the same way (half away from zero).
        let row = PriceRow {
            model: "rounded".to_string(),
            provider: "test".to_string(),
            input_per_1k: Money(dec("0.00000000005")),
            output_per_1k: Money(dec("1.23456789012345")),
            effective_from: day(2026, 1, 1),
        };
        store.add_pricing(&row).await?;
        let back = store
            .current_price("rounded", day(2026, 1, 1))
            .await?
            .expect("row");
        assert_eq!(back.input_per_1k.0, dec("0.0000000001"), "{engine}");
        assert_eq!(back.output_per_1k.0, dec("1.2345678901"), "{engine}");
        store.close().await;
    }
    Ok(())
}
