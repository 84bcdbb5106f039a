//! `--metrics`: what an instance counts, as Prometheus scrapes it. Pure: the
//! instance reads the kernel's counters at each scrape (`mptcpify`'s
//! `output::metrics`) and this writes them in the OpenMetrics text format
//! (`# HELP`, `# TYPE`, then the samples), which Prometheus reads.
//!
//! Every value is a counter the kernel keeps (the programs' per-CPU
//! counters, the kernel's per-program recursion misses), read at the
//! scrape: exact even when events are dropped. Labels take values from
//! fixed lists (reasons, roles, kernel functions): never a pid or an
//! address, so a scrape's size does not grow with the traffic.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mptcpify_common::maps::Counter;

use super::tallies::{FallbackTally, RefusedTally, SelectorTally};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as Total;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The one path served.
pub const PATH: &str = "/metrics";

/// What one scrape reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The programs' counters, summed over CPUs.
    pub counters: Vec<(Counter, u64)>,
    /// `socket()` calls the kernel made without the upgrader.
    pub skipped_calls: Option<u64>,
    /// Per kernel function an outcome program follows, its calls the
    /// kernel made without it.
    pub missed_calls: Vec<(String, u64)>,
    /// The running kernel's release.
    pub kernel: String,
    /// The policy in force, as `status` and the "attached" line say it.
    pub policy: String,
    /// What the sockets of each include selector did.
    pub selectors: Vec<SelectorTally>,
    /// Followed connections that fell back, by when and why.
    pub fallbacks: Vec<FallbackTally>,
    /// Refused socket options, by option.
    pub refused_options: Vec<RefusedTally>,
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A counter family with one sample per `(labels, counter)`.
fn family(samples: &[(&[(&str, &str)], u64)]) -> Family<Labels, Total> {
    let family = Family::<Labels, Total>::default();
    for (pairs, value) in samples {
        family.get_or_create(&labels(pairs)).inc_by(*value);
    }
    family
}

/// The scrape's text.
pub fn render(snapshot: &Snapshot) -> String {
    let get = |wanted: Counter| {
        snapshot
            .counters
            .iter()
            .find(|(c, _)| *c == wanted)
            .map_or(0, |(_, v)| *v)
    };
    let total = |value: u64| {
        let counter = Total::<u64>::default();
        counter.inc_by(value);
        counter
    };
    // Names written whole: the info metric is `mptcpify_info` (the format
    // appends `_info`, as it appends `_total` to counters).
    let mut registry = Registry::default();
    registry.register(
        "mptcpify",
        "The instance: kernel release, mptcpify version and the policy in force",
        Info::new(labels(&[
            ("kernel", &snapshot.kernel),
            ("version", env!("CARGO_PKG_VERSION")),
            ("policy", &snapshot.policy),
        ])),
    );
    registry.register(
        "mptcpify_upgraded",
        "TCP socket() calls made MPTCP",
        total(get(Counter::Upgraded)),
    );
    registry.register(
        "mptcpify_kept_tcp",
        "TCP socket() calls kept TCP, by reason",
        family(&[
            (
                &[("reason", "mptcp_disabled")],
                get(Counter::KeptMptcpDisabled),
            ),
            (&[("reason", "excluded")], get(Counter::KeptExcluded)),
            (&[("reason", "not_selected")], get(Counter::KeptNotSelected)),
            (&[("reason", "sandboxed")], get(Counter::KeptSandboxed)),
            (&[("reason", "sock_filtered")], get(Counter::KeptFiltered)),
        ]),
    );
    registry.register(
        "mptcpify_accepted",
        "Connections upgraded listeners accepted, by client: mptcp (MP_CAPABLE) or tcp",
        family(&[
            (&[("outcome", "mptcp")], get(Counter::AcceptedMptcp)),
            (&[("outcome", "tcp")], get(Counter::AcceptedTcp)),
        ]),
    );
    registry.register(
        "mptcpify_closed",
        "Sockets closed, by role (created: upgraded socket(); accepted: an MPTCP connection an \
         upgraded listener accepted) and what they did",
        family(&[
            (
                &[("role", "created"), ("outcome", "mptcp")],
                get(Counter::ClosedMptcp),
            ),
            (
                &[("role", "created"), ("outcome", "fallback")],
                get(Counter::ClosedFallback),
            ),
            (
                &[("role", "created"), ("outcome", "listener")],
                get(Counter::ClosedListener),
            ),
            (
                &[("role", "created"), ("outcome", "unconnected")],
                get(Counter::ClosedUnconnected),
            ),
            (
                &[("role", "created"), ("outcome", "fell_back_later")],
                get(Counter::ClosedFellBackLater),
            ),
            (
                &[("role", "accepted"), ("outcome", "mptcp")],
                get(Counter::ClosedAccepted),
            ),
            (
                &[("role", "accepted"), ("outcome", "fell_back_later")],
                get(Counter::ClosedAcceptedFellBackLater),
            ),
        ]),
    );
    registry.register(
        "mptcpify_extra_subflows",
        "Extra subflows (MP_JOIN) of the MPTCP connections closed, by role",
        family(&[
            (&[("role", "created")], get(Counter::ExtraSubflows)),
            (&[("role", "accepted")], get(Counter::ExtraSubflowsAccepted)),
        ]),
    );
    let fallbacks: Vec<(Vec<(&str, &str)>, u64)> = snapshot
        .fallbacks
        .iter()
        .map(|f| {
            (
                vec![("when", f.when), ("reason", f.reason.as_str())],
                f.connections,
            )
        })
        .collect();
    registry.register(
        "mptcpify_fallbacks",
        "Followed connections that ran as TCP, counted at close: never MPTCP (when=at_connect: \
         the peer did not answer MP_CAPABLE), or after MPTCP was established; reason: the \
         kernel's, named as /proc/net/netstat names its counter (unknown before Linux 6.17)",
        family(&as_slices(&fallbacks)),
    );
    let refused: Vec<(Vec<(&str, &str)>, u64)> = snapshot
        .refused_options
        .iter()
        .map(|r| (vec![("option", r.option.as_str())], r.calls))
        .collect();
    registry.register(
        "mptcpify_refused_options",
        "Socket option calls MPTCP refused on MPTCP sockets, by option",
        family(&as_slices(&refused)),
    );
    register_selectors(&mut registry, &snapshot.selectors);
    registry.register(
        "mptcpify_events_dropped",
        "Events not sent because the event buffers were full (the counters still count them)",
        total(get(Counter::DroppedEvents)),
    );
    registry.register(
        "mptcpify_skipped_calls",
        "socket() calls the kernel ran without the upgrader (it was running on that CPU in a \
         preempted task): they kept their protocol",
        total(snapshot.skipped_calls.unwrap_or(0)),
    );
    let missed: Vec<(Vec<(&str, &str)>, u64)> = snapshot
        .missed_calls
        .iter()
        .map(|(function, n)| (vec![("function", function.as_str())], *n))
        .collect();
    registry.register(
        "mptcpify_missed_calls",
        "Calls of the kernel functions the outcome programs follow that ran without them: what \
         they did is not counted",
        family(&as_slices(&missed)),
    );
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String does not fail");
    text
}

/// Owned label lists as the slices [`family`] takes.
fn as_slices<'a>(
    samples: &'a [(Vec<(&'a str, &'a str)>, u64)],
) -> Vec<(&'a [(&'a str, &'a str)], u64)> {
    samples.iter().map(|(l, n)| (l.as_slice(), *n)).collect()
}

/// The `mptcpify_selector_*` families: per include selector of the policy
/// (its `selector` label, as the operator gave it), what its sockets did.
fn register_selectors(registry: &mut Registry, selectors: &[SelectorTally]) {
    type Pick = fn(&SelectorTally) -> Vec<(&'static str, u64)>;
    let families: [(&str, &str, Pick); 6] = [
        (
            "mptcpify_selector_upgraded",
            "Upgraded sockets created, by selector",
            |t| vec![("", t.upgraded)],
        ),
        (
            "mptcpify_selector_accepted",
            "Connections the selector's upgraded listeners accepted, by client",
            |t| vec![("mptcp", t.accepted_mptcp), ("tcp", t.accepted_tcp)],
        ),
        (
            "mptcpify_selector_closed_mptcp",
            "The selector's upgraded sockets closed after using MPTCP",
            |t| vec![("", t.closed_mptcp)],
        ),
        (
            "mptcpify_selector_fallbacks",
            "The selector's connections that ran as TCP, counted at close, by when",
            |t| {
                vec![
                    ("at_connect", t.fell_back),
                    ("after_established", t.fell_back_later),
                ]
            },
        ),
        (
            "mptcpify_selector_extra_subflows",
            "Extra subflows of the selector's closed MPTCP connections",
            |t| vec![("", t.extra_subflows)],
        ),
        (
            "mptcpify_selector_refused_options",
            "Socket option calls MPTCP refused on the selector's sockets",
            |t| vec![("", t.refused_options)],
        ),
    ];
    for (name, help, pick) in families {
        let label = match name {
            "mptcpify_selector_accepted" => "outcome",
            "mptcpify_selector_fallbacks" => "when",
            _ => "",
        };
        let mut samples = Vec::new();
        for tally in selectors {
            for (value, n) in pick(tally) {
                let mut pairs = vec![("selector", tally.selector.as_str())];
                if !label.is_empty() {
                    pairs.push((label, value));
                }
                samples.push((pairs, n));
            }
        }
        registry.register(name, help, family(&as_slices(&samples)));
    }
}

/// `--metrics`'s value: `PORT` or `:PORT` (loopback, 127.0.0.1), or
/// `ADDRESS:PORT` (`[ADDRESS]:PORT` for IPv6; `0.0.0.0:PORT` for every
/// interface).
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let hint = "give a port (9464, listening on 127.0.0.1), or an address and a port \
                (0.0.0.0:9464, [::1]:9464)";
    let port_only = text.strip_prefix(':').unwrap_or(text);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    if text.parse::<IpAddr>().is_ok() {
        return Err(format!("{text:?} has no port: {hint}"));
    }
    Err(format!("{text:?} is not a port or ADDRESS:PORT: {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_default_to_loopback_and_say_what_is_wrong() {
        assert_eq!(
            listen_address("9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            listen_address(":9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            listen_address("0.0.0.0:80").unwrap(),
            "0.0.0.0:80".parse().unwrap()
        );
        assert_eq!(
            listen_address("[::1]:9464").unwrap(),
            "[::1]:9464".parse().unwrap()
        );
        assert!(listen_address("127.0.0.1")
            .unwrap_err()
            .contains("has no port"));
        assert!(listen_address("::1").unwrap_err().contains("has no port"));
        for bad in ["", "localhost:9464", "1.2.3:80", "65536", "127.0.0.1:x"] {
            assert!(
                listen_address(bad).unwrap_err().contains("is not a port"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_scrape_has_help_type_and_every_family_with_exact_values() {
        let snapshot = Snapshot {
            counters: vec![
                (Counter::Upgraded, 7),
                (Counter::AcceptedMptcp, 75),
                (Counter::AcceptedTcp, 25),
                (Counter::ClosedAccepted, 70),
                (Counter::ClosedFallback, 2),
                (Counter::KeptExcluded, 3),
            ],
            skipped_calls: Some(1),
            missed_calls: vec![("mptcp_close".into(), 4)],
            kernel: "6.12.88".into(),
            policy: "processes matching any of: comm nginx".into(),
            selectors: vec![SelectorTally {
                selector: "unit nginx.service".into(),
                upgraded: 2,
                accepted_mptcp: 75,
                accepted_tcp: 25,
                fell_back_later: 1,
                ..SelectorTally::default()
            }],
            fallbacks: vec![FallbackTally {
                when: "at_connect",
                reason: "MPCapableFallbackSYNACK".into(),
                connections: 2,
            }],
            refused_options: vec![RefusedTally {
                level: "SOL_TCP".into(),
                option: "TCP_ULP".into(),
                calls: 3,
            }],
        };
        let text = render(&snapshot);
        for line in [
            "# HELP mptcpify_upgraded TCP socket() calls made MPTCP.",
            "# TYPE mptcpify_upgraded counter",
            "mptcpify_upgraded_total 7",
            "mptcpify_accepted_total{outcome=\"mptcp\"} 75",
            "mptcpify_accepted_total{outcome=\"tcp\"} 25",
            "mptcpify_closed_total{role=\"accepted\",outcome=\"mptcp\"} 70",
            "mptcpify_closed_total{role=\"created\",outcome=\"fallback\"} 2",
            "mptcpify_kept_tcp_total{reason=\"excluded\"} 3",
            "mptcpify_kept_tcp_total{reason=\"sandboxed\"} 0",
            "mptcpify_fallbacks_total{when=\"at_connect\",reason=\"MPCapableFallbackSYNACK\"} 2",
            "mptcpify_refused_options_total{option=\"TCP_ULP\"} 3",
            "mptcpify_selector_upgraded_total{selector=\"unit nginx.service\"} 2",
            "mptcpify_selector_accepted_total{selector=\"unit nginx.service\",outcome=\"mptcp\"} 75",
            "mptcpify_selector_fallbacks_total{selector=\"unit nginx.service\",when=\"after_established\"} 1",
            "mptcpify_events_dropped_total 0",
            "mptcpify_skipped_calls_total 1",
            "mptcpify_missed_calls_total{function=\"mptcp_close\"} 4",
            "mptcpify_info{kernel=\"6.12.88\",version=\"0.1.0\",policy=\"processes matching any \
             of: comm nginx\"} 1",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
        // Every family has its HELP and TYPE lines.
        let families = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!((families, helps), (17, 17), "{text}");
    }
}
