//! The one place that decides whether a `socket()` call becomes MPTCP.
//!
//! The BPF program gathers the inputs and calls [`decide`]; the host unit
//! tests below run it over every case. The task is only looked at (comm,
//! cgroup, namespace: helper calls and map lookups) once the call is known to
//! ask for TCP, because most sockets in a system are not TCP and should cost a
//! few instructions.

use crate::consts::*;

/// The arguments of `update_socket_protocol(family, type, protocol)`, which
/// the kernel calls from `socket()` with what the application passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketCall {
    pub family: i32,
    /// The raw type, flags included.
    pub sock_type: i32,
    pub protocol: i32,
}

impl SocketCall {
    /// An IPv4/IPv6 stream socket asking for TCP, explicitly or by default.
    /// Flags such as `SOCK_CLOEXEC` (which Rust, Go and Python always add) do
    /// not change the socket type, so they are masked off.
    #[inline(always)]
    pub fn is_tcp(&self) -> bool {
        (self.family == AF_INET || self.family == AF_INET6)
            && self.sock_type & SOCK_TYPE_MASK == SOCK_STREAM
            && (self.protocol == IPPROTO_IP || self.protocol == IPPROTO_TCP)
    }
}

/// What the running kernel can do, probed once by the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Support {
    /// MPTCP sockets can be created for IPv6 (`CONFIG_MPTCP_IPV6`); without
    /// it an upgraded `socket(AF_INET6, ...)` would fail.
    pub ipv6: bool,
}

/// What the policy says about the calling task; see [`crate::maps::Config`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskMatch {
    /// Some include selector names this task (or there is none: system-wide).
    pub included: bool,
    /// Some exclude selector names this task.
    pub excluded: bool,
    /// MPTCP can be created in the task's network namespace
    /// (`net.mptcp.enabled` is 1 there). When false, upgrading would make
    /// `socket()` fail with `ENOPROTOOPT`.
    pub mptcp_enabled: bool,
    /// The task runs under a Landlock domain on a kernel whose Landlock does
    /// not apply its TCP rules to MPTCP sockets (landlock-lsm/linux#54):
    /// upgrading would let it reach what its own sandbox forbids.
    pub sandboxed: bool,
    /// The task's cgroup has an effective `cgroup/sock_create` BPF program
    /// (another tool's): it sees an upgraded socket as protocol 262, so a
    /// filter on `IPPROTO_TCP` would let it through, and whatever it sets
    /// on the socket (mark, device) lands on the MPTCP socket, not on the
    /// TCP subflows that carry the traffic.
    pub filtered: bool,
}

/// Why a socket keeps its protocol. The order of the checks in [`decide`] is
/// the order of this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Not an IPv4/IPv6 TCP stream socket.
    NotTcp,
    /// The kernel cannot create MPTCP sockets of this family.
    Unsupported,
    /// An exclude selector names the task.
    Excluded,
    /// Include selectors exist and none names the task.
    NotSelected,
    /// MPTCP is disabled in the task's network namespace. Checked after the
    /// selection: a socket the policy does not select pays nothing for it.
    MptcpDisabled,
    /// The task is sandboxed by Landlock, whose TCP rules MPTCP would bypass.
    Sandboxed,
    /// A `cgroup/sock_create` program applies to the task's sockets.
    Filtered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Return `IPPROTO_MPTCP` from the hook.
    Upgrade,
    /// Return 0: the kernel keeps the application's protocol, and other
    /// `fmod_ret` programs on the hook still run.
    Keep(Keep),
}

impl Verdict {
    /// The value the `fmod_ret` program returns for this verdict.
    #[inline(always)]
    pub fn hook_return(self) -> i32 {
        match self {
            Verdict::Upgrade => IPPROTO_MPTCP,
            Verdict::Keep(_) => 0,
        }
    }
}

/// Every verdict, in the order of [`Verdict::code`].
pub const VERDICTS: [Verdict; 8] = [
    Verdict::Upgrade,
    Verdict::Keep(Keep::NotTcp),
    Verdict::Keep(Keep::Unsupported),
    Verdict::Keep(Keep::Excluded),
    Verdict::Keep(Keep::NotSelected),
    Verdict::Keep(Keep::MptcpDisabled),
    Verdict::Keep(Keep::Sandboxed),
    Verdict::Keep(Keep::Filtered),
];

impl Verdict {
    /// A small number for the verdict, as events carry it.
    #[inline(always)]
    pub fn code(self) -> u32 {
        match self {
            Verdict::Upgrade => 0,
            Verdict::Keep(Keep::NotTcp) => 1,
            Verdict::Keep(Keep::Unsupported) => 2,
            Verdict::Keep(Keep::Excluded) => 3,
            Verdict::Keep(Keep::NotSelected) => 4,
            Verdict::Keep(Keep::MptcpDisabled) => 5,
            Verdict::Keep(Keep::Sandboxed) => 6,
            Verdict::Keep(Keep::Filtered) => 7,
        }
    }

    pub fn from_code(code: u32) -> Option<Verdict> {
        VERDICTS.get(code as usize).copied()
    }
}

/// Everything beyond the call's arguments that the decision needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    pub support: Support,
    pub task: TaskMatch,
}

/// Decides one `socket()` call. The facts are a closure, gathered only for
/// TCP calls: most calls in a system are not TCP and must not pay for a map
/// lookup or a helper call.
#[inline(always)]
pub fn decide(call: &SocketCall, facts: impl FnOnce() -> Facts) -> Verdict {
    if !call.is_tcp() {
        return Verdict::Keep(Keep::NotTcp);
    }
    let Facts { support, task } = facts();
    if call.family == AF_INET6 && !support.ipv6 {
        return Verdict::Keep(Keep::Unsupported);
    }
    if task.excluded {
        Verdict::Keep(Keep::Excluded)
    } else if !task.included {
        Verdict::Keep(Keep::NotSelected)
    } else if !task.mptcp_enabled {
        Verdict::Keep(Keep::MptcpDisabled)
    } else if task.sandboxed {
        Verdict::Keep(Keep::Sandboxed)
    } else if task.filtered {
        Verdict::Keep(Keep::Filtered)
    } else {
        Verdict::Upgrade
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILIES: [i32; 4] = [AF_UNIX, AF_INET, AF_INET6, 0];
    const TYPES: [i32; 5] = [SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET, 0];
    const FLAGS: [i32; 4] = [0, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_CLOEXEC | SOCK_NONBLOCK];
    const PROTOCOLS: [i32; 5] = [IPPROTO_IP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_MPTCP, 255];
    const FULL: Support = Support { ipv6: true };

    fn all_task_matches() -> impl Iterator<Item = TaskMatch> {
        (0..32u8).map(|bits| TaskMatch {
            included: bits & 1 != 0,
            excluded: bits & 2 != 0,
            mptcp_enabled: bits & 4 != 0,
            sandboxed: bits & 8 != 0,
            filtered: bits & 16 != 0,
        })
    }

    fn call(family: i32, sock_type: i32, protocol: i32) -> SocketCall {
        SocketCall {
            family,
            sock_type,
            protocol,
        }
    }

    /// Every family × type × flags × protocol × task × IPv6 support:
    /// upgraded exactly when the call is IPv4 (or IPv6 where the kernel
    /// supports it) + stream + (0 or TCP) and the task is included, not
    /// excluded, not sandboxed, not under a sock_create program, in a
    /// namespace with MPTCP on.
    #[test]
    fn exhaustive() {
        let mut upgrades = 0;
        for family in FAMILIES {
            for ty in TYPES {
                for flags in FLAGS {
                    for protocol in PROTOCOLS {
                        for task in all_task_matches() {
                            for ipv6 in [true, false] {
                                let c = call(family, ty | flags, protocol);
                                let tcp = (family == AF_INET || (family == AF_INET6 && ipv6))
                                    && ty == SOCK_STREAM
                                    && (protocol == 0 || protocol == IPPROTO_TCP);
                                let expect = tcp
                                    && task.included
                                    && !task.excluded
                                    && !task.sandboxed
                                    && !task.filtered
                                    && task.mptcp_enabled;
                                let verdict = decide(&c, || Facts {
                                    support: Support { ipv6 },
                                    task,
                                });
                                assert_eq!(
                                    verdict == Verdict::Upgrade,
                                    expect,
                                    "{c:?} {task:?} ipv6={ipv6}"
                                );
                                let ret = if expect { IPPROTO_MPTCP } else { 0 };
                                assert_eq!(verdict.hook_return(), ret);
                                upgrades += expect as u32;
                            }
                        }
                    }
                }
            }
        }
        // (IPv4 with and without IPv6 support, IPv6 with it) × 4 flag sets
        // × 2 protocols × 1 task shape.
        assert_eq!(upgrades, 3 * 4 * 2);
    }

    #[test]
    fn nothing_else_is_consulted_for_non_tcp() {
        let never = || -> Facts { unreachable!() };
        let udp = call(AF_INET, SOCK_DGRAM, 0);
        assert_eq!(decide(&udp, never), Verdict::Keep(Keep::NotTcp));
        let already = call(AF_INET6, SOCK_STREAM, IPPROTO_MPTCP);
        assert_eq!(decide(&already, never), Verdict::Keep(Keep::NotTcp));
        let v6 = call(AF_INET6, SOCK_STREAM, 0);
        let task = TaskMatch {
            included: true,
            excluded: false,
            mptcp_enabled: true,
            sandboxed: false,
            filtered: false,
        };
        let no_v6 = Facts {
            support: Support { ipv6: false },
            task,
        };
        assert_eq!(decide(&v6, || no_v6), Verdict::Keep(Keep::Unsupported));
    }

    #[test]
    fn verdict_codes_round_trip() {
        for (i, verdict) in VERDICTS.iter().enumerate() {
            assert_eq!(verdict.code(), i as u32);
            assert_eq!(Verdict::from_code(i as u32), Some(*verdict));
        }
        assert_eq!(Verdict::from_code(VERDICTS.len() as u32), None);
    }

    #[test]
    fn reasons_in_priority_order() {
        let tcp = call(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        let verdict = |task| {
            decide(&tcp, || Facts {
                support: FULL,
                task,
            })
        };
        let all_bad = TaskMatch {
            included: false,
            excluded: true,
            mptcp_enabled: false,
            sandboxed: true,
            filtered: true,
        };
        assert_eq!(verdict(all_bad), Verdict::Keep(Keep::Excluded));
        let not_excluded = TaskMatch {
            excluded: false,
            ..all_bad
        };
        assert_eq!(verdict(not_excluded), Verdict::Keep(Keep::NotSelected));
        let included = TaskMatch {
            included: true,
            ..not_excluded
        };
        assert_eq!(verdict(included), Verdict::Keep(Keep::MptcpDisabled));
        let enabled = TaskMatch {
            mptcp_enabled: true,
            ..included
        };
        assert_eq!(verdict(enabled), Verdict::Keep(Keep::Sandboxed));
        let not_sandboxed = TaskMatch {
            sandboxed: false,
            ..enabled
        };
        assert_eq!(verdict(not_sandboxed), Verdict::Keep(Keep::Filtered));
        let unfiltered = TaskMatch {
            filtered: false,
            ..not_sandboxed
        };
        assert_eq!(verdict(unfiltered), Verdict::Upgrade);
    }
}
