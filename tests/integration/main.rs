//! Steward's integration tests, one binary: the shared harness (`common`, `board`) is compiled
//! and linked once instead of once per test file. Each former test file is a module, so
//! `cargo test --test integration sessions::` runs one of them.

mod board;
mod common;

mod api;
mod auth;
mod board_api;
mod board_cli;
mod board_direct;
mod check;
mod claim_ends;
mod claim_sweep;
mod claims;
mod clients;
mod config;
mod dashboard;
mod dormant_sessions;
mod first_hour;
mod gateway;
mod gateway_breaker;
mod gateway_bridge;
mod gateway_https;
mod gateway_lists;
mod gateway_raw;
mod gateway_relay;
mod gateway_restarts;
mod gateway_stateless;
mod gateway_view;
mod gateway_wire;
mod hostile;
mod hostile_batches;
mod hostile_connections;
mod hostile_generated;
mod hostile_memory;
mod hostile_round2;
mod http;
mod import;
mod journal;
mod ledger;
mod observability;
mod pricing;
mod resume;
mod retention;
mod schemas;
mod scripts;
mod session_totals;
mod sessions;
mod stateless;
mod stats;
mod stdio;
mod store;
mod surface;
mod task_links;
mod task_search;
mod tools;
