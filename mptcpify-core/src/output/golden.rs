//! Golden test of the events' two renderings: every kind of record the
//! programs send (and some they should not), written as text and as JSON,
//! compared byte for byte with `golden_events.txt`. Written before events
//! became a type, so that the move kept the output; an intended change is
//! made with `MPTCPIFY_BLESS=1 cargo test golden` and shows in the diff.

use std::time::{Duration, UNIX_EPOCH};

use mptcpify_common::event::{accepted, closed, origin, outcome, Event, Explanation, Record};
use mptcpify_common::maps::kind;
use mptcpify_common::{Keep, Verdict};

use crate::output::render;

const GOLDEN: &str = include_str!("golden_events.txt");

fn comm(name: &[u8]) -> [u8; 16] {
    let mut comm = [0u8; 16];
    comm[..name.len()].copy_from_slice(name);
    comm
}

/// Every case: its name and its record.
fn cases() -> Vec<(String, Record)> {
    let base = Event {
        pid: 4242,
        tid: 4243,
        family: libc::AF_INET as u32,
        comm: comm(b"iperf3"),
        ..Event::default()
    };
    let v6 = Event {
        family: libc::AF_INET6 as u32,
        ..base
    };
    let mut cases: Vec<(String, Record)> = Vec::new();
    let mut add = |name: String, event: Event| cases.push((name, event.into()));
    for (name, code) in [
        ("upgraded", outcome::UPGRADED),
        ("kept_sandboxed", outcome::KEPT_SANDBOXED),
        ("would_upgrade", outcome::WOULD_UPGRADE),
        ("kept_filtered", outcome::KEPT_FILTERED),
        ("established", outcome::ESTABLISHED),
    ] {
        add(
            format!("{name} ipv4"),
            Event {
                outcome: code,
                ..base
            },
        );
        add(
            format!("{name} ipv6"),
            Event {
                outcome: code,
                ..v6
            },
        );
    }
    for (call, code) in [
        ("set", outcome::REFUSED_SETSOCKOPT),
        ("get", outcome::REFUSED_GETSOCKOPT),
    ] {
        for (level, option, errno) in [
            (libc::SOL_TCP, libc::TCP_ULP, libc::ENOPROTOOPT),
            (libc::SOL_TCP, libc::TCP_MAXSEG, libc::ENOPROTOOPT),
            (libc::SOL_IP, libc::IP_TTL, libc::EOPNOTSUPP),
            (libc::SOL_IPV6, libc::IPV6_TCLASS, libc::EOPNOTSUPP),
            (libc::SOL_SOCKET, libc::SO_ZEROCOPY, libc::EOPNOTSUPP),
            (libc::SOL_TCP, 9999, libc::ENOPROTOOPT),
            (277, 1, libc::EINVAL),
        ] {
            add(
                format!("refused {call} level={level} option={option} errno={errno}"),
                Event {
                    outcome: code,
                    family: 0,
                    level: level as u32,
                    option: option as u32,
                    errno: errno as u32,
                    ..base
                },
            );
        }
    }
    for (name, kinds) in [
        ("none", 0),
        ("all", 0xf),
        ("comm+cgroup", kind::COMM | kind::CGROUP),
    ] {
        for verdict in mptcpify_common::decide::VERDICTS {
            for (excluded_name, excluded) in [("none", 0), ("netns+pid", kind::NETNS | kind::PID)] {
                add(
                    format!("explain {verdict:?} selected={name} excluded={excluded_name}"),
                    Event {
                        outcome: outcome::VERDICT,
                        why: Explanation::pack(verdict, kinds, excluded),
                        ..base
                    },
                );
            }
        }
    }
    add(
        "explain unknown verdict".into(),
        Event {
            outcome: outcome::VERDICT,
            why: 0xee | kind::COMM << 8,
            ..v6
        },
    );
    let _ = Keep::Excluded;
    let _ = Verdict::Upgrade;
    for (name, what) in [
        ("mptcp", closed::MPTCP),
        ("fallback", closed::FALLBACK),
        ("listener", closed::LISTENER),
        ("unconnected", closed::UNCONNECTED),
        ("unknown", 9),
    ] {
        for joins in [0, 1, 2] {
            add(
                format!("closed {name} joins={joins}"),
                Event {
                    outcome: outcome::CLOSED,
                    why: closed::pack(what, origin::CREATED, joins),
                    ..base
                },
            );
        }
    }
    for joins in [0, 1, 5] {
        add(
            format!("subflow up {joins}"),
            Event {
                outcome: outcome::SUBFLOW_UP,
                why: joins,
                ..base
            },
        );
        add(
            format!("subflow down {joins}"),
            Event {
                outcome: outcome::SUBFLOW_DOWN,
                why: joins,
                ..v6
            },
        );
    }
    add(
        "dropped".into(),
        Event {
            outcome: outcome::MONITOR_DROPPED,
            why: 17,
            pid: 0,
            tid: 0,
            comm: [0; 16],
            ..base
        },
    );
    add(
        "a name of 15 bytes".into(),
        Event {
            comm: comm(b"abcdefghijklmno"),
            ..base
        },
    );
    add(
        "a name to escape".into(),
        Event {
            comm: comm(b"a\"b\\c\x01d \xff"),
            ..base
        },
    );
    add(
        "unknown outcome".into(),
        Event {
            outcome: 99,
            ..base
        },
    );
    add(
        "closed fell back later, the reason unknown to this version".into(),
        Event {
            outcome: outcome::CLOSED,
            why: closed::pack(closed::FELL_BACK_LATER, origin::CREATED, 1),
            option: 1000,
            ..base
        },
    );
    add(
        "closed fell back later, the kernel does not say why".into(),
        Event {
            outcome: outcome::CLOSED,
            why: closed::pack(closed::FELL_BACK_LATER, origin::ACCEPTED, 0),
            ..base
        },
    );
    add(
        "fallback, a reason unknown to this version".into(),
        Event {
            outcome: outcome::FALLBACK,
            why: 999,
            ..base
        },
    );
    add(
        "closed accepted mptcp joins=2".into(),
        Event {
            outcome: outcome::CLOSED,
            why: closed::pack(closed::MPTCP, origin::ACCEPTED, 2),
            comm: comm(b"nginx"),
            ..base
        },
    );
    for (name, why, event, local, remote) in [
        (
            "accepted mptcp ipv4",
            accepted::MPTCP,
            base,
            "10.0.0.1:80",
            "10.0.1.2:41000",
        ),
        (
            "accepted tcp ipv4",
            accepted::TCP,
            base,
            "10.0.0.1:80",
            "10.0.1.3:41001",
        ),
        (
            "accepted mptcp ipv6",
            accepted::MPTCP,
            v6,
            "[2001:db8::1]:443",
            "[2001:db8::2]:50000",
        ),
        (
            "accepted tcp, an ipv4 client of an ipv6 listener",
            accepted::TCP,
            v6,
            "[::]:443",
            "[::ffff:192.0.2.7]:50001",
        ),
    ] {
        cases.push((
            name.into(),
            Record {
                event: Event {
                    outcome: outcome::ACCEPTED,
                    why,
                    comm: comm(b"nginx"),
                    ..event
                },
                ends: crate::output::report::ends(local.parse().unwrap(), remote.parse().unwrap()),
            },
        ));
    }
    cases
}

/// Each case as the golden file holds it: its name, its text line, its
/// JSON alone, and its JSON as a monitor writes it (with the instance).
fn rendered() -> String {
    let time = UNIX_EPOCH + Duration::from_micros(1_765_000_000_123_456);
    let mut out = String::new();
    for (name, event) in cases() {
        out += &format!("# {name}\n");
        out += &format!("text {}\n", render::line(&event));
        out += &format!("json {}\n", render::json(&event, time));
        out += &format!("mon  {}\n", render::json_of(&event, time, Some(31)));
    }
    out
}

#[test]
fn every_event_renders_as_the_golden_file_says() {
    let now = rendered();
    if std::env::var_os("MPTCPIFY_BLESS").is_some() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/output/golden_events.txt");
        std::fs::write(&path, &now).expect("writing the golden file");
        return;
    }
    for (line, (want, got)) in GOLDEN.lines().zip(now.lines()).enumerate() {
        assert_eq!(got, want, "golden_events.txt line {}", line + 1);
    }
    assert_eq!(
        GOLDEN.lines().count(),
        now.lines().count(),
        "cases added or lost"
    );
}
