//! A record the programs send, decoded once into what it says
//! ([`Report`]). The record itself ([`Event`], shared with the programs) is
//! plain numbers, as the ring buffer carries them; everything that writes
//! or counts an event matches on this type instead, so that the compiler
//! checks each case.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mptcpify_common::consts::AF_INET6;
use mptcpify_common::event::{accepted, closed, origin, outcome, Explanation, Record};
#[cfg(test)]
use mptcpify_common::event::{Ends, Event};

/// Who a socket event is about: the calling thread, or for a connection's
/// later life, the socket's creator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub pid: u32,
    pub tid: u32,
    /// The thread's name as the kernel keeps it (up to 15 bytes), decoded
    /// lossily: it is any bytes a process chose.
    pub comm: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// Why a selected socket stayed TCP, as an event says (the rest of the
/// reasons are `--explain`'s, [`Explanation`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// Landlock's TCP rules would not hold for MPTCP.
    Sandboxed,
    /// Another tool's `cgroup/sock_create` program applies.
    SockFiltered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Setsockopt,
    Getsockopt,
}

/// What an upgraded socket did, told when it was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    Mptcp {
        extra_subflows: u32,
    },
    /// Never MPTCP: `reason` the kernel's fallback MIB where it said.
    Fallback {
        reason: Option<u32>,
    },
    /// MPTCP, then TCP: `reason` the kernel's fallback MIB where it said.
    FellBackLater {
        extra_subflows: u32,
        reason: Option<u32>,
    },
    Listener,
    Unconnected,
}

/// Where a closed socket came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An upgraded `socket()`.
    Created,
    /// Accepted by an upgraded listener.
    Accepted,
}

/// What kind of client an upgraded listener accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// It did MP_CAPABLE: an MPTCP connection.
    Mptcp,
    /// A plain TCP client.
    Tcp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subflow {
    Up,
    Down,
}

/// One event, as the operator reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A TCP `socket()` was made MPTCP.
    Upgraded { who: Who, family: Family },
    /// `mptcpify audit`: this TCP socket would have been upgraded.
    WouldUpgrade { who: Who, family: Family },
    /// A selected socket stayed TCP.
    KeptTcp {
        who: Who,
        family: Family,
        reason: Kept,
    },
    /// MPTCP refused a socket option: it does not implement it.
    RefusedOption {
        who: Who,
        call: Call,
        level: u32,
        option: u32,
        errno: u32,
    },
    /// `mptcpify audit`: a selected process set an option on a TCP socket.
    TcpOption { who: Who, level: u32, option: u32 },
    /// `--explain`: the verdict on a TCP `socket()`.
    Explain {
        who: Who,
        family: Family,
        why: Explanation,
    },
    /// An upgraded socket, or a connection an upgraded listener accepted,
    /// was closed.
    Closed {
        who: Who,
        family: Family,
        origin: Origin,
        outcome: Closed,
    },
    /// A followed MPTCP socket fell back to TCP; `reason`: the kernel's
    /// fallback MIB ([`crate::output::fallback`]).
    Fallback {
        who: Who,
        family: Family,
        reason: u32,
    },
    /// An upgraded listener accepted a connection; `who` accepted it.
    Accepted {
        who: Who,
        family: Family,
        outcome: Accepted,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// Monitors only: an upgraded socket's MPTCP connection is established.
    Established { who: Who, family: Family },
    /// Monitors only: a subflow joined (MP_JOIN) or closed.
    Subflow {
        who: Who,
        family: Family,
        state: Subflow,
        extra_subflows: u32,
    },
    /// Monitors only: the instance dropped this many events for a monitor
    /// that fell behind.
    Dropped { who: Who, count: u32 },
    /// A record of another mptcpify version (an outcome this one does not
    /// know).
    Unknown { who: Who, outcome: u32 },
}

impl Report {
    /// Whom the event is about.
    pub fn who(&self) -> &Who {
        match self {
            Report::Upgraded { who, .. }
            | Report::WouldUpgrade { who, .. }
            | Report::KeptTcp { who, .. }
            | Report::RefusedOption { who, .. }
            | Report::TcpOption { who, .. }
            | Report::Explain { who, .. }
            | Report::Closed { who, .. }
            | Report::Fallback { who, .. }
            | Report::Accepted { who, .. }
            | Report::Established { who, .. }
            | Report::Subflow { who, .. }
            | Report::Dropped { who, .. }
            | Report::Unknown { who, .. } => who,
        }
    }

    /// What `record` says.
    pub fn decode(record: &Record) -> Report {
        let event = &record.event;
        let who = Who {
            pid: event.pid,
            tid: event.tid,
            comm: String::from_utf8_lossy(event.comm()).into_owned(),
        };
        let family = if event.family as i32 == AF_INET6 {
            Family::Ipv6
        } else {
            Family::Ipv4
        };
        let option = |call| Report::RefusedOption {
            who: who.clone(),
            call,
            level: event.level,
            option: event.option,
            errno: event.errno,
        };
        match event.outcome {
            outcome::UPGRADED => Report::Upgraded { who, family },
            outcome::KEPT_SANDBOXED => Report::KeptTcp {
                who,
                family,
                reason: Kept::Sandboxed,
            },
            outcome::KEPT_FILTERED => Report::KeptTcp {
                who,
                family,
                reason: Kept::SockFiltered,
            },
            outcome::REFUSED_SETSOCKOPT => option(Call::Setsockopt),
            outcome::REFUSED_GETSOCKOPT => option(Call::Getsockopt),
            outcome::WOULD_UPGRADE => Report::WouldUpgrade { who, family },
            outcome::TCP_OPTION => Report::TcpOption {
                who,
                level: event.level,
                option: event.option,
            },
            outcome::VERDICT => Report::Explain {
                who,
                family,
                why: event.explanation(),
            },
            outcome::CLOSED => {
                let (kind, from, extra_subflows) = closed::unpack(event.why);
                // The kernel's fallback MIB plus one, where it said.
                let reason = event.option.checked_sub(1);
                let outcome = match kind {
                    closed::MPTCP => Closed::Mptcp { extra_subflows },
                    closed::FELL_BACK_LATER => Closed::FellBackLater {
                        extra_subflows,
                        reason,
                    },
                    closed::FALLBACK => Closed::Fallback { reason },
                    closed::LISTENER => Closed::Listener,
                    // `closed::classify` gives no other value.
                    _ => Closed::Unconnected,
                };
                Report::Closed {
                    who,
                    family,
                    origin: if from == origin::ACCEPTED {
                        Origin::Accepted
                    } else {
                        Origin::Created
                    },
                    outcome,
                }
            }
            outcome::FALLBACK => Report::Fallback {
                who,
                family,
                reason: event.why,
            },
            outcome::ACCEPTED => Report::Accepted {
                who,
                family,
                outcome: if event.why == accepted::TCP {
                    Accepted::Tcp
                } else {
                    Accepted::Mptcp
                },
                local: address(family, &record.ends.local, record.ends.local_port),
                remote: address(family, &record.ends.remote, record.ends.remote_port),
            },
            outcome::ESTABLISHED => Report::Established { who, family },
            outcome::SUBFLOW_UP | outcome::SUBFLOW_DOWN => Report::Subflow {
                who,
                family,
                state: if event.outcome == outcome::SUBFLOW_UP {
                    Subflow::Up
                } else {
                    Subflow::Down
                },
                extra_subflows: event.why,
            },
            outcome::MONITOR_DROPPED => Report::Dropped {
                who,
                count: event.why,
            },
            other => Report::Unknown {
                who,
                outcome: other,
            },
        }
    }

    /// Whether an instance writes this event itself; the others it only
    /// serves to monitors. `quiet` (`-q`): only what needs the operator's
    /// attention (refused options, `--explain`).
    pub fn written_by_instance(&self, quiet: bool) -> bool {
        match self {
            Report::RefusedOption { .. } | Report::Explain { .. } => true,
            Report::Established { .. } | Report::Subflow { .. } | Report::Dropped { .. } => false,
            Report::Upgraded { .. }
            | Report::WouldUpgrade { .. }
            | Report::KeptTcp { .. }
            | Report::TcpOption { .. }
            | Report::Closed { .. }
            | Report::Accepted { .. }
            | Report::Fallback { .. }
            | Report::Unknown { .. } => !quiet,
        }
    }
}

/// An end of a connection as [`Ends`] holds it (an IPv4 address in the
/// first 4 bytes).
fn address(family: Family, bytes: &[u8; 16], port: u16) -> SocketAddr {
    let ip = match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        Family::Ipv6 => {
            let v6 = Ipv6Addr::from(*bytes);
            // An IPv4 client of an IPv6 listener: the address it has.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
    };
    SocketAddr::new(ip, port)
}

/// The ends `local` and `remote` as the programs send them (the tests'
/// way to make an accepted record; the inverse of [`address`]).
#[cfg(test)]
pub(crate) fn ends(local: SocketAddr, remote: SocketAddr) -> Ends {
    let bytes = |a: &SocketAddr| match a.ip() {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    };
    Ends {
        local: bytes(&local),
        remote: bytes(&remote),
        local_port: local.port(),
        remote_port: remote.port(),
        _pad: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_the_programs_send_is_known() {
        for code in 0..=outcome::LAST {
            let report = Report::decode(
                &Event {
                    outcome: code,
                    ..Event::default()
                }
                .into(),
            );
            assert!(
                !matches!(report, Report::Unknown { .. }),
                "outcome {code} is not decoded"
            );
        }
        let unknown = Report::decode(
            &Event {
                outcome: outcome::LAST + 1,
                ..Event::default()
            }
            .into(),
        );
        assert!(matches!(unknown, Report::Unknown { outcome: 15, .. }));
    }

    #[test]
    fn an_instance_writes_what_monitors_do_not_get_alone() {
        let report = |code| {
            Report::decode(
                &Event {
                    outcome: code,
                    ..Event::default()
                }
                .into(),
            )
        };
        for quiet in [false, true] {
            for live in [
                outcome::ESTABLISHED,
                outcome::SUBFLOW_UP,
                outcome::SUBFLOW_DOWN,
                outcome::MONITOR_DROPPED,
            ] {
                assert!(!report(live).written_by_instance(quiet));
            }
            assert!(report(outcome::REFUSED_SETSOCKOPT).written_by_instance(quiet));
            assert!(report(outcome::VERDICT).written_by_instance(quiet));
            assert_eq!(report(outcome::UPGRADED).written_by_instance(quiet), !quiet);
            assert_eq!(report(outcome::CLOSED).written_by_instance(quiet), !quiet);
            assert_eq!(report(outcome::ACCEPTED).written_by_instance(quiet), !quiet);
        }
    }

    #[test]
    fn accepted_connections_carry_their_ends_and_closes_their_origin() {
        let local: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        let remote: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let record = Record {
            event: Event {
                outcome: outcome::ACCEPTED,
                why: accepted::TCP,
                ..Event::default()
            },
            ends: ends(local, remote),
        };
        assert!(matches!(
            Report::decode(&record),
            Report::Accepted { outcome: Accepted::Tcp, local: l, remote: r, .. }
                if l == local && r == remote
        ));
        // An IPv4 client of an IPv6 listener is shown as IPv4.
        let mapped: SocketAddr = "[::ffff:10.0.0.2]:40000".parse().unwrap();
        let v6 = Record {
            event: Event {
                outcome: outcome::ACCEPTED,
                family: AF_INET6 as u32,
                ..Event::default()
            },
            ends: ends("[2001:db8::1]:443".parse().unwrap(), mapped),
        };
        let Report::Accepted {
            remote,
            local,
            outcome,
            ..
        } = Report::decode(&v6)
        else {
            panic!("not accepted");
        };
        assert_eq!((remote, outcome), (remote_v4(), Accepted::Mptcp));
        assert_eq!(local, "[2001:db8::1]:443".parse().unwrap());
        let closed = Event {
            outcome: outcome::CLOSED,
            why: closed::pack(closed::MPTCP, origin::ACCEPTED, 2),
            ..Event::default()
        };
        assert!(matches!(
            Report::decode(&closed.into()),
            Report::Closed {
                origin: Origin::Accepted,
                outcome: Closed::Mptcp { extra_subflows: 2 },
                ..
            }
        ));
    }

    fn remote_v4() -> SocketAddr {
        "10.0.0.2:40000".parse().unwrap()
    }
}
