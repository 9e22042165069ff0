//! Command-line interface. Every flag can also come from a `STEWARD_<FLAG>` environment
//! variable (clap's `env`) and from `steward.toml` (see [`crate::config`]); flags win over
//! the environment, which wins over the file, which wins over the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "steward",
    version,
    about = "An MCP server with a shared task board and an honest ledger of every session and request"
)]
pub struct Cli {
    /// Configuration file (TOML). Defaults to ./steward.toml when that file exists.
    #[arg(long, env = "STEWARD_CONFIG", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over Streamable HTTP at /mcp, plus /health.
    Serve(ServeArgs),
    /// Serve the same tools over stdio (for `claude mcp add steward -- steward stdio`).
    Stdio(DatabaseArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = "STEWARD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://PATH (created on first run) or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "STEWARD_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
}
