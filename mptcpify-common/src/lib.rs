//! What the BPF program and its loader must agree on.
//!
//! - [`consts`]: the few Linux ABI numbers the decision needs.
//! - [`decide`]: the upgrade decision, a pure function both sides share.
//! - [`maps`]: the names, keys and values of the BPF maps (the policy).
//! - [`event`]: the record the program sends for each upgraded socket.
#![no_std]

pub mod consts;
pub mod decide;
pub mod event;
pub mod maps;

pub use decide::{decide, Facts, Keep, SocketCall, Support, TaskMatch, Verdict};
