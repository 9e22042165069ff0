//! Steward: an MCP server with a shared project and task board, and an honest, durable record
//! of every session and request.
//!
//! Layers, from the outside in: [`cli`]/[`config`] resolve what to run; [`server`] opens the
//! [`store`] and serves; [`mcp`] speaks the protocol (HTTP and stdio); [`tools`] are the board's
//! MCP tools over the [`store`]; [`board`] is the board's vocabulary.

pub mod api;
pub mod app;
pub mod board;
mod bounded;
pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod cost;
pub mod dashboard;
pub mod export;
pub mod gateway;
pub mod health;
pub mod ledger;
pub mod logs;
pub mod mcp;
pub mod metrics;
pub mod principal;
pub mod protocol;
pub mod resources;
pub mod rules;
pub mod security;
pub mod server;
pub mod sessions;
pub mod stats;
pub mod stdout;
pub mod store;
mod sync;
pub mod tls;
pub mod traces;
pub mod views;

#[cfg(test)]
mod layering;
