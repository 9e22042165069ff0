//! `steward pricing list|add`.

use anyhow::bail;
use chrono::{NaiveTime, Utc};
use rust_decimal::Decimal;

use super::{print_json, table};
use crate::cli::PricingAction;
use crate::stdout::{out, outln};
use crate::store::pricing::PriceRow;
use crate::store::{Money, Store};

pub async fn run(store: &Store, action: PricingAction) -> anyhow::Result<()> {
    match action {
        PricingAction::List {
            output,
            pricing_model,
        } => {
            let rows = store.list_pricing().await?;
            let in_use = pricing_model.unwrap_or_default();
            if output.json {
                return print_json(&serde_json::json!({ "prices": rows, "pricing_model": in_use }));
            }
            out!(
                "{}",
                table::columns(
                    &rows,
                    40,
                    &[
                        ("MODEL", &|r| match r.model == in_use {
                            true => format!("{} (in use)", r.model),
                            false => r.model.clone(),
                        }),
                        ("PROVIDER", &|r| r.provider.clone()),
                        ("INPUT $/1K", &|r| r.input_per_1k.to_string()),
                        ("OUTPUT $/1K", &|r| r.output_per_1k.to_string()),
                        ("FROM (UTC)", &|r| {
                            r.effective_from.format("%Y-%m-%d").to_string()
                        }),
                    ],
                )
            )?;
            if !rows.iter().any(|r| r.model == in_use) {
                outln!("The pricing model {in_use} has no price here: its costs are left empty.")?;
            }
            outln!(
                "Clients are priced as {in_use} (--pricing-model; per client type: ledger.client_models in steward.toml)."
            )?;
            outln!("{}", super::COST_NOTE)?;
        }
        PricingAction::Add {
            model,
            provider,
            input_per_1k,
            output_per_1k,
            effective_from,
        } => {
            for (name, value) in [
                ("--input-per-1k", input_per_1k),
                ("--output-per-1k", output_per_1k),
            ] {
                if value < Decimal::ZERO {
                    bail!("{name} must not be negative (got {value})");
                }
            }
            if model.trim().is_empty() || model.contains('\0') {
                bail!("the model name must be non-empty text");
            }
            let day = effective_from.unwrap_or_else(|| Utc::now().date_naive());
            let row = PriceRow {
                model,
                provider,
                input_per_1k: Money(input_per_1k),
                output_per_1k: Money(output_per_1k),
                effective_from: day.and_time(NaiveTime::MIN).and_utc(),
            };
            store.add_pricing(&row).await?;
            outln!(
                "{} from {}: ${} per 1K input, ${} per 1K output tokens",
                row.model,
                day,
                row.input_per_1k,
                row.output_per_1k
            )?;
        }
    }
    Ok(())
}
