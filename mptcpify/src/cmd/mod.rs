//! One module per subcommand, each reading its arguments from [`crate::cli`]
//! and working through the layers below.
//!
//! - [`upgrade`]: `mptcpify [SELECTORS]`, the foreground upgrader;
//!   [`attach`]: preflight, load and attach, and the counters at detach,
//!   which it shares with [`run`] and [`audit`].
//! - [`run`]: `mptcpify run -- CMD`.
//! - [`service`]: `mptcpify enable/disable UNIT` (mptcpify@UNIT.service).
//! - [`status`]: support, path manager, instances, sockets.
//! - [`audit`]: what would be upgraded and what would break.
//! - [`monitor`]: the attached instances' events, live.
//! - [`detach`]: `mptcpify detach [NAME]`, the end of a `--pin`.
//! - [`paths`]: `mptcpify paths [auto|reset]`, the MPTCP paths.
//! - [`docs`]: man pages and shell completions, from the clap definitions.

pub mod attach;
pub mod audit;
pub mod detach;
pub mod docs;
pub mod monitor;
pub mod paths;
pub mod run;
pub mod service;
pub mod status;
pub mod upgrade;
