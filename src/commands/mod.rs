//! The CLI's read-and-administer commands. They open the same database as `serve`, so they
//! work whether or not a server is running.

pub mod board;
pub mod keys;
pub mod pricing;
pub mod requests;
pub mod sessions;
pub mod stats;
pub mod table;
