//! What the programs report, as it happens: a line (or, with `--json`, a
//! JSON object) per upgraded socket, per socket kept TCP because its process
//! is sandboxed or under another tool's `cgroup/sock_create` program, and
//! per socket option MPTCP refused; read from the
//! programs' ring buffer. The JSON forms are an interface: README, "JSON
//! output", documents each field.

use aya::maps::{MapData, RingBuf};
use mptcpify_common::{
    consts::AF_INET6,
    event::{outcome, Event},
};
use serde::Serialize;

use crate::sockopt_names;

/// How events are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Text lines on stdout (the foreground mode).
    Stdout,
    /// Text lines on stderr, prefixed `mptcpify: ` (`run`: stdout is CMD's).
    Stderr,
    /// One JSON object per line on stdout.
    Json,
}

/// How often the ring is read. The programs submit without waking the
/// reader (a wake-up per socket cost the socket() caller more than the
/// program itself), so a line appears at most this late.
pub const READ_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

pub struct Events {
    ring: RingBuf<MapData>,
    output: Output,
    clock: Clock,
}

impl Events {
    pub fn new(ring: RingBuf<MapData>, output: Output) -> anyhow::Result<Self> {
        Ok(Self {
            ring,
            output,
            clock: Clock::now(),
        })
    }

    /// Reads and writes events every [`READ_EVERY`]; returns only on error.
    pub async fn print_forever(&mut self) -> anyhow::Result<()> {
        let mut timer = tokio::time::interval(READ_EVERY);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            while let Some(item) = self.ring.next() {
                if let Some(event) = Event::from_bytes(&item) {
                    let time = self.clock.wall(event.boot_ns);
                    match self.output {
                        Output::Stdout => println!("{}", line(&event)),
                        Output::Stderr => eprintln!("mptcpify: {}", line(&event)),
                        Output::Json => println!("{}", json(&event, time)),
                    }
                }
            }
        }
    }
}

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
        _ => format!("upgraded {who} family={}", family(event)),
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
    reason: Option<&'a str>,
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
}

pub fn json(event: &Event, time: std::time::SystemTime) -> String {
    let comm = String::from_utf8_lossy(event.comm()).into_owned();
    let mut json = JsonEvent {
        event: "upgraded",
        time: humantime::format_rfc3339_micros(time).to_string(),
        pid: event.pid,
        tid: event.tid,
        comm: comm.clone(),
        family: Some(family(event)),
        reason: None,
        call: None,
        level: None,
        option: None,
        errno: None,
        fix: None,
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

    pub fn wall(&self, boot_ns: u64) -> std::time::SystemTime {
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
}
