//! What mptcpify tells the operator while attached. The events' types and
//! their text and JSON forms are pure, in `mptcpify_core::output`; here
//! they are written.
//!
//! - [`events`]: the per-socket log (upgrades, kept sockets, refused
//!   options, `--explain` verdicts, closed sockets' outcomes), read from
//!   the programs and written as text or JSON; [`clock`]: their wall time.
//! - [`summary`]: the JSON lines at attach, reload and detach, and the
//!   outcome line.
//! - [`monitor_server`]: the same events served to `mptcpify monitor`.
//! - [`metrics`]: the counters served to Prometheus (`--metrics`).

pub mod clock;
pub mod events;
pub mod metrics;
pub mod monitor_server;
pub mod summary;
