//! The JSON lines `--json` writes when mptcpify attaches and when it
//! detaches (README, "JSON output"); the events between are `events`'.

use mptcpify_common::maps::Counter;
use serde::Serialize;

use crate::policy::Policy;

#[derive(Serialize)]
struct Attached<'a> {
    event: &'a str,
    time: String,
    pid: u32,
    kernel: String,
    policy: String,
}

#[derive(Serialize)]
struct Detached<'a> {
    event: &'a str,
    time: String,
    pid: u32,
    tcp_sockets: u64,
    counters: serde_json::Map<String, serde_json::Value>,
}

fn now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

pub fn attached_json(policy: &Policy) -> String {
    serde_json::to_string(&Attached {
        event: "attached",
        time: now(),
        pid: std::process::id(),
        kernel: crate::preflight::kernel_release(),
        policy: policy.to_string(),
    })
    .expect("plain data serialises")
}

/// `--config` reloaded on SIGHUP: the policy now in force.
pub fn reloaded_json(policy: &Policy) -> String {
    serde_json::to_string(&Attached {
        event: "reloaded",
        time: now(),
        pid: std::process::id(),
        kernel: crate::preflight::kernel_release(),
        policy: policy.to_string(),
    })
    .expect("plain data serialises")
}

pub fn detached_json(tcp_sockets: u64, counts: &[(Counter, u64)]) -> String {
    serde_json::to_string(&Detached {
        event: "detached",
        time: now(),
        pid: std::process::id(),
        tcp_sockets,
        counters: counts
            .iter()
            .map(|(counter, value)| (counter.key().to_string(), (*value).into()))
            .collect(),
    })
    .expect("plain data serialises")
}
