//! A record the programs send, decoded once into what it says
//! ([`Report`]). The record itself ([`Event`], shared with the programs) is
//! plain numbers, as the ring buffer carries them; everything that writes
//! or counts an event matches on this type instead, so that the compiler
//! checks each case.

use mptcpify_common::consts::AF_INET6;
use mptcpify_common::event::{closed, outcome, Event, Explanation};

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
    Mptcp { extra_subflows: u32 },
    Fallback,
    Listener,
    Unconnected,
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
    /// An upgraded socket was closed.
    Closed {
        who: Who,
        family: Family,
        outcome: Closed,
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
    /// What `event` says.
    pub fn decode(event: &Event) -> Report {
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
                // Bits 0-7: what it did; 8-31: the extra subflows it joined.
                let extra_subflows = event.why >> 8;
                let outcome = match event.why & 0xff {
                    closed::MPTCP => Closed::Mptcp { extra_subflows },
                    closed::FALLBACK => Closed::Fallback,
                    closed::LISTENER => Closed::Listener,
                    // `closed::classify` gives no other value.
                    _ => Closed::Unconnected,
                };
                Report::Closed {
                    who,
                    family,
                    outcome,
                }
            }
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
            | Report::Unknown { .. } => !quiet,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_the_programs_send_is_known() {
        for code in 0..=outcome::MONITOR_DROPPED {
            let report = Report::decode(&Event {
                outcome: code,
                ..Event::default()
            });
            assert!(
                !matches!(report, Report::Unknown { .. }),
                "outcome {code} is not decoded"
            );
        }
        let unknown = Report::decode(&Event {
            outcome: outcome::MONITOR_DROPPED + 1,
            ..Event::default()
        });
        assert!(matches!(unknown, Report::Unknown { outcome: 13, .. }));
    }

    #[test]
    fn an_instance_writes_what_monitors_do_not_get_alone() {
        let report = |code| {
            Report::decode(&Event {
                outcome: code,
                ..Event::default()
            })
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
        }
    }
}
