//! The JSON lines `--json` writes when mptcpify attaches and when it
//! detaches (README, "JSON output"); the events between are `events`'.

use mptcpify_common::maps::Counter;

use mptcpify_core::output::json::{self, JsonEvent};

use crate::bpf::instances::Tallies;
use crate::policy::Policy;
use mptcpify_core::output::tallies;

fn now() -> String {
    json::time(std::time::SystemTime::now())
}

pub fn attached_json(policy: &Policy) -> String {
    JsonEvent::Attached {
        time: now(),
        pid: std::process::id(),
        kernel: crate::kernel::preflight::kernel_release(),
        policy: policy.to_string(),
    }
    .to_line()
}

/// `--config` reloaded on SIGHUP: the policy now in force.
pub fn reloaded_json(policy: &Policy) -> String {
    JsonEvent::Reloaded {
        time: now(),
        pid: std::process::id(),
        kernel: crate::kernel::preflight::kernel_release(),
        policy: policy.to_string(),
    }
    .to_line()
}

/// What the upgraded sockets that were closed did, in one line: "12
/// upgraded: 9 MPTCP (14 extra subflows), 2 fell back to TCP, 1 listener,
/// 0 never connected, 0 still open". `open`: the upgraded sockets the
/// kernel still has (`Attached::open_sockets`); without it, the upgraded
/// ones not counted closed.
pub fn outcomes_line(counts: &[(Counter, u64)], open: Option<u64>) -> String {
    let get = |wanted: Counter| {
        counts
            .iter()
            .find(|(c, _)| *c == wanted)
            .map_or(0, |(_, v)| *v)
    };
    let closed = [
        Counter::ClosedMptcp,
        Counter::ClosedFallback,
        Counter::ClosedListener,
        Counter::ClosedUnconnected,
    ]
    .map(get);
    let upgraded = get(Counter::Upgraded);
    let open = open.unwrap_or_else(|| upgraded.saturating_sub(closed.iter().sum()));
    format!(
        "{upgraded} upgraded: {} MPTCP ({} extra subflows), {} fell back to TCP, {} listener, \
         {} never connected, {open} still open",
        closed[0],
        get(Counter::ExtraSubflows),
        closed[1],
        closed[2],
        closed[3],
    )
}

/// What upgraded listeners accepted, in one line, when they accepted
/// anything: "accepted by upgraded listeners: 75 MPTCP (75%), 25 plain
/// TCP; of the MPTCP ones 70 closed, with 12 extra subflows".
pub fn accepted_line(counts: &[(Counter, u64)]) -> Option<String> {
    let get = |wanted: Counter| {
        counts
            .iter()
            .find(|(c, _)| *c == wanted)
            .map_or(0, |(_, v)| *v)
    };
    let (mptcp, tcp) = (get(Counter::AcceptedMptcp), get(Counter::AcceptedTcp));
    if mptcp + tcp == 0 {
        return None;
    }
    Some(format!(
        "accepted by upgraded listeners: {mptcp} MPTCP ({}%), {tcp} plain TCP; of the MPTCP \
         ones {} closed, with {} extra subflows",
        mptcp * 100 / (mptcp + tcp),
        get(Counter::ClosedAccepted),
        get(Counter::ExtraSubflowsAccepted),
    ))
}

pub fn detached_json(
    tcp_sockets: u64,
    counts: &[(Counter, u64)],
    skipped: Option<u64>,
    missed: &[(&str, u64)],
    tallies: &Tallies,
) -> String {
    fn values<T: serde::Serialize>(rows: &[T]) -> Vec<serde_json::Value> {
        rows.iter()
            .map(|row| serde_json::to_value(row).expect("plain data serialises"))
            .collect()
    }
    JsonEvent::Detached {
        time: now(),
        pid: std::process::id(),
        tcp_sockets,
        counters: counts
            .iter()
            .map(|(counter, value)| (counter.key().to_string(), (*value).into()))
            .collect(),
        skipped_calls: skipped,
        missed_calls: missed
            .iter()
            .map(|(function, n)| (function.to_string(), *n))
            .collect(),
        selectors: values(&tallies.selectors),
        fallbacks: values(&tallies.fallbacks),
        refused_options: values(&tallies.refused_options),
    }
    .to_line()
}

/// The exit summary's lines of `tallies`: per selector (when the policy
/// has more than one to tell apart), the fallbacks by reason, the refused
/// options by option.
pub fn tally_lines(tallies: &Tallies) -> Vec<String> {
    let mut lines = Vec::new();
    if tallies.selectors.len() > 1 {
        lines.extend(
            tallies
                .selectors
                .iter()
                .map(|s| format!("by selector: {}", s.line())),
        );
    }
    if let Some(line) = tallies::fallbacks_line(&tallies.fallbacks) {
        lines.push(format!("fallbacks by when and reason: {line}"));
    }
    if let Some(line) = tallies::refused_line(&tallies.refused_options) {
        lines.push(format!("refused options by option: {line}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepted_line_is_said_only_for_servers() {
        assert_eq!(accepted_line(&[(Counter::Upgraded, 3)]), None);
        let counts = [
            (Counter::AcceptedMptcp, 75),
            (Counter::AcceptedTcp, 25),
            (Counter::ClosedAccepted, 70),
            (Counter::ExtraSubflowsAccepted, 12),
        ];
        assert_eq!(
            accepted_line(&counts).unwrap(),
            "accepted by upgraded listeners: 75 MPTCP (75%), 25 plain TCP; of the MPTCP ones 70 \
             closed, with 12 extra subflows"
        );
    }

    #[test]
    fn the_outcomes_line_adds_up() {
        let counts = [
            (Counter::Upgraded, 12),
            (Counter::ClosedMptcp, 9),
            (Counter::ExtraSubflows, 14),
            (Counter::ClosedFallback, 2),
            (Counter::ClosedListener, 1),
        ];
        assert_eq!(
            outcomes_line(&counts, None),
            "12 upgraded: 9 MPTCP (14 extra subflows), 2 fell back to TCP, 1 listener, 0 never \
             connected, 0 still open"
        );
        // Observed, not derived: sockets upgraded but never tagged (none
        // since the observers attach first) are not taken for open ones.
        assert_eq!(
            outcomes_line(&counts, Some(3)),
            "12 upgraded: 9 MPTCP (14 extra subflows), 2 fell back to TCP, 1 listener, 0 never \
             connected, 3 still open"
        );
    }
}
