//! `steward keys create|list|revoke`.

use anyhow::bail;
use serde_json::json;

use super::{print_json, table};
use crate::cli::KeysAction;
use crate::security::auth::{check_key_name, generate_key, hash_key};
use crate::stdout::{errln, out, outln};
use crate::store::Store;

/// A key whose text could not be written (the reader left, a full disk) was shown to nobody
/// and is never shown again: it is revoked, so no valid key exists that no one holds, and the
/// command fails (even for a reader that left, which a listing treats as no failure).
async fn unshown(store: &Store, name: &str, error: &anyhow::Error) -> anyhow::Error {
    // The cause as text only: carried as an error, a closed pipe would end the command quietly.
    let cause = format!("{error:#}");
    match store.revoke_api_key(name).await {
        Ok(_) => anyhow::anyhow!(
            "key {name} was created but could not be shown ({cause}), so it was revoked; create another under a new name"
        ),
        Err(revoke) => anyhow::anyhow!(
            "key {name} was created but could not be shown ({cause}), and revoking it failed ({revoke}): revoke it with `steward keys revoke {name}`"
        ),
    }
}

pub async fn run(store: &Store, action: KeysAction) -> anyhow::Result<()> {
    match action {
        KeysAction::Create { name, admin, json } => {
            if let Err(message) = check_key_name(&name) {
                bail!(message);
            }
            let key = generate_key();
            if !store.insert_api_key(&name, &hash_key(&key), admin).await? {
                bail!(
                    "a key named {name} already exists (revoked names are not reused, so old sessions keep meaning one principal); choose another name"
                );
            }
            let shown = match json {
                true => print_json(&json!({ "name": name, "admin": admin, "key": key })),
                false => outln!("{key}").map_err(anyhow::Error::from),
            };
            if let Err(error) = shown {
                return Err(unshown(store, &name, &error).await);
            }
            if !json {
                errln!(
                    "created {}key {name}. This is the only time it is shown: store it now. Clients send it as `Authorization: Bearer <key>`.",
                    if admin { "admin " } else { "" }
                );
            }
        }
        KeysAction::List { output } => {
            let keys = store.list_api_keys().await?;
            if output.json {
                print_json(&json!({ "keys": keys }))?;
            } else {
                out!(
                    "{}",
                    table::columns(
                        &keys,
                        64,
                        &[
                            ("NAME", &|k| k.name.clone()),
                            ("ADMIN", &|k| if k.admin { "yes" } else { "no" }.to_string()),
                            ("CREATED (UTC)", &|k| {
                                k.created_at.format("%Y-%m-%d %H:%M:%S").to_string()
                            }),
                            ("REVOKED (UTC)", &|k| {
                                k.revoked_at.map_or("-".to_string(), |t| {
                                    t.format("%Y-%m-%d %H:%M:%S").to_string()
                                })
                            }),
                        ],
                    )
                )?;
                outln!("{} keys", keys.len())?;
            }
        }
        KeysAction::Revoke { name } => {
            if !store.revoke_api_key(&name).await? {
                bail!("no live key is named {name} (see `steward keys list`)");
            }
            outln!(
                "revoked {name}; running servers refuse it within their revocation poll (default 2s)"
            )?;
        }
    }
    Ok(())
}
