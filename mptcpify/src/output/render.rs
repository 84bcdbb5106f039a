//! The two renderings of an event the programs report: its text line and
//! its JSON object (README, "JSON output", documents each field), and the
//! clock that gives an event its wall time. Pure: writing them is
//! [`crate::output::events`]' and the monitors' ([`crate::cmd::monitor`]).

use mptcpify_common::{
    consts::AF_INET6,
    event::{closed, outcome, Event, Explanation},
    maps::kind,
    Keep, Verdict,
};
use serde::Serialize;

use crate::output::sockopt_names;

/// The text line of one event.
pub fn line(event: &Event) -> String {
    let comm = String::from_utf8_lossy(event.comm());
    let who = format!("pid={} tid={} comm={comm}", event.pid, event.tid);
    match event.outcome {
        outcome::REFUSED_SETSOCKOPT | outcome::REFUSED_GETSOCKOPT => format!(
            "mptcp refused {} {} ({}) {who}: MPTCP does not implement it; if {comm} \
             depends on it, keep it on TCP: --exclude-comm {comm}",
            call(event),
            sockopt_names::option(event.level, event.option),
            sockopt_names::errno(event.errno)
        ),
        outcome::KEPT_SANDBOXED => format!(
            "kept tcp (sandboxed: Landlock would not restrict mptcp) {who} family={}",
            family(event)
        ),
        outcome::KEPT_FILTERED => format!(
            "kept tcp (cgroup sock_create program: another tool's filter would see protocol \
             mptcp) {who} family={}",
            family(event)
        ),
        outcome::WOULD_UPGRADE => format!("would upgrade {who} family={}", family(event)),
        outcome::CLOSED => format!(
            "closed {who} family={}: {}",
            family(event),
            closed_outcome(event).1
        ),
        outcome::VERDICT => format!(
            "explain {who} family={}: {}",
            family(event),
            explained(&event.explanation())
        ),
        outcome::ESTABLISHED => format!("established {who} family={}: mptcp", family(event)),
        outcome::SUBFLOW_UP => format!(
            "subflow up {who} family={}: {}",
            family(event),
            extra_subflows(event.why)
        ),
        outcome::SUBFLOW_DOWN => format!(
            "subflow down {who} family={} (extra subflows joined so far: {})",
            family(event),
            event.why
        ),
        outcome::MONITOR_DROPPED => format!(
            "dropped {} events: this monitor did not read them fast enough",
            event.why
        ),
        _ => format!("upgraded {who} family={}", family(event)),
    }
}

/// What a closed upgraded socket did: the JSON `outcome`, the words of the
/// text line, and its extra subflows.
fn closed_outcome(event: &Event) -> (&'static str, String, u32) {
    let joins = event.why >> 8;
    match event.why & 0xff {
        closed::MPTCP => ("mptcp", format!("mptcp, {}", extra_subflows(joins)), joins),
        closed::FALLBACK => (
            "fallback",
            "fell back to tcp (the peer did not answer MP_CAPABLE)".into(),
            0,
        ),
        closed::LISTENER => ("listener", "listener".into(), 0),
        _ => ("unconnected", "never connected".into(), 0),
    }
}

/// "1 extra subflow", "2 extra subflows".
fn extra_subflows(n: u32) -> String {
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

fn family(event: &Event) -> &'static str {
    if event.family as i32 == AF_INET6 {
        "ipv6"
    } else {
        "ipv4"
    }
}

fn call(event: &Event) -> &'static str {
    if event.outcome == outcome::REFUSED_GETSOCKOPT {
        "getsockopt"
    } else {
        "setsockopt"
    }
}

/// One event as JSON (README, "JSON output").
#[derive(Serialize)]
struct JsonEvent<'a> {
    event: &'a str,
    time: String,
    pid: u32,
    tid: u32,
    comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    family: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_subflows: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    selected_by: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    excluded_by: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    option: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
    /// `subflow`: `up` or `down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    /// `dropped`: how many events.
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    /// `mptcpify monitor`: the program id of the instance that saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<u32>,
}

pub fn json(event: &Event, time: std::time::SystemTime) -> String {
    json_of(event, time, None)
}

/// One event as JSON, with the `instance` it came from (the monitor's).
pub fn json_of(event: &Event, time: std::time::SystemTime, instance: Option<u32>) -> String {
    let comm = String::from_utf8_lossy(event.comm()).into_owned();
    let mut json = JsonEvent {
        event: "upgraded",
        time: humantime::format_rfc3339_micros(time).to_string(),
        pid: event.pid,
        tid: event.tid,
        comm: comm.clone(),
        family: Some(family(event)),
        verdict: None,
        outcome: None,
        extra_subflows: None,
        reason: None,
        selected_by: None,
        excluded_by: None,
        call: None,
        level: None,
        option: None,
        errno: None,
        fix: None,
        state: None,
        count: None,
        instance,
    };
    match event.outcome {
        outcome::REFUSED_SETSOCKOPT | outcome::REFUSED_GETSOCKOPT => {
            json.event = "refused_option";
            json.family = None;
            json.call = Some(call(event));
            json.level = Some(sockopt_names::level(event.level));
            json.option = Some(sockopt_names::option(event.level, event.option));
            json.errno = Some(sockopt_names::errno(event.errno));
            json.fix = Some(format!("--exclude-comm {comm}"));
        }
        outcome::KEPT_SANDBOXED => {
            json.event = "kept_tcp";
            json.reason = Some("sandboxed");
        }
        outcome::KEPT_FILTERED => {
            json.event = "kept_tcp";
            json.reason = Some("sock_filtered");
        }
        outcome::WOULD_UPGRADE => json.event = "would_upgrade",
        outcome::ESTABLISHED => {
            json.event = "established";
            json.outcome = Some("mptcp");
        }
        outcome::SUBFLOW_UP | outcome::SUBFLOW_DOWN => {
            json.event = "subflow";
            json.state = Some(if event.outcome == outcome::SUBFLOW_UP {
                "up"
            } else {
                "down"
            });
            json.extra_subflows = Some(event.why);
        }
        outcome::MONITOR_DROPPED => {
            json.event = "dropped";
            json.family = None;
            json.count = Some(event.why);
        }
        outcome::CLOSED => {
            let (name, _, joins) = closed_outcome(event);
            json.event = "closed";
            json.outcome = Some(name);
            json.extra_subflows = Some(joins);
        }
        outcome::VERDICT => {
            let why = event.explanation();
            json.event = "explain";
            json.verdict = Some(match why.verdict {
                Some(Verdict::Upgrade) => "upgraded",
                Some(Verdict::Keep(_)) => "kept_tcp",
                None => "unknown",
            });
            if let Some(Verdict::Keep(keep)) = why.verdict {
                json.reason = Some(keep_reason(keep, why.excluded_by).0);
            }
            let selected = selector_options(why.selected_by, false);
            json.selected_by = Some(
                if selected.is_empty() && why.verdict == Some(Verdict::Upgrade) {
                    vec!["--all"]
                } else {
                    selected
                },
            );
            json.excluded_by = Some(selector_options(why.excluded_by, true));
        }
        _ => {}
    }
    serde_json::to_string(&json).expect("plain data serialises")
}

/// Turns the programs' boot-time stamps (`bpf_ktime_get_boot_ns`) into wall
/// clock time, from one reading of both clocks.
pub struct Clock {
    wall_minus_boot: std::time::Duration,
}

impl Clock {
    pub fn now() -> Clock {
        let boot = boot_time();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            wall_minus_boot: wall.saturating_sub(boot),
        }
    }

    /// The wall time of `boot_ns`; for an event not stamped (0, see
    /// `flag::STAMP`), now: it is read within one read interval.
    pub fn wall(&self, boot_ns: u64) -> std::time::SystemTime {
        if boot_ns == 0 {
            return std::time::SystemTime::now();
        }
        std::time::UNIX_EPOCH + self.wall_minus_boot + std::time::Duration::from_nanos(boot_ns)
    }
}

/// CLOCK_BOOTTIME, the clock of `bpf_ktime_get_boot_ns`.
fn boot_time() -> std::time::Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) };
    std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A stamped event's time comes from its boot-time stamp; an unstamped
    /// one (0: nobody asked for times) is given the time it is read at.
    #[test]
    fn events_without_a_stamp_take_the_time_they_are_read_at() {
        let clock = Clock::now();
        let before = std::time::SystemTime::now();
        let read = clock.wall(0);
        assert!(read >= before && read <= std::time::SystemTime::now());
        let boot = boot_time();
        let stamped = clock.wall(boot.as_nanos() as u64 - 5_000_000_000);
        let ago = before.duration_since(stamped).expect("in the past");
        let (low, high) = (
            std::time::Duration::from_millis(4900),
            std::time::Duration::from_millis(5100),
        );
        assert!(ago > low && ago < high, "{ago:?}");
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
            why: kind | joins << 8,
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
