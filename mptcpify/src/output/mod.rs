//! What mptcpify tells the operator while attached.
//!
//! - [`events`]: the per-socket log (upgrades, kept sockets, refused
//!   options, `--explain` verdicts, closed sockets' outcomes), in the forms
//!   [`render`] makes (text and JSON), with [`sockopt_names`]' symbols.
//! - [`summary`]: the JSON lines at attach, reload and detach, and the
//!   outcome line.
//! - [`monitor_server`]: the same events served to `mptcpify monitor`.

pub mod events;
#[cfg(test)]
mod golden;
pub mod json;
pub mod monitor_server;
pub mod render;
pub mod report;
pub mod sockopt_names;
pub mod summary;
