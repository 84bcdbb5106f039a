//! What mptcpify tells the operator of an event, as data: each record the
//! programs send decoded once ([`report`]), and its two forms ([`render`]):
//! a text line, and an object of the JSON interface ([`json`]), with
//! [`sockopt_names`]' symbols; and the counters as Prometheus scrapes them
//! ([`metrics`]); the kernel's fallback reasons, named ([`fallback`]);
//! the counts per selector, fallback reason and refused option
//! ([`tallies`]).

pub mod fallback;
#[cfg(test)]
mod golden;
pub mod json;
pub mod metrics;
pub mod render;
pub mod report;
pub mod sockopt_names;
pub mod tallies;
