//! The JSON interface: every object `--json` (and `mptcpify monitor
//! --json`) writes, one per line, as one type. README's "JSON output"
//! documents it; a test checks each variant's fields against README, both
//! ways. The tag is `event`; the field order is the order written.

use serde::{Deserialize, Serialize};

/// One line of `--json` output.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JsonEvent {
    /// The program is attached and checked; `pid` is mptcpify's.
    Attached {
        time: String,
        pid: u32,
        kernel: String,
        policy: String,
    },
    /// `--config` was read again (SIGHUP): the policy now in force.
    Reloaded {
        time: String,
        pid: u32,
        kernel: String,
        policy: String,
    },
    Upgraded {
        #[serde(flatten)]
        socket: Socket,
        family: String,
        #[serde(flatten)]
        from: Source,
    },
    /// `mptcpify audit`.
    WouldUpgrade {
        #[serde(flatten)]
        socket: Socket,
        family: String,
        #[serde(flatten)]
        from: Source,
    },
    KeptTcp {
        #[serde(flatten)]
        socket: Socket,
        family: String,
        /// `sandboxed` or `sock_filtered`.
        reason: String,
        #[serde(flatten)]
        from: Source,
    },
    Closed {
        #[serde(flatten)]
        socket: Socket,
        family: String,
        /// `created` (an upgraded `socket()`; who made it) or `accepted`
        /// (a connection an upgraded listener accepted; who accepted it).
        role: String,
        /// `mptcp`, `fallback`, `fell_back_later`, `listener` or
        /// `unconnected`.
        outcome: String,
        extra_subflows: u32,
        /// With a fallback, why, where the kernel said: its counter's name
        /// in `/proc/net/netstat` (`DssFallback`, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(flatten)]
        from: Source,
    },
    /// A followed MPTCP socket fell back to TCP, where the kernel says why.
    Fallback {
        #[serde(flatten)]
        socket: Socket,
        family: String,
        /// The kernel's counter of the reason, as `/proc/net/netstat` names it.
        reason: String,
        #[serde(flatten)]
        from: Source,
    },
    /// An upgraded listener accepted a connection.
    Accepted {
        #[serde(flatten)]
        socket: Socket,
        family: String,
        local_address: String,
        local_port: u16,
        remote_address: String,
        remote_port: u16,
        /// `mptcp` (the client did MP_CAPABLE) or `tcp`.
        outcome: String,
        #[serde(flatten)]
        from: Source,
    },
    Explain {
        #[serde(flatten)]
        socket: Socket,
        family: String,
        /// `upgraded`, `kept_tcp` (or `unknown`: another version's record).
        verdict: String,
        /// With `kept_tcp`: why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        selected_by: Vec<String>,
        excluded_by: Vec<String>,
        #[serde(flatten)]
        from: Source,
    },
    RefusedOption {
        #[serde(flatten)]
        socket: Socket,
        /// `setsockopt` or `getsockopt`.
        call: String,
        level: String,
        option: String,
        errno: String,
        /// The selector that keeps the process on TCP.
        fix: String,
        #[serde(flatten)]
        from: Source,
    },
    /// `mptcpify monitor` only.
    Established {
        #[serde(flatten)]
        socket: Socket,
        family: String,
        /// `mptcp`.
        outcome: String,
        #[serde(flatten)]
        from: Source,
    },
    /// `mptcpify monitor` only.
    Subflow {
        #[serde(flatten)]
        socket: Socket,
        family: String,
        extra_subflows: u32,
        /// `up` or `down`.
        state: String,
        #[serde(flatten)]
        from: Source,
    },
    /// `mptcpify monitor` only: events lost for a monitor that fell behind.
    Dropped {
        #[serde(flatten)]
        socket: Socket,
        count: u32,
        #[serde(flatten)]
        from: Source,
    },
    /// A record of another mptcpify version.
    Unknown {
        #[serde(flatten)]
        socket: Socket,
        /// Its outcome code.
        code: u32,
        #[serde(flatten)]
        from: Source,
    },
    /// `mptcpify audit`: a selected process set an option on a TCP socket.
    TcpOption {
        #[serde(flatten)]
        socket: Socket,
        #[serde(flatten)]
        option: AuditedOption,
    },
    /// `mptcpify audit`, at its end: the verdict per process name.
    AuditVerdict {
        time: String,
        comm: String,
        pids: Vec<u32>,
        /// `safe` or `would_break`.
        verdict: String,
        would_upgrade: u64,
        options: Vec<AuditedOption>,
    },
    /// An endpoint mptcpify added or removed: the upgrader's `--paths auto`
    /// as it follows addresses, and `mptcpify monitor` from the record.
    Path {
        time: String,
        /// `added` or `removed`.
        action: String,
        id: u8,
        address: String,
        interface: String,
        /// `signal`, `subflow`, ... (`ip mptcp endpoint`'s names).
        flags: Vec<String>,
        /// `pid N` (an upgrader), `pin NAME` (a pinned one), `paths auto`.
        added_by: String,
    },
    /// mptcpify detached.
    Detached {
        time: String,
        pid: u32,
        tcp_sockets: u64,
        counters: serde_json::Map<String, serde_json::Value>,
        /// `socket()` calls the kernel made without the upgrader (absent
        /// where the kernel does not say).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skipped_calls: Option<u64>,
        /// Per kernel function an outcome program follows, the calls the
        /// kernel made without it, for the same reason: what those calls
        /// did is missing from the events and the counters.
        #[serde(default)]
        missed_calls: std::collections::BTreeMap<String, u64>,
        /// What the sockets of each include selector did, as `status`'s
        /// `selectors` (absent when nothing is told).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        selectors: Vec<serde_json::Value>,
        /// Followed connections that fell back, by `when` and `reason`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fallbacks: Vec<serde_json::Value>,
        /// Refused socket options, by `level` and `option`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refused_options: Vec<serde_json::Value>,
    },
}

/// The fields every socket event starts with.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub time: String,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// With pod selectors: the Kubernetes pod (`namespace/name`) the
    /// process is in, when it is one of the selected pods and still runs
    /// when the event is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// With `pod`: the container's name in its pod, when the runtime told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

impl JsonEvent {
    /// Names the pod (and container) of a socket event's process; other
    /// events are left as they are.
    pub fn set_pod(&mut self, pod: String, container: Option<String>) {
        if let Some(socket) = self.socket_mut() {
            socket.pod = Some(pod);
            socket.container = container;
        }
    }

    fn socket_mut(&mut self) -> Option<&mut Socket> {
        match self {
            JsonEvent::Upgraded { socket, .. }
            | JsonEvent::WouldUpgrade { socket, .. }
            | JsonEvent::KeptTcp { socket, .. }
            | JsonEvent::Closed { socket, .. }
            | JsonEvent::Fallback { socket, .. }
            | JsonEvent::Accepted { socket, .. }
            | JsonEvent::Explain { socket, .. }
            | JsonEvent::RefusedOption { socket, .. } => Some(socket),
            _ => None,
        }
    }
}

/// The field every socket event ends with, in `mptcpify monitor`'s output.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    /// The program id of the instance that saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<u32>,
}

/// An option `mptcpify audit` saw set, with MPTCP's answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AuditedOption {
    pub level: String,
    pub option: String,
    /// `refused` or `accepted`.
    pub mptcp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
}

impl JsonEvent {
    /// The line.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }
}

/// RFC 3339 with microseconds, UTC: every `time`.
pub fn time(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One object of every variant, as mptcpify writes them.
    fn samples() -> Vec<JsonEvent> {
        let socket = || Socket {
            time: "2026-12-07T05:00:00.000001Z".into(),
            pid: 7,
            tid: 8,
            comm: "curl".into(),
            pod: None,
            container: None,
        };
        let from = Source::default;
        let option = || AuditedOption {
            level: "SOL_IP".into(),
            option: "IP_TTL".into(),
            mptcp: "refused".into(),
            errno: Some("EOPNOTSUPP".into()),
        };
        let family = || "ipv6".to_string();
        vec![
            JsonEvent::Attached {
                time: socket().time,
                pid: 1,
                kernel: "6.12.88".into(),
                policy: "processes matching any of: comm curl".into(),
            },
            JsonEvent::Reloaded {
                time: socket().time,
                pid: 1,
                kernel: "6.12.88".into(),
                policy: "processes matching any of: comm wget".into(),
            },
            JsonEvent::Upgraded {
                socket: socket(),
                family: family(),
                from: from(),
            },
            JsonEvent::WouldUpgrade {
                socket: socket(),
                family: family(),
                from: from(),
            },
            JsonEvent::KeptTcp {
                socket: socket(),
                family: family(),
                reason: "sandboxed".into(),
                from: from(),
            },
            JsonEvent::Closed {
                socket: socket(),
                family: family(),
                role: "created".into(),
                outcome: "fell_back_later".into(),
                extra_subflows: 2,
                reason: Some("DssFallback".into()),
                from: from(),
            },
            JsonEvent::Fallback {
                socket: socket(),
                family: family(),
                reason: "DssFallback".into(),
                from: from(),
            },
            JsonEvent::Accepted {
                socket: socket(),
                family: family(),
                local_address: "10.0.0.1".into(),
                local_port: 80,
                remote_address: "10.0.1.2".into(),
                remote_port: 41000,
                outcome: "tcp".into(),
                from: from(),
            },
            JsonEvent::Explain {
                socket: socket(),
                family: family(),
                verdict: "kept_tcp".into(),
                reason: Some("excluded".into()),
                selected_by: vec!["--comm".into()],
                excluded_by: vec!["--exclude-cgroup".into()],
                from: from(),
            },
            JsonEvent::RefusedOption {
                socket: socket(),
                call: "setsockopt".into(),
                level: "SOL_TCP".into(),
                option: "TCP_ULP".into(),
                errno: "ENOPROTOOPT".into(),
                fix: "--exclude-comm curl".into(),
                from: from(),
            },
            JsonEvent::Established {
                socket: socket(),
                family: family(),
                outcome: "mptcp".into(),
                from: from(),
            },
            JsonEvent::Subflow {
                socket: socket(),
                family: family(),
                extra_subflows: 1,
                state: "up".into(),
                from: from(),
            },
            JsonEvent::Dropped {
                socket: socket(),
                count: 3,
                from: from(),
            },
            JsonEvent::Unknown {
                socket: socket(),
                code: 99,
                from: from(),
            },
            JsonEvent::TcpOption {
                socket: socket(),
                option: option(),
            },
            JsonEvent::AuditVerdict {
                time: socket().time,
                comm: "curl".into(),
                pids: vec![7, 9],
                verdict: "would_break".into(),
                would_upgrade: 4,
                options: vec![option()],
            },
            JsonEvent::Path {
                time: socket().time,
                action: "added".into(),
                id: 3,
                address: "192.0.2.2".into(),
                interface: "eth1".into(),
                flags: vec!["signal".into(), "subflow".into()],
                added_by: "pid 1".into(),
            },
            JsonEvent::Detached {
                time: socket().time,
                pid: 1,
                tcp_sockets: 5,
                counters: serde_json::Map::from_iter([("upgraded".to_string(), 4.into())]),
                skipped_calls: Some(0),
                missed_calls: [("mptcp_close".to_string(), 0)].into(),
                selectors: vec![serde_json::json!({"selector": "comm curl", "upgraded": 4})],
                fallbacks: vec![serde_json::json!({
                    "when": "at_connect", "reason": "unknown", "connections": 1
                })],
                refused_options: vec![serde_json::json!({
                    "level": "SOL_TCP", "option": "TCP_ULP", "calls": 1
                })],
            },
        ]
    }

    /// README's "JSON output" table: per `event`, its "fields" column.
    fn documented() -> Vec<(String, Vec<String>)> {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("| `event` | when | fields | what they hold |")
            .nth(1)
            .expect("README has the JSON table");
        let ticked = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(String::from)
                .collect()
        };
        table
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.split(" | ").collect();
                (ticked(cells[0]).remove(0), ticked(cells[2]))
            })
            .collect()
    }

    /// An object's top-level keys, in the order written (serde_json's own
    /// map sorts them).
    struct Keys(Vec<String>);

    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visitor)
        }
    }

    /// An object's `event` and its keys in the order written, without those
    /// every socket event starts with.
    fn fields(line: &str) -> (String, Vec<String>) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let Keys(keys) = serde_json::from_str(line).unwrap();
        let socket = ["time", "pid", "tid", "comm", "pod", "container"];
        let is_socket = socket[..4].iter().all(|k| keys.iter().any(|key| key == k));
        let keys = keys
            .into_iter()
            .filter(|k| k != "event" && !(is_socket && socket.contains(&k.as_str())))
            .collect();
        (value["event"].as_str().unwrap().to_string(), keys)
    }

    #[test]
    fn every_variant_is_documented_with_its_fields_and_every_row_is_a_variant() {
        let documented = documented();
        let samples = samples();
        assert_eq!(
            documented.len(),
            samples.len(),
            "rows vs variants: {documented:?}"
        );
        for sample in &samples {
            let (event, keys) = fields(&sample.to_line());
            let row = documented.iter().find(|(name, _)| *name == event);
            let (_, want) = row.unwrap_or_else(|| panic!("README has no row for `{event}`"));
            assert_eq!(&keys, want, "the fields of `{event}`, as written vs README");
        }
    }

    #[test]
    fn a_socket_events_pod_follows_its_process_and_reads_back() {
        let mut event = samples()
            .into_iter()
            .find(|e| matches!(e, JsonEvent::Upgraded { .. }))
            .unwrap();
        event.set_pod("default/web".into(), Some("app".into()));
        let line = event.to_line();
        let Keys(keys) = serde_json::from_str(&line).unwrap();
        assert_eq!(
            keys[..7],
            ["event", "time", "pid", "tid", "comm", "pod", "container"],
            "{line}"
        );
        assert_eq!(serde_json::from_str::<JsonEvent>(&line).unwrap(), event);
        // Events about no socket have no pod.
        let mut attached = samples().remove(0);
        let before = attached.to_line();
        attached.set_pod("default/web".into(), None);
        assert_eq!(attached.to_line(), before);
    }

    #[test]
    fn every_variant_reads_back_as_written_and_monitors_add_the_instance() {
        for sample in samples() {
            let line = sample.to_line();
            let read: JsonEvent = serde_json::from_str(&line).unwrap();
            assert_eq!(read, sample, "{line}");
        }
        let seen = JsonEvent::Upgraded {
            socket: Socket {
                time: "t".into(),
                pid: 1,
                tid: 1,
                comm: "c".into(),
                pod: None,
                container: None,
            },
            family: "ipv4".into(),
            from: Source { instance: Some(31) },
        };
        let line = seen.to_line();
        assert!(
            line.ends_with(r#""family":"ipv4","instance":31}"#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<JsonEvent>(&line).unwrap(), seen);
    }
}
