//! Steward's integration tests, one binary: the shared harness (`common`, `board`) is compiled
//! and linked once instead of once per test file. Each former test file is a module, so
//! `cargo test --test integration sessions::` runs one of them.

mod board;
mod common;

mod api;
mod auth;
mod check;
mod clients;
mod config;
mod dashboard;
mod first_hour;
mod hostile;
mod http;
mod ledger;
mod observability;
mod pricing;
mod resume;
mod retention;
mod sessions;
mod stateless;
mod stats;
mod stdio;
mod store;
mod surface;
mod tools;
