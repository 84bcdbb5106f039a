//! The record sent to userspace through the `EVENTS` ring buffer: an
//! upgraded socket, a socket kept TCP because its task is sandboxed or
//! under another tool's `cgroup/sock_create` program, or a
//! socket option that MPTCP refused on an MPTCP socket, an upgraded socket
//! closed (what it did), and, while `mptcpify monitor` listens, the life of
//! an upgraded connection (established, subflows up and down).

use crate::consts::COMM_LEN;

/// Values of [`Event::outcome`].
pub mod outcome {
    pub const UPGRADED: u32 = 0;
    /// Would have been upgraded, kept TCP: the task is Landlock-sandboxed.
    pub const KEPT_SANDBOXED: u32 = 1;
    /// `setsockopt` on an MPTCP socket failed with EOPNOTSUPP or ENOPROTOOPT:
    /// MPTCP does not implement that option (see [`super::Event::level`]).
    pub const REFUSED_SETSOCKOPT: u32 = 2;
    /// The same for `getsockopt` (e.g. `TCP_MAXSEG`).
    pub const REFUSED_GETSOCKOPT: u32 = 3;
    /// `mptcpify audit`: this TCP socket would have been upgraded (it was not).
    pub const WOULD_UPGRADE: u32 = 4;
    /// `mptcpify audit`: a selected process set this option on a TCP socket
    /// (first time per process and option; see [`super::Event::level`]).
    pub const TCP_OPTION: u32 = 5;
    /// Would have been upgraded, kept TCP: a `cgroup/sock_create` program
    /// (another tool's) applies to the task's sockets.
    pub const KEPT_FILTERED: u32 = 6;
    /// `--explain`: a TCP `socket()` of a process the operator asked about,
    /// with its verdict and the selector kinds that matched (see
    /// [`super::Event::explanation`]).
    pub const VERDICT: u32 = 7;
    /// An upgraded socket, or a connection an upgraded listener accepted,
    /// was closed: what it did, where it came from and the extra subflows
    /// it joined ([`super::closed::pack`]). Who: the process that created
    /// it, or that accepted it.
    pub const CLOSED: u32 = 8;
    /// An upgraded socket's MPTCP connection is established (the peer
    /// answered MP_CAPABLE). Sent only while a monitor listens
    /// ([`crate::maps::flag::LIVE`]), like the two below.
    pub const ESTABLISHED: u32 = 9;
    /// An extra subflow of an upgraded socket completed MP_JOIN;
    /// [`super::Event::why`]: the extra subflows joined so far.
    pub const SUBFLOW_UP: u32 = 10;
    /// A subflow of an upgraded socket was closed while the connection
    /// lives on (the kernel's `MPTCP_EVENT_SUB_CLOSED`).
    pub const SUBFLOW_DOWN: u32 = 11;
    /// Not from the programs: the instance dropped [`super::Event::why`]
    /// events for a monitor that did not read them fast enough.
    pub const MONITOR_DROPPED: u32 = 12;
    /// An upgraded listener accepted a connection: [`super::Event::why`]
    /// is [`super::accepted`], and the record carries its ends
    /// ([`super::Record`]). Who: the accepting thread.
    pub const ACCEPTED: u32 = 13;
    /// A followed MPTCP socket (upgraded or accepted) fell back to TCP, on
    /// a kernel that says why (its `__mptcp_try_fallback(msk, fb_mib)`,
    /// 6.17+): [`super::Event::why`] is that `fb_mib`, the kernel's MIB
    /// counter of the reason (`enum linux_mptcp_mib_field`, whose values
    /// differ between kernels: named from the running kernel's BTF).
    pub const FALLBACK: u32 = 14;
    /// The highest outcome this version sends.
    pub const LAST: u32 = FALLBACK;

    /// Whether an outcome is one of the connection's life, sent only for
    /// monitors ([`crate::maps::flag::LIVE`]).
    pub fn is_live(outcome: u32) -> bool {
        matches!(
            outcome,
            ESTABLISHED | SUBFLOW_UP | SUBFLOW_DOWN | MONITOR_DROPPED
        )
    }
}

/// Where a socket the programs follow came from ([`crate::maps::Tag::origin`]).
pub mod origin {
    /// An upgraded `socket()`.
    pub const CREATED: u32 = 0;
    /// Accepted by an upgraded listener.
    pub const ACCEPTED: u32 = 1;
}

/// What an upgraded listener accepted ([`super::outcome::ACCEPTED`]).
pub mod accepted {
    /// The client did MP_CAPABLE: an MPTCP connection.
    pub const MPTCP: u32 = 0;
    /// A plain TCP client: the kernel hands the connection to TCP.
    pub const TCP: u32 = 1;
}

/// What an upgraded socket did, told when it is closed.
pub mod closed {
    /// The peer answered MP_CAPABLE: the connection was MPTCP.
    pub const MPTCP: u32 = 0;
    /// Connected without MPTCP: the peer (or a middlebox) does not speak it.
    pub const FALLBACK: u32 = 1;
    /// A listening socket.
    pub const LISTENER: u32 = 2;
    /// Never connected (a failed or abandoned connect, an unused socket).
    pub const UNCONNECTED: u32 = 3;
    /// MPTCP once the peer answered MP_CAPABLE, then fell back to TCP (a
    /// middlebox stripped the options, an infinite mapping).
    pub const FELL_BACK_LATER: u32 = 4;

    /// `MPTCP_FALLBACK_DONE`, the bit of `mptcp_sock.flags` set when the
    /// connection falls back (net/mptcp/protocol.h, "MPTCP socket atomic
    /// flags"): 2 since 6.9 ("mptcp: cleanup writer wake-up" dropped
    /// `MPTCP_NOSPACE`), 4 before. A `#define`, which BTF does not carry:
    /// the loader chooses by the kernel's version
    /// ([`fallback_done_bit`]; a 6.6–6.8 stable kernel that took that
    /// change as a backport would be misread).
    pub const FALLBACK_DONE_BIT: u32 = 2;
    pub const FALLBACK_DONE_BIT_BEFORE_6_9: u32 = 4;

    /// [`FALLBACK_DONE_BIT`] of kernel `major.minor`.
    pub fn fallback_done_bit(major: u32, minor: u32) -> u32 {
        if (major, minor) < (6, 9) {
            FALLBACK_DONE_BIT_BEFORE_6_9
        } else {
            FALLBACK_DONE_BIT
        }
    }

    /// [`super::Event::why`] of a [`super::outcome::CLOSED`] event: what
    /// it did (bits 0-7), its [`super::origin`] (bits 8-15) and the extra
    /// subflows it joined (bits 16-31, at most 65535).
    #[inline(always)]
    pub fn pack(kind: u32, origin: u32, joins: u32) -> u32 {
        let joins = if joins > 0xffff { 0xffff } else { joins };
        (kind & 0xff) | (origin & 0xff) << 8 | joins << 16
    }

    /// `(kind, origin, joins)` of [`pack`].
    pub fn unpack(why: u32) -> (u32, u32, u32) {
        (why & 0xff, why >> 8 & 0xff, why >> 16)
    }

    /// `TCP_LISTEN` and the states of a connection that was established
    /// (include/net/tcp_states.h).
    const LISTEN: u8 = 10;
    const CONNECTED: [u8; 6] = [1, 4, 5, 8, 9, 11];

    /// The outcome of a socket closed in `state` (its TCP state), after
    /// the peer gave `remote_key` (0: no MP_CAPABLE answer) and `bytes`
    /// moved, with `msk_flags` its `mptcp_sock.flags`, whose bit
    /// `done_bit` says it fell back ([`fallback_done_bit`]).
    #[inline(always)]
    pub fn classify(state: u8, remote_key: u64, bytes: u64, msk_flags: u64, done_bit: u32) -> u32 {
        let fell_back = msk_flags >> (done_bit & 63) & 1 != 0;
        if state == LISTEN {
            LISTENER
        } else if remote_key != 0 && fell_back {
            FELL_BACK_LATER
        } else if remote_key != 0 {
            MPTCP
        } else if bytes > 0 || CONNECTED.contains(&state) {
            FALLBACK
        } else {
            UNCONNECTED
        }
    }
}

/// The errors by which MPTCP says "not implemented for MPTCP"
/// (net/mptcp/sockopt.c: `-EOPNOTSUPP` for SOL_SOCKET/SOL_IP/SOL_IPV6
/// options it does not pass on, `-ENOPROTOOPT` for SOL_TCP ones).
pub mod refused {
    pub const EOPNOTSUPP: i32 = 95;
    pub const ENOPROTOOPT: i32 = 92;

    /// Whether a socket option call's return value is such a refusal.
    #[inline(always)]
    pub fn is_refusal(ret: i64) -> bool {
        ret == -(EOPNOTSUPP as i64) || ret == -(ENOPROTOOPT as i64)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// [`outcome`].
    pub outcome: u32,
    /// Process id (the kernel's tgid).
    pub pid: u32,
    /// Thread id (the kernel's pid).
    pub tid: u32,
    /// `AF_INET` or `AF_INET6` (upgrade outcomes; 0 for options).
    pub family: u32,
    /// Option outcomes: the option's level (`SOL_TCP`, `SOL_IP`, ...).
    pub level: u32,
    /// Option outcomes: the option (`TCP_ULP`, ...).
    pub option: u32,
    /// Option outcomes: the positive errno the call returned.
    pub errno: u32,
    /// [`outcome::VERDICT`]: the verdict's code (bits 0-7), and the
    /// [`crate::maps::kind`] bits of the include (bits 8-15) and exclude
    /// (bits 16-23) selectors that named the process. Packed into one word
    /// to keep events small (the ring's capacity is counted in events).
    pub why: u32,
    /// `bpf_ktime_get_boot_ns()`: nanoseconds since boot, suspend included;
    /// 0 when nobody reads event times ([`crate::maps::flag::STAMP`]).
    pub boot_ns: u64,
    pub comm: [u8; COMM_LEN],
}

// Eight u32, a u64 at offset 32 and the name: no padding anywhere, which
// `to_bytes` relies on.
const _: () = assert!(Event::SIZE == 8 * 4 + 8 + COMM_LEN);

/// The two ends of an accepted connection, which its
/// [`outcome::ACCEPTED`] event carries after the [`Event`] in the ring
/// ([`Record`]): addresses as the kernel keeps them (network order; an
/// IPv4 address in the first 4 bytes), ports in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ends {
    pub local: [u8; 16],
    pub remote: [u8; 16],
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad: u32,
}

/// An event as the reader hands it on (to the output, to monitors): the
/// [`Event`], and the [`Ends`] that follow it in the ring for an accepted
/// connection (zero for every other event, which the programs send
/// without them: the upgrader's slots stay 64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub event: Event,
    pub ends: Ends,
}

const _: () = assert!(Record::SIZE == Event::SIZE + 40);

impl From<Event> for Record {
    fn from(event: Event) -> Record {
        Record {
            event,
            ends: Ends::default(),
        }
    }
}

impl Record {
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// The record's bytes (how an instance hands events to monitors).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        // SAFETY: plain data without padding (the sizes are checked), so
        // every byte is initialised.
        unsafe { core::mem::transmute_copy(self) }
    }

    /// A record from a ring buffer entry or a monitor's bytes: an
    /// [`Event`] alone, or followed by its [`Ends`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let event = Event::from_bytes(bytes)?;
        let ends = match bytes.get(Event::SIZE..Self::SIZE) {
            // SAFETY: length checked; Ends is plain data valid for any bits.
            Some(rest) => unsafe { core::ptr::read_unaligned(rest.as_ptr().cast::<Ends>()) },
            None => Ends::default(),
        };
        Some(Record { event, ends })
    }
}

/// What an [`outcome::VERDICT`] event says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub verdict: Option<crate::Verdict>,
    /// [`crate::maps::kind`] bits of the include selectors that named it.
    pub selected_by: u32,
    /// The same for the exclude selectors.
    pub excluded_by: u32,
}

impl Explanation {
    #[inline(always)]
    pub fn pack(verdict: crate::Verdict, selected_by: u32, excluded_by: u32) -> u32 {
        verdict.code() | (selected_by & 0xff) << 8 | (excluded_by & 0xff) << 16
    }

    pub fn unpack(why: u32) -> Self {
        Self {
            verdict: crate::Verdict::from_code(why & 0xff),
            selected_by: why >> 8 & 0xff,
            excluded_by: why >> 16 & 0xff,
        }
    }
}

impl Event {
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// The verdict of an [`outcome::VERDICT`] event.
    pub fn explanation(&self) -> Explanation {
        Explanation::unpack(self.why)
    }

    /// The event's bytes, as the ring buffer carries them (how an instance
    /// hands events to `mptcpify monitor`).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        // SAFETY: Event is plain data without padding (checked below), so
        // every byte is initialised.
        unsafe { core::mem::transmute_copy(self) }
    }

    /// Reads an event from the bytes of a ring buffer entry.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: length checked; Event is plain data valid for any bits.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }

    /// The process name, as the kernel keeps it (up to 15 bytes).
    pub fn comm(&self) -> &[u8] {
        let end = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.comm.len());
        &self.comm[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_pack_and_unpack() {
        use crate::maps::kind;
        use crate::{Keep, Verdict};
        for verdict in crate::decide::VERDICTS {
            let why = Explanation::pack(verdict, kind::COMM | kind::CGROUP, kind::PID);
            assert_eq!(
                Explanation::unpack(why),
                Explanation {
                    verdict: Some(verdict),
                    selected_by: kind::COMM | kind::CGROUP,
                    excluded_by: kind::PID,
                }
            );
        }
        let why = Explanation::pack(Verdict::Keep(Keep::Excluded), 0, kind::NETNS);
        assert_eq!(Explanation::unpack(why).excluded_by, kind::NETNS);
    }

    #[test]
    fn events_survive_their_bytes() {
        let event = Event {
            outcome: outcome::SUBFLOW_UP,
            pid: 7,
            why: 2,
            boot_ns: u64::MAX - 1,
            comm: *b"iperf3\0\0\0\0\0\0\0\0\0\0",
            ..Event::default()
        };
        assert_eq!(Event::from_bytes(&event.to_bytes()), Some(event));
        assert_eq!(Event::from_bytes(&event.to_bytes()[1..]), None);
    }

    #[test]
    fn records_survive_their_bytes_with_or_without_ends() {
        let event = Event {
            outcome: outcome::ACCEPTED,
            pid: 9,
            ..Event::default()
        };
        let record = Record {
            event,
            ends: Ends {
                local: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                remote: [127, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                local_port: 8080,
                remote_port: 40000,
                _pad: 0,
            },
        };
        assert_eq!(Record::from_bytes(&record.to_bytes()), Some(record));
        assert_eq!(Record::from_bytes(&event.to_bytes()), Some(event.into()));
        assert_eq!(Record::from_bytes(&event.to_bytes()[1..]), None);
    }

    #[test]
    fn closed_words_pack_and_unpack() {
        use closed::*;
        for (kind, origin, joins) in [
            (MPTCP, super::origin::CREATED, 0),
            (FALLBACK, super::origin::ACCEPTED, 3),
            (LISTENER, super::origin::CREATED, 65535),
        ] {
            assert_eq!(unpack(pack(kind, origin, joins)), (kind, origin, joins));
        }
        assert_eq!(unpack(pack(MPTCP, 1, 1 << 20)), (MPTCP, 1, 65535));
    }

    #[test]
    fn closed_sockets_are_classified_by_state_key_and_data() {
        use closed::*;
        assert_eq!(fallback_done_bit(6, 8), 4);
        assert_eq!(fallback_done_bit(5, 19), 4);
        assert_eq!(fallback_done_bit(6, 9), 2);
        assert_eq!(fallback_done_bit(6, 12), 2);
        assert_eq!(fallback_done_bit(7, 3), 2);
        // Before 6.9 bit 2 is MPTCP_WORK_RTX: a retransmission, no fallback.
        assert_eq!(classify(1, 0x1234, 0, 1 << 2, 4), MPTCP);
        assert_eq!(classify(1, 0x1234, 0, 1 << 4, 4), FELL_BACK_LATER);
        let classify = |state, key, bytes, flags| classify(state, key, bytes, flags, 2);
        let done = 1u64 << FALLBACK_DONE_BIT;
        // Other flags (MPTCP_WORK_RTX, bit 1; MPTCP_WORK_CLOSE_SUBFLOW, 3)
        // say nothing of a fallback.
        let busy = 1 << 1 | 1 << 3;
        for other in [0, busy] {
            assert_eq!(classify(10, 0, 0, other), LISTENER);
            assert_eq!(classify(10, 7, 0, other | done), LISTENER);
            assert_eq!(classify(1, 0x1234, 0, other), MPTCP);
            assert_eq!(classify(7, 0x1234, 100, other), MPTCP);
            // The peer's key came, then the connection fell back.
            assert_eq!(classify(7, 0x1234, 100, other | done), FELL_BACK_LATER);
            assert_eq!(classify(1, 0x1234, 0, other | done), FELL_BACK_LATER);
            // No key: the peer never did MPTCP (the kernel sets the bit for
            // that fallback too).
            assert_eq!(classify(1, 0, 0, other | done), FALLBACK);
            assert_eq!(classify(8, 0, 0, other), FALLBACK);
            assert_eq!(classify(7, 0, 4096, other | done), FALLBACK);
            assert_eq!(classify(7, 0, 0, other), UNCONNECTED);
            assert_eq!(classify(2, 0, 0, other), UNCONNECTED);
        }
    }

    #[test]
    fn only_mptcps_not_implemented_errors_are_refusals() {
        assert!(refused::is_refusal(-95));
        assert!(refused::is_refusal(-92));
        for other in [0, -1, -13, -22, 92, 95] {
            assert!(!refused::is_refusal(other), "{other}");
        }
    }
}
