//! The two renderings of an event the programs report: its text line and
//! its JSON object (README, "JSON output", documents each field). Pure:
//! writing them is mptcpify's (its event log and `mptcpify monitor`).

#[cfg(test)]
use mptcpify_common::event::Record;
use mptcpify_common::{event::Explanation, maps::kind, Keep, Verdict};

use crate::output::json::{self, JsonEvent, Socket, Source};
use crate::output::report::{Accepted, Call, Closed, Family, Kept, Origin, Report, Subflow, Who};
use crate::output::{fallback, sockopt_names};

/// The text line of one record (the tests' way in: the program decodes
/// each record once, [`Report::decode`]).
#[cfg(test)]
pub fn line<R: Copy + Into<Record>>(record: &R) -> String {
    text(&Report::decode(&(*record).into()))
}

/// One record (or an event without ends) as a JSON line.
#[cfg(test)]
pub fn json<R: Copy + Into<Record>>(record: &R, time: std::time::SystemTime) -> String {
    json_of(record, time, None)
}

/// One record as a JSON line, with the `instance` it came from (the
/// monitor's).
#[cfg(test)]
pub fn json_of<R: Copy + Into<Record>>(
    record: &R,
    time: std::time::SystemTime,
    instance: Option<u32>,
) -> String {
    to_json(&Report::decode(&(*record).into()), time, instance).to_line()
}

/// The text line of one event.
pub fn text(report: &Report) -> String {
    let who_words =
        |who: &Who| format!("pid={} tid={} comm={}", who.pid, who.tid, shown(&who.comm));
    match report {
        Report::RefusedOption {
            who,
            call,
            level,
            option,
            errno,
        } => format!(
            "mptcp refused {} {} ({}) {}: MPTCP does not implement it; if {comm} \
             depends on it, keep it on TCP: --exclude-comm {comm}",
            call_name(*call),
            sockopt_names::option(*level, *option),
            sockopt_names::errno(*errno),
            who_words(who),
            comm = shown(&who.comm),
        ),
        Report::KeptTcp {
            who,
            family,
            reason: Kept::Sandboxed,
        } => format!(
            "kept tcp (sandboxed: Landlock would not restrict mptcp) {} family={}",
            who_words(who),
            family_name(*family)
        ),
        Report::KeptTcp {
            who,
            family,
            reason: Kept::SockFiltered,
        } => format!(
            "kept tcp (cgroup sock_create program: another tool's filter would see protocol \
             mptcp) {} family={}",
            who_words(who),
            family_name(*family)
        ),
        Report::WouldUpgrade { who, family } => format!(
            "would upgrade {} family={}",
            who_words(who),
            family_name(*family)
        ),
        Report::Closed {
            who,
            family,
            origin,
            outcome,
        } => format!(
            "closed {}{} family={}: {}",
            match origin {
                Origin::Created => "",
                Origin::Accepted => "accepted connection of ",
            },
            who_words(who),
            family_name(*family),
            closed_words(*outcome)
        ),
        Report::Accepted {
            who,
            family,
            outcome,
            local,
            remote,
        } => format!(
            "accepted {} family={} local={local} remote={remote}: {}",
            who_words(who),
            family_name(*family),
            match outcome {
                Accepted::Mptcp => "mptcp",
                Accepted::Tcp => "tcp (the client did not offer MP_CAPABLE)",
            }
        ),
        Report::Explain { who, family, why } => format!(
            "explain {} family={}: {}",
            who_words(who),
            family_name(*family),
            explained(why)
        ),
        Report::Fallback {
            who,
            family,
            reason,
        } => format!(
            "fallback {} family={}: mptcp fell back to tcp ({})",
            who_words(who),
            family_name(*family),
            reason_words(Some(*reason))
        ),
        Report::Established { who, family } => format!(
            "established {} family={}: mptcp",
            who_words(who),
            family_name(*family)
        ),
        Report::Subflow {
            who,
            family,
            state: Subflow::Up,
            extra_subflows,
        } => format!(
            "subflow up {} family={}: {}",
            who_words(who),
            family_name(*family),
            extra_subflows_words(*extra_subflows)
        ),
        Report::Subflow {
            who,
            family,
            state: Subflow::Down,
            extra_subflows,
        } => format!(
            "subflow down {} family={} (extra subflows joined so far: {extra_subflows})",
            who_words(who),
            family_name(*family),
        ),
        Report::Dropped { count, .. } => {
            format!("dropped {count} events: this monitor did not read them fast enough")
        }
        Report::Upgraded { who, family } => {
            format!(
                "upgraded {} family={}",
                who_words(who),
                family_name(*family)
            )
        }
        Report::TcpOption { who, level, option } => format!(
            "{} (pid {}) sets {} on a TCP socket",
            shown(&who.comm),
            who.pid,
            sockopt_names::option(*level, *option)
        ),
        Report::Unknown { who, outcome } => format!(
            "unknown event {outcome} {} (from another mptcpify version?)",
            who_words(who)
        ),
    }
}

/// A process name as a text line shows it: control characters escaped
/// (`\u{1b}`), since any process may choose its name and a terminal would
/// act on them. JSON escapes them itself.
fn shown(comm: &str) -> String {
    comm.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// One event as JSON (README, "JSON output").
pub fn to_json(report: &Report, time: std::time::SystemTime, instance: Option<u32>) -> JsonEvent {
    let socket = |who: &Who| Socket {
        time: json::time(time),
        pid: who.pid,
        tid: who.tid,
        comm: who.comm.clone(),
        pod: None,
        container: None,
    };
    let from = Source { instance };
    let family = |family: &Family| family_name(*family).to_string();
    match report {
        Report::Upgraded { who, family: f } => JsonEvent::Upgraded {
            socket: socket(who),
            family: family(f),
            from,
        },
        Report::WouldUpgrade { who, family: f } => JsonEvent::WouldUpgrade {
            socket: socket(who),
            family: family(f),
            from,
        },
        Report::KeptTcp {
            who,
            family: f,
            reason,
        } => JsonEvent::KeptTcp {
            socket: socket(who),
            family: family(f),
            reason: match reason {
                Kept::Sandboxed => "sandboxed",
                Kept::SockFiltered => "sock_filtered",
            }
            .into(),
            from,
        },
        Report::RefusedOption {
            who,
            call,
            level,
            option,
            errno,
        } => JsonEvent::RefusedOption {
            socket: socket(who),
            call: call_name(*call).into(),
            level: sockopt_names::level(*level),
            option: sockopt_names::option(*level, *option),
            errno: sockopt_names::errno(*errno),
            fix: format!("--exclude-comm {}", who.comm),
            from,
        },
        Report::TcpOption { .. } => {
            unreachable!("mptcpify audit writes tcp_option events with MPTCP's answer")
        }
        Report::Explain {
            who,
            family: f,
            why,
        } => JsonEvent::Explain {
            socket: socket(who),
            family: family(f),
            verdict: match why.verdict {
                Some(Verdict::Upgrade) => "upgraded",
                Some(Verdict::Keep(_)) => "kept_tcp",
                None => "unknown",
            }
            .into(),
            reason: match why.verdict {
                Some(Verdict::Keep(keep)) => Some(keep_reason(keep, why.excluded_by).0.into()),
                _ => None,
            },
            selected_by: {
                let selected = selector_options(why.selected_by, false);
                if selected.is_empty() && why.verdict == Some(Verdict::Upgrade) {
                    vec!["--all".into()]
                } else {
                    selected.into_iter().map(String::from).collect()
                }
            },
            excluded_by: selector_options(why.excluded_by, true)
                .into_iter()
                .map(String::from)
                .collect(),
            from,
        },
        Report::Closed {
            who,
            family: f,
            origin,
            outcome,
        } => JsonEvent::Closed {
            socket: socket(who),
            family: family(f),
            role: match origin {
                Origin::Created => "created",
                Origin::Accepted => "accepted",
            }
            .into(),
            outcome: match outcome {
                Closed::Mptcp { .. } => "mptcp",
                Closed::Fallback { .. } => "fallback",
                Closed::FellBackLater { .. } => "fell_back_later",
                Closed::Listener => "listener",
                Closed::Unconnected => "unconnected",
            }
            .into(),
            extra_subflows: match outcome {
                Closed::Mptcp { extra_subflows } | Closed::FellBackLater { extra_subflows, .. } => {
                    *extra_subflows
                }
                _ => 0,
            },
            reason: match outcome {
                Closed::Fallback { reason } | Closed::FellBackLater { reason, .. } => {
                    reason.map(fallback::name)
                }
                _ => None,
            },
            from,
        },
        Report::Fallback {
            who,
            family: f,
            reason,
        } => JsonEvent::Fallback {
            socket: socket(who),
            family: family(f),
            reason: fallback::name(*reason),
            from,
        },
        Report::Accepted {
            who,
            family: f,
            outcome,
            local,
            remote,
        } => JsonEvent::Accepted {
            socket: socket(who),
            family: family(f),
            local_address: local.ip().to_string(),
            local_port: local.port(),
            remote_address: remote.ip().to_string(),
            remote_port: remote.port(),
            outcome: match outcome {
                Accepted::Mptcp => "mptcp",
                Accepted::Tcp => "tcp",
            }
            .into(),
            from,
        },
        Report::Established { who, family: f } => JsonEvent::Established {
            socket: socket(who),
            family: family(f),
            outcome: "mptcp".into(),
            from,
        },
        Report::Subflow {
            who,
            family: f,
            state,
            extra_subflows,
        } => JsonEvent::Subflow {
            socket: socket(who),
            family: family(f),
            extra_subflows: *extra_subflows,
            state: match state {
                Subflow::Up => "up",
                Subflow::Down => "down",
            }
            .into(),
            from,
        },
        Report::Dropped { who, count } => JsonEvent::Dropped {
            socket: socket(who),
            count: *count,
            from,
        },
        Report::Unknown { who, outcome } => JsonEvent::Unknown {
            socket: socket(who),
            code: *outcome,
            from,
        },
    }
}

/// The words of a closed socket's line after the colon.
fn closed_words(outcome: Closed) -> String {
    match outcome {
        Closed::Mptcp { extra_subflows } => {
            format!("mptcp, {}", extra_subflows_words(extra_subflows))
        }
        Closed::Fallback { reason } => match reason.and_then(fallback::describe) {
            Some((name, meaning)) => format!("fell back to tcp ({meaning}: {name})"),
            None => "fell back to tcp (the peer did not answer MP_CAPABLE)".into(),
        },
        Closed::FellBackLater {
            extra_subflows,
            reason,
        } => format!(
            "mptcp, then fell back to tcp ({}), {}",
            reason_words(reason),
            extra_subflows_words(extra_subflows)
        ),
        Closed::Listener => "listener".into(),
        Closed::Unconnected => "never connected".into(),
    }
}

/// Why a connection fell back, as the kernel counted it.
fn reason_words(reason: Option<u32>) -> String {
    match reason {
        Some(mib) => match fallback::describe(mib) {
            Some((name, meaning)) => format!("{meaning}: {name}"),
            None => fallback::name(mib),
        },
        None => "this kernel does not say why".into(),
    }
}

/// "1 extra subflow", "2 extra subflows".
fn extra_subflows_words(n: u32) -> String {
    format!("{n} extra subflow{}", if n == 1 { "" } else { "s" })
}

/// The selector options of the [`kind`] bits `kinds` (include or exclude).
fn selector_options(kinds: u32, exclude: bool) -> Vec<&'static str> {
    let names: [(u32, &str, &str); 4] = [
        (kind::COMM, "--comm", "--exclude-comm"),
        (kind::PID, "--pid", "--exclude-pid"),
        (kind::NETNS, "--netns", "--exclude-netns"),
        (kind::CGROUP, "--cgroup/--unit", "--exclude-cgroup"),
    ];
    names
        .iter()
        .filter(|(bit, _, _)| kinds & bit != 0)
        .map(|&(_, include, excl)| if exclude { excl } else { include })
        .collect()
}

/// Why a socket kept TCP: the JSON `reason` and the words of the text line.
fn keep_reason(keep: Keep, excluded_by: u32) -> (&'static str, String) {
    match keep {
        Keep::NotTcp => ("not_tcp", "not a TCP socket".into()),
        Keep::Unsupported => (
            "unsupported",
            "this kernel cannot create MPTCP sockets of this family".into(),
        ),
        Keep::Excluded => (
            "excluded",
            format!(
                "excluded by {}",
                selector_options(excluded_by, true).join(", ")
            ),
        ),
        Keep::NotSelected => (
            "not_selected",
            "not selected (no include selector names it)".into(),
        ),
        Keep::MptcpDisabled => (
            "mptcp_disabled",
            "net.mptcp.enabled is 0 in its network namespace".into(),
        ),
        Keep::Sandboxed => (
            "sandboxed",
            "sandboxed by Landlock, whose TCP rules would not hold for MPTCP".into(),
        ),
        Keep::Filtered => (
            "sock_filtered",
            "a cgroup/sock_create program (another tool's) applies to it".into(),
        ),
    }
}

/// The words of an `--explain` line after the colon.
fn explained(why: &Explanation) -> String {
    match why.verdict {
        Some(Verdict::Upgrade) => {
            let by = selector_options(why.selected_by, false);
            if by.is_empty() {
                "upgraded (selected by --all)".into()
            } else {
                format!("upgraded (selected by {})", by.join(", "))
            }
        }
        Some(Verdict::Keep(keep)) => format!("kept tcp: {}", keep_reason(keep, why.excluded_by).1),
        None => "unknown verdict (another mptcpify version?)".into(),
    }
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

fn call_name(call: Call) -> &'static str {
    match call {
        Call::Setsockopt => "setsockopt",
        Call::Getsockopt => "getsockopt",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcpify_common::event::{closed, origin, outcome, Event};

    fn event(outcome: u32) -> Event {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        Event {
            outcome,
            pid: 42,
            tid: 43,
            family: libc::AF_INET as u32,
            level: libc::SOL_TCP as u32,
            option: libc::TCP_ULP as u32,
            errno: libc::ENOPROTOOPT as u32,
            comm,
            ..Event::default()
        }
    }

    #[test]
    fn a_refused_option_names_option_errno_process_and_fix() {
        let text = line(&event(outcome::REFUSED_SETSOCKOPT));
        assert_eq!(
            text,
            "mptcp refused setsockopt TCP_ULP (ENOPROTOOPT) pid=42 tid=43 comm=curl: MPTCP \
             does not implement it; if curl depends on it, keep it on TCP: --exclude-comm curl"
        );
        let value: serde_json::Value = serde_json::from_str(&json(
            &event(outcome::REFUSED_SETSOCKOPT),
            std::time::UNIX_EPOCH,
        ))
        .unwrap();
        assert_eq!(value["event"], "refused_option");
        assert_eq!(value["time"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(value["call"], "setsockopt");
        assert_eq!(value["level"], "SOL_TCP");
        assert_eq!(value["option"], "TCP_ULP");
        assert_eq!(value["errno"], "ENOPROTOOPT");
        assert_eq!(value["fix"], "--exclude-comm curl");
        assert_eq!(value["pid"], 42);
        assert!(value.get("family").is_none());
    }

    #[test]
    fn upgrades_and_kept_sockets_say_who_and_why() {
        assert_eq!(
            line(&event(outcome::UPGRADED)),
            "upgraded pid=42 tid=43 comm=curl family=ipv4"
        );
        let value: serde_json::Value = serde_json::from_str(&json(
            &event(outcome::KEPT_SANDBOXED),
            std::time::UNIX_EPOCH,
        ))
        .unwrap();
        assert_eq!(
            line(&event(outcome::WOULD_UPGRADE)),
            "would upgrade pid=42 tid=43 comm=curl family=ipv4"
        );
        let would: serde_json::Value =
            serde_json::from_str(&json(&event(outcome::WOULD_UPGRADE), std::time::UNIX_EPOCH))
                .unwrap();
        assert_eq!(would["event"], "would_upgrade");
        assert_eq!(would["family"], "ipv4");
        assert_eq!(value["event"], "kept_tcp");
        assert_eq!(value["reason"], "sandboxed");
        assert_eq!(value["family"], "ipv4");
        assert_eq!(value["comm"], "curl");
        let filtered = event(outcome::KEPT_FILTERED);
        assert!(
            line(&filtered).starts_with("kept tcp (cgroup sock_create program"),
            "{}",
            line(&filtered)
        );
        let value: serde_json::Value =
            serde_json::from_str(&json(&filtered, std::time::UNIX_EPOCH)).unwrap();
        assert_eq!(value["event"], "kept_tcp");
        assert_eq!(value["reason"], "sock_filtered");
    }

    fn explain(verdict: Verdict, selected_by: u32, excluded_by: u32) -> Event {
        Event {
            outcome: outcome::VERDICT,
            why: Explanation::pack(verdict, selected_by, excluded_by),
            ..event(outcome::VERDICT)
        }
    }

    #[test]
    fn closed_sockets_say_what_they_did() {
        let closed_event = |kind: u32, joins: u32| Event {
            outcome: outcome::CLOSED,
            why: closed::pack(kind, origin::CREATED, joins),
            ..event(outcome::CLOSED)
        };
        assert_eq!(
            line(&closed_event(closed::MPTCP, 1)),
            "closed pid=42 tid=43 comm=curl family=ipv4: mptcp, 1 extra subflow"
        );
        assert!(line(&closed_event(closed::MPTCP, 0)).ends_with("mptcp, 0 extra subflows"));
        assert!(line(&closed_event(closed::FALLBACK, 0)).contains(": fell back to tcp"));
        assert!(line(&closed_event(closed::LISTENER, 0)).ends_with(": listener"));
        assert!(line(&closed_event(closed::UNCONNECTED, 0)).ends_with(": never connected"));
        let value: serde_json::Value = serde_json::from_str(&json(
            &closed_event(closed::MPTCP, 2),
            std::time::UNIX_EPOCH,
        ))
        .unwrap();
        assert_eq!(value["event"], "closed");
        assert_eq!(value["outcome"], "mptcp");
        assert_eq!(value["extra_subflows"], 2);
        assert_eq!(value["pid"], 42);
    }

    #[test]
    fn a_connections_life_is_for_monitors_and_says_its_subflows() {
        let life = |outcome: u32, why: u32| Event {
            why,
            ..event(outcome)
        };
        assert_eq!(
            line(&life(outcome::ESTABLISHED, 0)),
            "established pid=42 tid=43 comm=curl family=ipv4: mptcp"
        );
        assert_eq!(
            line(&life(outcome::SUBFLOW_UP, 1)),
            "subflow up pid=42 tid=43 comm=curl family=ipv4: 1 extra subflow"
        );
        assert!(line(&life(outcome::SUBFLOW_DOWN, 2)).starts_with("subflow down pid=42 "));
        let value: serde_json::Value = serde_json::from_str(&json_of(
            &life(outcome::SUBFLOW_DOWN, 2),
            std::time::UNIX_EPOCH,
            Some(7),
        ))
        .unwrap();
        assert_eq!(value["event"], "subflow");
        assert_eq!(value["state"], "down");
        assert_eq!(value["extra_subflows"], 2);
        assert_eq!(value["instance"], 7);
        let value: serde_json::Value = serde_json::from_str(&json(
            &life(outcome::MONITOR_DROPPED, 5),
            std::time::UNIX_EPOCH,
        ))
        .unwrap();
        assert_eq!(
            (value["event"].clone(), value["count"].clone()),
            ("dropped".into(), 5.into())
        );
        assert!(value.get("instance").is_none());
    }

    #[test]
    fn explain_lines_name_the_selector_or_guard_that_decided() {
        let upgraded = explain(Verdict::Upgrade, kind::CGROUP | kind::COMM, 0);
        assert_eq!(
            line(&upgraded),
            "explain pid=42 tid=43 comm=curl family=ipv4: upgraded (selected by --comm, \
             --cgroup/--unit)"
        );
        assert!(line(&explain(Verdict::Upgrade, 0, 0)).ends_with("upgraded (selected by --all)"));
        let excluded = explain(Verdict::Keep(Keep::Excluded), kind::CGROUP, kind::COMM);
        assert!(
            line(&excluded).ends_with("kept tcp: excluded by --exclude-comm"),
            "{}",
            line(&excluded)
        );
        for (keep, words) in [
            (Keep::NotSelected, "not selected"),
            (Keep::MptcpDisabled, "net.mptcp.enabled is 0"),
            (Keep::Sandboxed, "sandboxed by Landlock"),
            (Keep::Filtered, "a cgroup/sock_create program"),
            (Keep::Unsupported, "this kernel cannot create MPTCP sockets"),
        ] {
            let text = line(&explain(Verdict::Keep(keep), 0, 0));
            assert!(text.contains(&format!(": kept tcp: {words}")), "{text}");
        }
        let value: serde_json::Value =
            serde_json::from_str(&json(&excluded, std::time::UNIX_EPOCH)).unwrap();
        assert_eq!(value["event"], "explain");
        assert_eq!(value["verdict"], "kept_tcp");
        assert_eq!(value["reason"], "excluded");
        assert_eq!(value["selected_by"], serde_json::json!(["--cgroup/--unit"]));
        assert_eq!(value["excluded_by"], serde_json::json!(["--exclude-comm"]));
        let value: serde_json::Value = serde_json::from_str(&json(
            &explain(Verdict::Upgrade, 0, 0),
            std::time::UNIX_EPOCH,
        ))
        .unwrap();
        assert_eq!(value["verdict"], "upgraded");
        assert_eq!(value["selected_by"], serde_json::json!(["--all"]));
        assert!(value.get("reason").is_none());
    }
}
