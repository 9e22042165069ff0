//! `steward serve` and `steward stdio`: open the store, then serve until told to stop.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::HttpState;
use crate::config::{ConfigError, ServeConfig, StoreConfig};
use crate::gateway::Gateway;
use crate::ledger::Ledger;
use crate::mcp::{self, ServerContext};
use crate::resources::expiry;
use crate::security::auth::Auth;
use crate::security::layers::Guard;
use crate::sessions::events::DbEventStore;
use crate::sessions::{SessionSettings, Sessions};
use crate::store::DatabaseUrl;
use crate::store::availability::{Availability, open_or_retry};
use crate::store::{OpenError, OpenMode, Store};
use crate::traces::Traces;

/// Why Steward stopped with an error: a configuration problem (exit 2) or a runtime one (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

/// Opens (creating if needed) the database, mapping failures to a message that says what to fix.
pub async fn open_store(url: &DatabaseUrl) -> Result<Store, ConfigError> {
    open_store_with(url, OpenMode::Create).await
}

/// Opens the database; with [`OpenMode::Create`] a SQLite file's missing directories are
/// created first.
pub async fn open_store_with(url: &DatabaseUrl, mode: OpenMode) -> Result<Store, ConfigError> {
    if let (DatabaseUrl::Sqlite { path }, OpenMode::Create) = (url, mode)
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|error| ConfigError::Database {
            url: url.redacted(),
            reason: format!(
                "cannot create the directory {}: {error}; pass another --database sqlite://PATH",
                parent.display()
            ),
        })?;
    }
    Store::open_with(url, mode).await.map_err(|error| {
        let hint = open_hint(url, &error);
        ConfigError::Database {
            url: url.redacted(),
            reason: format!("{error}; {hint}"),
        }
    })
}

/// What to do about a database that would not open.
fn open_hint(url: &DatabaseUrl, error: &OpenError) -> &'static str {
    match (url, error) {
        (_, OpenError::Missing(_)) => {
            "is `steward serve` using another --database? Pass the same --database (or STEWARD_DATABASE_URL) here; nothing was created"
        }
        (DatabaseUrl::Sqlite { .. }, OpenError::Connect(e)) if is_not_a_database(e) => {
            "the file exists but is not a SQLite database; point --database at Steward's database or at a new file"
        }
        (DatabaseUrl::Sqlite { .. }, OpenError::Connect(_)) => {
            "check that the directory exists and is writable, or pass another --database sqlite://PATH"
        }
        (DatabaseUrl::Postgres { .. }, OpenError::Unreachable { .. }) => {
            "check that PostgreSQL is running and that the host and port in the URL are right"
        }
        (DatabaseUrl::Postgres { .. }, _) if !matches!(error, OpenError::Migrate(_)) => {
            "check that PostgreSQL is running and reachable and that the user, password and database in the URL are right"
        }
        _ => {
            "the database holds a schema this version of Steward cannot migrate; point --database at Steward's own database"
        }
    }
}

/// SQLite's SQLITE_NOTADB (26): the file is something else, or encrypted.
fn is_not_a_database(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            e.code().is_some_and(|code| code == "26") || e.message().contains("not a database")
        }
        _ => false,
    }
}

/// Runs `steward serve` until SIGINT/SIGTERM, then stops accepting, lets in-flight requests
/// finish and closes the database.
pub async fn serve(config: ServeConfig) -> Result<(), RunError> {
    let shutdown = CancellationToken::new();
    // The store opens before the port is bound, so a bad --database fails before anything
    // listens (an unreachable PostgreSQL server does not: see `open_or_retry`).
    let (store, database) = open_serving_store(&config.store.database, &shutdown).await?;
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ConfigError::Listen {
                addr: config.listen,
                source,
            })?;
    tokio::spawn(stop_on_signal(shutdown.clone()));
    run(store, database, listener, config, shutdown).await
}

/// Opens the store for `serve`. An unreachable PostgreSQL server is no reason not to start:
/// the store connects when it can (see [`open_or_retry`]); other failures say what to fix.
async fn open_serving_store(
    url: &DatabaseUrl,
    stop: &CancellationToken,
) -> Result<(Store, Arc<Availability>), ConfigError> {
    if matches!(url, DatabaseUrl::Sqlite { .. }) {
        return Ok((open_store(url).await?, Availability::available()));
    }
    open_or_retry(url, stop.clone())
        .await
        .map_err(|error| ConfigError::Database {
            url: url.redacted(),
            reason: format!("{error}; {}", open_hint(url, &error)),
        })
}

/// Serves on `listener` (already bound; `config.listen` is not used) until `shutdown` is
/// cancelled, then stops as [`serve`] does. For embedding Steward in another process, e.g.
/// tests that serve on port 0 in-process.
pub async fn serve_on(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let (store, database) = open_serving_store(&config.store.database, &shutdown).await?;
    run(store, database, listener, config, shutdown).await
}

async fn run(
    store: Store,
    database: Arc<Availability>,
    listener: TcpListener,
    config: ServeConfig,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let addr = listener.local_addr().map_err(anyhow::Error::from)?;

    // The ledger and the event writer stop after the server has finished its in-flight requests.
    let ledger_stop = CancellationToken::new();
    let (events, events_writer) = DbEventStore::start(
        store.clone(),
        config.sessions.durable_events,
        ledger_stop.clone(),
    );
    let sessions = Sessions::new(store.clone(), config.sessions.clone(), Some(events));
    crate::metrics::install();
    crate::metrics::spawn_upkeep(shutdown.clone());
    let jobs = when_ready(&database, &shutdown, {
        let (sessions, shutdown) = (sessions.clone(), shutdown.clone());
        move || sessions.spawn_jobs(shutdown)
    });
    let (ledger, ledger_writer) =
        start_ledger(&store, &database, &config.store, &ledger_stop).await?;
    let traces = match &config.otlp_endpoint {
        Some(endpoint) => Some(
            Traces::start(endpoint, &ledger)
                .map_err(|e| RunError::Runtime(e.context("cannot start OTLP trace export")))?,
        ),
        None => None,
    };
    // Fired by the connections once the requests in flight at the stop are answered.
    let close_sessions = CancellationToken::new();
    let auth = Auth::new(
        config.security.auth,
        store.clone(),
        config.sessions.revocation_poll,
    );
    let guard = Guard::new(config.security.clone(), auth, sessions.clone());
    let gateway = start_gateway(&config, &store, &shutdown)?;
    let state = HttpState {
        ctx: ServerContext::serving(
            store.clone(),
            Some(ledger.clone()),
            config.conformance_fixtures,
            config.security.tool_timeout,
            gateway,
            config.board,
        ),
        sessions: sessions.clone(),
        ledger,
        guard,
        database: database.clone(),
    };
    crate::metrics::register_tools(mcp::BoardServer::tool_names(&state.ctx));
    // Leases end within one revocation poll of running out, on every replica.
    let sweep = when_ready(&database, &shutdown, {
        let (store, changes) = (store.clone(), state.ctx.changes.clone());
        let health = state.ctx.sweep.clone();
        let (poll, shutdown) = (config.sessions.revocation_poll, shutdown.clone());
        move || vec![expiry::spawn_sweep(store, changes, health, poll, shutdown)]
    });
    let app = crate::app::router(state, close_sessions.clone());
    tracing::info!(%addr, database = ?config.store.database, engine = store.engine(), auth = ?config.security.auth, "Steward is serving MCP at /mcp");
    if config.security.auth == crate::security::AuthMode::None && !addr.ip().is_loopback() {
        tracing::warn!(
            "serving WITHOUT authentication on a non-loopback address (--insecure-no-auth): anyone who can reach {addr} can use every tool"
        );
    }
    print_banner(&startup_banner(addr, &config));
    let limits = config.security.connections;
    crate::security::connections::serve(listener, app, limits, shutdown, close_sessions).await;
    for job in [jobs, sweep] {
        if let Err(error) = job.await {
            tracing::warn!(%error, "a background job ended abnormally");
        }
    }
    // Record the last moments of activity; a stop is not a disconnect, so sessions stay live.
    sessions.flush_activity_at_stop(database.is_ready()).await;
    ledger_stop.cancel();
    if let Err(error) = ledger_writer.await {
        tracing::error!(%error, "the ledger writer ended abnormally");
    }
    if let Some(traces) = traces {
        traces.stop().await;
    }
    if let Err(error) = events_writer.await {
        tracing::error!(%error, "the event writer ended abnormally");
    }
    store.close().await;
    tracing::info!("Steward stopped");
    Ok(())
}

/// Starts background jobs once the database answers (at once, normally): run against an
/// unreachable one they would only fail and leave stale errors in `/health`. The handle ends
/// when they have.
fn when_ready(
    database: &Arc<Availability>,
    shutdown: &CancellationToken,
    start: impl FnOnce() -> Vec<tokio::task::JoinHandle<()>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (database, shutdown) = (database.clone(), shutdown.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = database.wait() => {}
        }
        for job in start() {
            if let Err(error) = job.await {
                tracing::warn!(%error, "a background job ended abnormally");
            }
        }
    })
}

/// Gateway mode, when upstreams are configured: stdio upstreams start now, HTTP ones are
/// reached on first use.
fn start_gateway(
    config: &ServeConfig,
    store: &Store,
    stop: &CancellationToken,
) -> Result<Option<Arc<Gateway>>, RunError> {
    if config.upstreams.is_empty() {
        return Ok(None);
    }
    for upstream in &config.upstreams {
        tracing::info!(upstream = %upstream.name, location = %upstream.location(), timeout = ?upstream.timeout, "gateway upstream");
    }
    let gateway = Gateway::start(config.upstreams.clone(), store.clone(), stop.clone())
        .map_err(ConfigError::Invalid)?;
    crate::metrics::register_upstreams(gateway.names().map(ToString::to_string));
    Ok(Some(gateway))
}

/// Prints the start-up banner. Its first line is machine-readable, for scripts and tests that
/// start on port 0. The banner is for whoever reads stdout: one who has stopped reading
/// (`steward serve | head -1`) or a stdout that cannot be written is no reason to stop
/// serving.
fn print_banner(banner: &str) {
    match crate::stdout::out!("{banner}") {
        Ok(()) => {}
        Err(error) if error.reader_left() => {
            tracing::debug!("standard output is closed; the start-up banner was not printed");
        }
        Err(error) => tracing::warn!(%error, "the start-up banner was not printed"),
    }
}

/// What a person needs to connect, on stdout at start-up.
fn startup_banner(addr: std::net::SocketAddr, config: &ServeConfig) -> String {
    use crate::security::AuthMode;
    let auth = match config.security.auth {
        AuthMode::None if addr.ip().is_loopback() => {
            "none (this machine only; `--auth api-key` for others)"
        }
        AuthMode::None => "none (--insecure-no-auth: anyone who reaches this address)",
        AuthMode::ApiKey => "api-key (Authorization: Bearer <key> from `steward keys create`)",
    };
    format!(
        "steward listening on http://{addr}\n\
         \x20 MCP endpoint: http://{addr}/mcp\n\
         \x20 dashboard:    http://{addr}/\n\
         \x20 database:     {}\n\
         \x20 auth:         {auth}\n",
        config.store.database.redacted()
    ) + &upstream_lines(config)
}

/// One banner line per upstream: its tools' prefix and where it is (no credentials).
fn upstream_lines(config: &ServeConfig) -> String {
    let mut lines = String::new();
    if !config.board {
        lines.push_str("  board:        not served (--no-board)\n");
    }
    for upstream in &config.upstreams {
        let names = match upstream.namespaced {
            true => format!("{}__*", upstream.name),
            false => format!("{} (its own names, no namespace)", upstream.name),
        };
        lines.push_str(&format!(
            "  upstream:     {names} -> {}\n",
            upstream.location()
        ));
    }
    lines
}

/// Runs `steward stdio` until the client closes standard input. Like `serve`, it starts while
/// PostgreSQL is unreachable (see [`open_serving_store`]): tools that need the database fail
/// until it answers, and the ledger's rows wait in the journal until then.
pub async fn stdio(config: StoreConfig) -> Result<(), RunError> {
    let shutdown = CancellationToken::new();
    let (store, database) = open_serving_store(&config.database, &shutdown).await?;
    let ledger_stop = CancellationToken::new();
    let (ledger, ledger_writer) = start_ledger(&store, &database, &config, &ledger_stop).await?;
    tokio::spawn(stop_on_signal(shutdown.clone()));
    tokio::spawn(stop_on_hangup(shutdown.clone()));
    let ctx = ServerContext::new(store.clone(), Some(ledger.clone()));
    let sweep_stop = CancellationToken::new();
    let sweep = when_ready(&database, &sweep_stop, {
        let (store, changes, health) = (store.clone(), ctx.changes.clone(), ctx.sweep.clone());
        let stop = sweep_stop.clone();
        let poll = SessionSettings::default().revocation_poll;
        move || vec![expiry::spawn_sweep(store, changes, health, poll, stop)]
    });
    let outcome = mcp::stdio::serve(ctx, ledger, database, shutdown).await;
    sweep_stop.cancel();
    if let Err(error) = sweep.await {
        tracing::warn!(%error, "the lease sweep ended abnormally");
    }
    ledger_stop.cancel();
    if let Err(error) = ledger_writer.await {
        tracing::error!(%error, "the ledger writer ended abnormally");
    }
    store.close().await;
    outcome.map_err(RunError::Runtime)
}

async fn start_ledger(
    store: &Store,
    database: &Arc<Availability>,
    config: &StoreConfig,
    stop: &CancellationToken,
) -> Result<(Ledger, tokio::task::JoinHandle<()>), RunError> {
    Ledger::start(
        store.clone(),
        database.clone(),
        config.ledger.clone(),
        config.pricing.clone(),
        stop.clone(),
    )
    .await
    .map_err(|e| RunError::Runtime(anyhow::anyhow!("cannot start the request ledger: {e}")))
}

/// `steward stdio` also stops when its terminal or parent hangs up (SIGHUP), so its session
/// and claims end. (`serve` keeps SIGHUP's default: it may run under `nohup`.)
async fn stop_on_hangup(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                if hangup.recv().await.is_some() {
                    shutdown.cancel();
                }
            }
            Err(error) => tracing::warn!(%error, "cannot listen for SIGHUP"),
        }
    }
    #[cfg(not(unix))]
    drop(shutdown);
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops Steward gracefully");
                if let Err(error) = ctrl_c.await {
                    tracing::warn!(%error, "cannot listen for Ctrl-C");
                    return;
                }
            }
        }
    }
    #[cfg(not(unix))]
    if let Err(error) = ctrl_c.await {
        tracing::warn!(%error, "cannot listen for Ctrl-C");
        return;
    }
    tracing::info!("stopping: finishing in-flight requests");
    shutdown.cancel();
}

/// Runs an administrative command against the database, then closes it.
pub async fn admin<F>(database: &DatabaseUrl, mode: OpenMode, command: F) -> Result<(), RunError>
where
    F: for<'a> FnOnce(
        &'a Store,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>,
    >,
{
    let store = open_store_with(database, mode).await?;
    let outcome = command(&store).await;
    store.close().await;
    outcome.map_err(RunError::Runtime)
}
