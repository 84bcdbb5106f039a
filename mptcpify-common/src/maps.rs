//! The BPF maps: their names (as the loader finds them in the object), keys
//! and values. The loader encodes the operator's policy into them once, at
//! start; the program only reads them.

use crate::consts::COMM_LEN;
use crate::decide::{Keep, Verdict};

/// `Array<Config>` with one entry: which selectors exist, and the switches.
pub const CONFIG: &str = "CONFIG";
/// `HashMap<CommKey, u8>`: comm → [`role`] bits.
pub const COMMS: &str = "COMMS";
/// `HashMap<u32, PidRule>`: process id (the kernel's tgid) → the process's
/// start time and [`role`] bits.
pub const PIDS: &str = "PIDS";
/// `HashMap<u64, u8>`: network namespace cookie → [`role`] bits. Cookies
/// (`net->net_cookie`, `SO_NETNS_COOKIE`) are never reused, unlike the
/// namespace's inode number, which the kernel recycles.
pub const NETNS: &str = "NETNS";
/// `Array<CgroupRule>`, the first [`Config::cgroup_rules`] entries used.
pub const CGROUPS: &str = "CGROUPS";
/// `HashMap<CgroupPath, u32>`: a rule's cgroup path → its index in
/// [`CGROUPS`]. When a cgroup of that path is created (a service restarts,
/// or starts after mptcpify), the program that follows `cgroup_mkdir`
/// writes the new cgroup's id into the rule, before any process can join it.
pub const CGROUP_PATHS: &str = "CGROUP_PATHS";
/// `PerCpuArray<CgroupPath>` with one entry: scratch space for a path.
pub const PATH_SCRATCH: &str = "PATH_SCRATCH";
/// `PerCpuArray<u64>` indexed by [`Counter`].
pub const COUNTERS: &str = "COUNTERS";
/// `RingBuf` of [`crate::event::Event`].
pub const EVENTS: &str = "EVENTS";
/// `Array<Staged>` (`BPF_F_MMAPABLE`): where the upgrader puts the events
/// it sends at `socket()` (upgraded, kept sandboxed or filtered, `audit`'s
/// would-upgrade, `--explain`'s verdict), [`STAGE_SLOTS`] slots per
/// possible CPU, read by the loader through its own mapping of the map.
/// Cheaper than [`EVENTS`]: `bpf_ringbuf_output` locks the ring with
/// interrupts off, copies and commits, about 750 ns per event in the lab
/// under TCG, more than the rest of the program (issue 10); a slot costs a
/// few stores (see the upgrader's `maps::stage`). The events of a connection's later
/// life (close, options, subflows) stay in [`EVENTS`]: they come after the
/// `socket()` event of the same connection, and the reader reads the ring
/// before the slots and writes the slots' events first (`event_source.rs`),
/// so they are written after it.
pub const STAGED: &str = "STAGED";
/// `Array<[u64; STAGE_POS_STRIDE]>` (`BPF_F_MMAPABLE`), one value per
/// possible CPU `c` (so the upgrader finds both words with one lookup): at
/// word `c * STAGE_POS_STRIDE + STAGE_HEAD` the number of slots of its
/// [`STAGED`] part the upgrader filled, and at `+ STAGE_TAIL` the number
/// the reader has read (written by the reader only). Each on its own cache
/// line.
pub const STAGE_POS: &str = "STAGE_POS";
pub const STAGE_POS_STRIDE: u32 = 16;
pub const STAGE_HEAD: u32 = 0;
pub const STAGE_TAIL: u32 = 8;
/// The programs' read-only global (a `u32`, a power of two): [`STAGED`]
/// slots per possible CPU, chosen by the loader ([`stage_slots`]).
pub const STAGE_SLOTS: &str = "STAGE_SLOTS";
/// The programs' read-only global (a `u32`): 1 where the loader's CPUs
/// keep stores in program order for other CPUs (x86-64, TSO), so that the
/// upgrader marks a slot whole with a plain store instead of an exchange.
pub const STAGE_ORDERED: &str = "STAGE_ORDERED";

/// Slots per CPU for `cpus` possible CPUs: about 16384 in all (the ring
/// holds 4096), at least 256 and at most 4096 per CPU; 64 bytes each.
pub fn stage_slots(cpus: u32) -> u32 {
    (16384 / cpus.max(1)).next_power_of_two().clamp(256, 4096)
}

/// A slot of [`STAGED`]: an event, and `committed`, the slot's position
/// plus one once the event is whole (stored after the event, and before
/// the head moves past it; see [`STAGE_ORDERED`]). The reader takes the
/// event at position `p` only when `committed == p + 1`; the upgrader
/// writes position `p` only when the reader has read position
/// `p - slots`, so a slot is never written while it is read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Staged {
    pub event: crate::event::Event,
    pub committed: u64,
}

/// `LruHashMap<AuditKey, u8>`: the (process, option) pairs `mptcpify audit`
/// already reported, so that each is sent once.
pub const AUDIT_SEEN: &str = "AUDIT_SEEN";
pub const MAX_AUDIT_SEEN: u32 = 4096;

/// A process and a socket option it set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditKey {
    pub tgid: u32,
    pub level: u32,
    pub option: u32,
}

/// `HashMap<CommKey, u8>`: the process names `--explain` names; for every
/// TCP `socket()` of such a process (its name or its thread's) the program
/// reports the verdict and what decided it.
pub const EXPLAIN: &str = "EXPLAIN";
pub const MAX_EXPLAIN: u32 = 16;

/// `Array<NameFilter>`: for each map of names ([`name_filter`] gives the
/// index), a superset of the names it holds, tested before the map is
/// looked up. Most `socket()` callers are named in no map; the test is a
/// few instructions where the lookup hashes the name (issue 10).
pub const NAME_FILTER: &str = "NAME_FILTER";

/// `Array<CommSlot>` (`BPF_F_MMAPABLE`), [`COMM_SLOTS_LEN`] entries: in
/// front of [`COMMS`], for each of the name filter's 256 positions
/// ([`NameFilter::index`]) the one name of COMMS there and its roles, or
/// "ask COMMS" (no name, or several). A hash lookup hashes the name and
/// compares it in the bucket, 200-360 ns per `socket()` in the lab under
/// TCG (issue 10); the slot is one array load and two compares.
///
/// The loader writes the slots through its own mapping of the map, as a
/// sequence lock: `meta` to "ask COMMS" with the next generation, then the
/// name, then `meta` with the roles, [`comm_slot::EXACT`] and the
/// generation after. The program reads `meta`, the name, `meta` again, and
/// trusts the slot only when both reads are the same exact `meta`: a slot
/// torn by a write is never trusted, and the 48-bit generation never comes
/// back. During a reload the slots that change ask COMMS until the last
/// step (`policy_maps::plan` keeps COMMS right at every step); slots that
/// stay keep names no step adds or removes. The program's loads are in
/// order only on x86-64 (TSO): elsewhere the loader leaves every slot
/// asking COMMS.
pub const COMM_SLOTS: &str = "COMM_SLOTS";
pub const COMM_SLOTS_LEN: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommSlot {
    /// [`comm_slot`] bits.
    pub meta: u64,
    /// The name as the two words [`NameFilter::words`] gives.
    pub name: [u64; 2],
}

/// Bits of [`CommSlot::meta`].
pub mod comm_slot {
    /// The name's [`super::role`] bits.
    pub const ROLES: u64 = 0xff;
    /// The slot holds the one name of COMMS at its position.
    pub const EXACT: u64 = 1 << 8;
    /// The generation, counted up by each write of `meta`.
    pub const GENERATION_SHIFT: u32 = 16;
}

impl CommSlot {
    /// What the slots should say for `names` (COMMS's entries): for each
    /// position, `Some((words, roles))` where exactly one name falls, `None`
    /// (ask COMMS) elsewhere.
    pub fn table<'a>(
        names: impl IntoIterator<Item = (&'a [u8; COMM_LEN], u8)>,
    ) -> [Option<([u64; 2], u8)>; COMM_SLOTS_LEN as usize] {
        let mut table = [None; COMM_SLOTS_LEN as usize];
        let mut count = [0u8; COMM_SLOTS_LEN as usize];
        for (name, roles) in names {
            let words = NameFilter::words(name);
            let index = NameFilter::index(words);
            count[index] = count[index].saturating_add(1);
            table[index] = (count[index] == 1).then_some((words, roles));
        }
        table
    }

    /// What a program reading `first` (`meta`), `name`, then `second`
    /// (`meta` again) learns about `words`: `Some(roles)` (0: not in
    /// COMMS) from an exact slot read whole, `None`: ask COMMS. Shared
    /// with the BPF program.
    #[inline(always)]
    pub fn answer(first: u64, name: [u64; 2], second: u64, words: [u64; 2]) -> Option<u8> {
        if first & comm_slot::EXACT == 0 || first != second {
            return None;
        }
        Some(if name == words {
            (first & comm_slot::ROLES) as u8
        } else {
            0
        })
    }
}

/// Indexes of [`NAME_FILTER`].
pub mod name_filter {
    /// The filter of [`super::COMMS`].
    pub const COMMS: u32 = 0;
    /// The filter of [`super::EXPLAIN`].
    pub const EXPLAIN: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// `HashMap<u64, Tag>`: MPTCP sockets of processes the policy upgrades
/// (their `struct sock` address) → who created them and the subflows they
/// joined, until close. Tagged when created (`mptcp_init_sock`) when the
/// upgrader noted that it upgraded this thread's `socket()` call
/// ([`UPGRADING`]): the upgraded sockets, and only they (an MPTCP socket a
/// process asks for itself is not mptcpify's to report).
pub const TAGGED: &str = "TAGGED";
pub const MAX_TAGGED: u32 = 16384;

/// `Array<u64>` of [`NOTE_SLOTS`] entries, indexed by thread id modulo its
/// size: the id of a thread whose `socket()` call the upgrader upgraded
/// ([`note`]), with the [`kind`] bits of the include selectors that named
/// it (so that the tag program finds the selector's number, see
/// [`SELECTOR_COUNTERS`]), until the
/// tag program (`mptcp_init_sock`, in the same call) takes it; 0 when
/// taken. By thread, not by CPU, so that a thread that moves to another
/// CPU in between (a sleep in the socket's allocation) still finds its note.
/// Two threads whose ids share a slot, both between the two programs at
/// once, lose one note: that socket is upgraded but not tagged.
///
/// The tag program needs no decision of its own: verifying a second copy of
/// the selection cost about 3.5 s of every start-up in the lab (TCG).
pub const UPGRADING: &str = "UPGRADING";
/// Entries of [`UPGRADING`] (a power of two).
pub const NOTE_SLOTS: u32 = 1024;

/// The [`UPGRADING`] note of thread `tid`, upgraded by include selectors
/// of the [`kind`]s `selected_by`.
#[inline(always)]
pub fn note(tid: u32, selected_by: u32) -> u64 {
    u64::from(selected_by) << 32 | u64::from(tid)
}

/// The kinds of note `note` when it is thread `tid`'s.
#[inline(always)]
pub fn noted(note: u64, tid: u32) -> Option<u32> {
    (note as u32 == tid && tid != 0).then_some((note >> 32) as u32)
}

/// An upgraded socket, from its creation to its close.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tag {
    /// Who called `socket()` (not who closes it: a forked child may).
    pub pid: u32,
    pub tid: u32,
    pub family: u32,
    /// Extra subflows that joined (MP_JOIN completed).
    pub joins: u32,
    pub comm: [u8; COMM_LEN],
    /// [`crate::event::origin`]: made by an upgraded `socket()`, or
    /// accepted by an upgraded listener (then `pid`, `tid`, `comm` are the
    /// accepting thread's).
    pub origin: u32,
    /// The kernel's fallback reason (`fb_mib`) plus one, once it fell back
    /// on a kernel that says why; 0 before, or where it does not.
    pub fallback: u32,
    /// The number of the selector that upgraded it ([`role::SELECTOR`];
    /// an accepted connection: its listener's).
    pub selector: u32,
    pub _pad: u32,
}

/// Where the programs on `mptcp_finish_join` and `mptcp_close` read an
/// MPTCP socket: its state (`sk->__sk_common.skc_state`), whether the peer
/// answered MP_CAPABLE (`mptcp_sock.remote_key`, set from the peer's key by
/// `mptcp_finish_connect`, net/mptcp/protocol.c), the data it moved
/// (`bytes_sent`, `bytes_received`), and a subflow's MPTCP socket
/// (`inet_csk(ssk)->icsk_ulp_data` is its `mptcp_subflow_context`, whose
/// `conn` is the MPTCP socket). Byte offsets from BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloseLayout {
    /// `sk->__sk_common.skc_family`.
    pub sk_family: u32,
    pub sk_state: u32,
    pub remote_key: u32,
    pub bytes_sent: u32,
    pub bytes_received: u32,
    pub icsk_ulp_data: u32,
    pub subflow_conn: u32,
    /// For the program on `mptcp_stream_accept`: `socket.sk`, the new
    /// socket's protocol (`sock.sk_protocol`: `IPPROTO_MPTCP` for an MPTCP
    /// connection, `IPPROTO_TCP` for a plain TCP client's, which MPTCP hands
    /// over to TCP, net/mptcp/protocol.c), its ends (`sock_common`:
    /// `skc_rcv_saddr`, `skc_daddr`, `skc_num` in host order, `skc_dport` in
    /// network order, `skc_v6_rcv_saddr`, `skc_v6_daddr`), and the subflows
    /// that joined before it was accepted (`mptcp_sock.pm` +
    /// `mptcp_pm_data.subflows`, `extra_subflows` from 6.18, a `u8`).
    pub socket_sk: u32,
    pub sk_protocol: u32,
    pub skc_rcv_saddr: u32,
    pub skc_daddr: u32,
    pub skc_num: u32,
    pub skc_dport: u32,
    pub skc_v6_rcv_saddr: u32,
    pub skc_v6_daddr: u32,
    pub pm_subflows: u32,
    /// `mptcp_sock.flags`: [`crate::event::closed::FALLBACK_DONE_BIT`].
    pub msk_flags: u32,
}

/// Where the fallback mode's `cgroup/sysctl` program
/// (mptcpify-ebpf/src/sysctl.rs) finds, for a write of
/// `net.mptcp.enabled`, the namespace written to and the byte written.
/// Its context is a `struct bpf_sysctl_kern` (kernel/bpf/cgroup.c,
/// `__cgroup_bpf_run_filter_sysctl`), whose `head` and `table` are the
/// sysctl's; a per-namespace sysctl's header belongs to the set
/// `net->sysctls` (net/sysctl_net.c, `register_net_sysctl_sz`), and MPTCP's
/// table points `data` at the namespace's `mptcp_pernet.mptcp_enabled`
/// (net/mptcp/ctrl.c, `mptcp_pernet_new_table`). Byte offsets from BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysctlLayout {
    /// `bpf_sysctl_kern.head` and `.table`.
    pub kern_head: u32,
    pub kern_table: u32,
    /// `ctl_table_header.set`.
    pub header_set: u32,
    /// `net.sysctls`: a namespace's sysctl set.
    pub net_sysctls: u32,
    /// `ctl_table.data`.
    pub table_data: u32,
    pub _pad: u32,
}

/// The full name `bpf_sysctl_get_name` gives MPTCP's switch.
pub const MPTCP_ENABLED_SYSCTL: &[u8; 17] = b"net/mptcp/enabled";

/// `HashMap<u64, u64>`: for each network namespace (by cookie) in which
/// `net.mptcp.enabled` was written since the fallback mode's sysctl
/// program was attached, the kernel address of its value, which the
/// upgrader then reads at every `socket()` instead of what mptcpify read
/// at start ([`role::MPTCP_CHECKED`]). Written by the sysctl program only.
pub const MPTCP_SWITCHES: &str = "MPTCP_SWITCHES";
pub const MAX_MPTCP_SWITCHES: u32 = 4096;
/// `Array<u32>`, one entry: non-zero once a write could not be recorded
/// in a full [`MPTCP_SWITCHES`]; from then on a namespace without an
/// entry keeps TCP (what mptcpify read at start may be stale).
pub const MPTCP_SWITCHES_FULL: &str = "MPTCP_SWITCHES_FULL";

/// `Array<CheckSlot>` with one entry, used only by the start-up self-check
/// program (see [`CheckSlot`]).
pub const CHECK: &str = "CHECK";

pub const MAX_COMMS: u32 = 1024;
pub const MAX_PIDS: u32 = 1024;
pub const MAX_NETNS: u32 = 256;
/// Each cgroup rule costs the program one helper call per TCP socket.
pub const MAX_CGROUP_RULES: u32 = 32;

/// Selector numbers ([`role::SELECTOR`]): 1 to 31 name an include selector
/// of the policy; 0 is every socket upgraded without a number of its own
/// (`--all`, or selectors past the 31st).
pub const MAX_SELECTORS: u32 = 32;

/// `PerCpuArray<u64>` of [`MAX_SELECTORS`] × [`SelectorCounter::COUNT`]
/// entries ([`SelectorCounter::index`]): what the sockets each selector
/// upgraded did. Counted by the outcome programs (never the upgrader, whose
/// cost every TCP `socket()` pays). The tag program finds the number of
/// the selector that upgraded a socket, on the kinds the upgrader noted
/// ([`UPGRADING`]), and the tag carries it. The upgrader does not keep the
/// number itself: one more value through its selection made the verifier
/// tell apart states it otherwise prunes, and the program failed to load
/// (E2BIG: over a million instructions processed, lab, 7.3).
/// (The kernel keeps 15 bytes of a map's name: hence not "SELECTOR_COUNTERS".)
pub const SELECTOR_COUNTERS: &str = "BY_SELECTOR";

/// `Array<SelectorName>` of [`MAX_SELECTORS`] entries: each number's
/// selector as the operator gave it, written by the loader for `status`,
/// which reads another process's instance.
pub const SELECTOR_NAMES: &str = "SELECTOR_NAMES";

/// A selector's name, NUL-padded UTF-8 (cut at 63 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectorName(pub [u8; 64]);

impl Default for SelectorName {
    fn default() -> Self {
        Self([0; 64])
    }
}

impl SelectorName {
    pub fn new(name: &str) -> Self {
        let mut out = [0u8; 64];
        let mut len = name.len().min(63);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        out[..len].copy_from_slice(&name.as_bytes()[..len]);
        Self(out)
    }

    pub fn as_str(&self) -> &str {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(64);
        core::str::from_utf8(&self.0[..end]).unwrap_or("")
    }
}

/// What [`SELECTOR_COUNTERS`] counts for each selector.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorCounter {
    /// Upgraded sockets followed (tagged at creation).
    Upgraded = 0,
    /// Connections its listeners accepted, by client.
    AcceptedMptcp = 1,
    AcceptedTcp = 2,
    /// Upgraded sockets closed after using MPTCP.
    ClosedMptcp = 3,
    /// Upgraded sockets closed after the peer did not answer MP_CAPABLE.
    FellBack = 4,
    /// Connections (made or accepted) closed after MPTCP fell back later.
    FellBackLater = 5,
    /// Extra subflows its closed connections joined (made or accepted).
    ExtraSubflows = 6,
    /// Socket options MPTCP refused on its sockets.
    RefusedOptions = 7,
}

impl SelectorCounter {
    pub const ALL: [SelectorCounter; 8] = [
        SelectorCounter::Upgraded,
        SelectorCounter::AcceptedMptcp,
        SelectorCounter::AcceptedTcp,
        SelectorCounter::ClosedMptcp,
        SelectorCounter::FellBack,
        SelectorCounter::FellBackLater,
        SelectorCounter::ExtraSubflows,
        SelectorCounter::RefusedOptions,
    ];
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// The entry of [`SELECTOR_COUNTERS`] for `selector` (bounded).
    #[inline(always)]
    pub fn index(self, selector: u32) -> u32 {
        (selector & (MAX_SELECTORS - 1)) * Self::COUNT + self as u32
    }

    /// The name in `status --json`'s `selectors` and in metric names.
    pub fn key(self) -> &'static str {
        match self {
            SelectorCounter::Upgraded => "upgraded",
            SelectorCounter::AcceptedMptcp => "accepted_mptcp",
            SelectorCounter::AcceptedTcp => "accepted_tcp",
            SelectorCounter::ClosedMptcp => "closed_mptcp",
            SelectorCounter::FellBack => "fell_back",
            SelectorCounter::FellBackLater => "fell_back_later",
            SelectorCounter::ExtraSubflows => "extra_subflows",
            SelectorCounter::RefusedOptions => "refused_options",
        }
    }
}

/// `PerCpuArray<u64>` of [`FALLBACK_SLOTS`] entries
/// ([`fallback_index`]): followed connections that fell back, counted at
/// close by when (at connect, later) and by the kernel's reason where it
/// gives one (`Tag::fallback`).
pub const FALLBACKS: &str = "FALLBACKS";
/// Reasons per `when`: 0 unknown, then the kernel's MIB number plus one
/// (MPTCP's MIB enum has about a hundred entries in 7.3, its fallback
/// reasons among the last; a larger number counts as unknown).
pub const FALLBACK_REASONS: u32 = 256;
pub const FALLBACK_SLOTS: u32 = 2 * FALLBACK_REASONS;

/// The [`FALLBACKS`] entry of a fallback: `later`, after MP_CAPABLE;
/// `reason`, `Tag::fallback`.
#[inline(always)]
pub fn fallback_index(later: bool, reason: u32) -> u32 {
    let reason = if reason < FALLBACK_REASONS { reason } else { 0 };
    (later as u32) * FALLBACK_REASONS + reason
}

/// `PerCpuArray<u64>` of [`REFUSED_SLOTS`] entries ([`refused_index`]):
/// the socket options MPTCP refused, by level and option.
pub const REFUSED: &str = "REFUSED";
/// Option numbers per level; a larger one counts in the level's last.
pub const REFUSED_OPTIONS_PER_LEVEL: u32 = 128;
/// The levels counted apart (`SOL_SOCKET`, `SOL_IP`, `SOL_TCP`,
/// `SOL_IPV6`), then any other.
pub const REFUSED_LEVELS: [u32; 4] = [1, 0, 6, 41];
pub const REFUSED_SLOTS: u32 = (REFUSED_LEVELS.len() as u32 + 1) * REFUSED_OPTIONS_PER_LEVEL;

/// The [`REFUSED`] entry of option `option` at `level`.
#[inline(always)]
pub fn refused_index(level: u32, option: u32) -> u32 {
    let row = match level {
        1 => 0,
        0 => 1,
        6 => 2,
        41 => 3,
        _ => 4,
    };
    let option = if option < REFUSED_OPTIONS_PER_LEVEL {
        option
    } else {
        REFUSED_OPTIONS_PER_LEVEL - 1
    };
    row * REFUSED_OPTIONS_PER_LEVEL + option
}

/// The level and option of [`REFUSED`] entry `index` (`None` for the
/// level "other"; an option of [`REFUSED_OPTIONS_PER_LEVEL`] `- 1` may
/// stand for larger ones).
pub fn refused_entry(index: u32) -> (Option<u32>, u32) {
    let row = (index / REFUSED_OPTIONS_PER_LEVEL) as usize;
    (
        REFUSED_LEVELS.get(row).copied(),
        index % REFUSED_OPTIONS_PER_LEVEL,
    )
}

/// Selector kinds, as bits of [`Config::include_kinds`] / [`Config::exclude_kinds`].
pub mod kind {
    pub const COMM: u32 = 1 << 0;
    pub const PID: u32 = 1 << 1;
    pub const NETNS: u32 = 1 << 2;
    pub const CGROUP: u32 = 1 << 3;
}

/// Role bits of a map entry: a name may be included, excluded, or both (then
/// the exclusion wins, as in [`crate::decide`]).
pub mod role {
    pub const INCLUDE: u8 = 1 << 0;
    pub const EXCLUDE: u8 = 1 << 1;
    /// In [`super::NETNS`] only, used when the program cannot read MPTCP's
    /// per-namespace switch ([`super::NetnsLayout::pernet_id_addr`] is 0): the
    /// loader checked that MPTCP is enabled in this namespace. Namespaces
    /// without it are treated as MPTCP-disabled.
    pub const MPTCP_CHECKED: u8 = 1 << 2;
    /// The high bits of an include entry: the number of the selector it
    /// comes from ([`super::MAX_SELECTORS`], 0: none of its own), so that
    /// what the sockets it upgrades do is counted per selector
    /// ([`super::SELECTOR_COUNTERS`]). They travel with [`INCLUDE`].
    pub const SELECTOR: u8 = 0b1111_1000;
    pub const SELECTOR_SHIFT: u32 = 3;

    /// `roles` with selector number `selector` (0 when it does not fit).
    pub const fn with_selector(roles: u8, selector: u32) -> u8 {
        let selector = if selector < super::MAX_SELECTORS {
            selector as u8
        } else {
            0
        };
        roles & !SELECTOR | selector << SELECTOR_SHIFT
    }

    /// The selector number of an entry's `roles`.
    #[inline(always)]
    pub const fn selector(roles: u8) -> u32 {
        (roles >> SELECTOR_SHIFT) as u32
    }

    /// The bits that a kept `keep` role carries along: an inclusion keeps
    /// its selector number, an exclusion has none.
    pub const fn kept_with(keep: u8) -> u8 {
        if keep & INCLUDE != 0 {
            keep | SELECTOR
        } else {
            keep
        }
    }
}

/// The [`kind`] bits of the include and of the exclude selectors, folded
/// entry by entry: what CONFIG holds for a policy (the loader) and which
/// kinds name a task (the program). The one fold both sides use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindBits {
    pub include: u32,
    pub exclude: u32,
}

impl KindBits {
    /// Adds an entry of a selector of `kind` with `roles` ([`role`] bits).
    #[inline(always)]
    pub fn add(&mut self, kind: u32, roles: u8) {
        if roles & role::INCLUDE != 0 {
            self.include |= kind;
        }
        if roles & role::EXCLUDE != 0 {
            self.exclude |= kind;
        }
    }
}

/// Bits of [`Config::flags`].
pub mod flag {
    /// Send an [`crate::event::Event`] per upgrade (off with `-q`, so
    /// a quiet run does not fill the ring buffer for nobody).
    pub const EVENTS: u32 = 1 << 0;
    /// The kernel creates MPTCP sockets for IPv6 (see [`crate::Support`]).
    pub const MPTCP_IPV6: u32 = 1 << 1;
    /// Keep TCP for tasks under a Landlock domain: this kernel's Landlock
    /// does not apply its TCP rules to MPTCP ([`Config::landlock_domain`]
    /// says where the domain is). Off where Landlock is absent, has no network rules, or
    /// covers MPTCP: the loader probes which.
    pub const KEEP_SANDBOXED: u32 = 1 << 2;
    /// `mptcpify audit`: observe only. The upgrader reports the sockets it
    /// would upgrade and keeps them TCP; the audit program reports the TCP
    /// socket options selected processes set.
    pub const AUDIT: u32 = 1 << 3;
    /// Keep TCP for tasks whose cgroup has an effective `cgroup/sock_create`
    /// program ([`SockFilterLayout`] says where to look). Off only on a
    /// kernel without cgroup BPF, where there can be none.
    pub const KEEP_FILTERED: u32 = 1 << 4;
    /// `--explain`: look the calling process up in [`super::EXPLAIN`] and
    /// report the verdict of its TCP calls. Off, it costs nothing.
    pub const EXPLAIN: u32 = 1 << 5;
    /// The outcome programs are attached and may tag new MPTCP sockets.
    pub const OUTCOMES: u32 = 1 << 6;
    /// A `mptcpify monitor` listens: send the events of an upgraded
    /// connection's life too (established, subflow up/down). Off, they cost
    /// a map lookup per MPTCP connection and subflow, and nothing at
    /// `socket()`.
    pub const LIVE: u32 = 1 << 7;
    /// Stamp each event with `bpf_ktime_get_boot_ns`: on while somebody
    /// reads event times (`--json`, a listening monitor). Off, events carry
    /// `boot_ns` 0 and the reader takes the time it reads them at (at most
    /// one read interval, 50 ms, late): the text lines show no time, and
    /// the clock read costs more than the rest of an event (about 500 ns
    /// under TCG, where a TSC read is emulated; issue 10).
    pub const STAMP: u32 = 1 << 8;
}

/// What the loader may change while the programs run: the policy's shape
/// and the switches. The kernel's layout, fixed for the life of a load, is
/// in [`KernelLayout`] instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Kinds with at least one include entry. 0 means system-wide.
    pub include_kinds: u32,
    /// Kinds with at least one exclude entry.
    pub exclude_kinds: u32,
    /// How many entries of [`CGROUPS`] are in use.
    pub cgroup_rules: u32,
    /// [`flag`] bits.
    pub flags: u32,
    /// Landlock's slot in a task's LSM blob: `current->cred->security +
    /// landlock_domain` holds the domain pointer (`struct
    /// landlock_cred_security`, security/landlock/cred.h), NULL when the
    /// task is not sandboxed. The kernel lays the blob out at boot
    /// (`lsm_set_blob_size`, security/security.c), so it is not in BTF:
    /// the loader finds it by observing sandboxed and plain tasks (see
    /// [`CheckSlot`]), after the programs are loaded.
    pub landlock_domain: u32,
    /// Where MPTCP's per-namespace data hangs off `net->gen`: the byte
    /// offset of `ptr[mptcp_pernet_id]` in `struct net_generic`. The kernel
    /// assigns the id once, at boot (`register_pernet_subsys`,
    /// net/mptcp/ctrl.c), so the self-check program reads it once
    /// ([`CheckSlot::mptcp_slot`]) and the loader writes it here before the
    /// upgrader is attached: the guard then reads no kernel variable per
    /// call. 0 (unknown) reads as "MPTCP off": sockets stay TCP.
    pub mptcp_slot: u32,
}

/// The name of the programs' read-only global of type [`KernelLayout`]
/// (in `.rodata`), which the loader sets before the load.
pub const KERNEL_LAYOUT: &str = "KERNEL_LAYOUT";

/// Where the programs find what they read in kernel memory: byte offsets
/// from the running kernel's BTF, and the address of `mptcp_pernet_id`.
///
/// A read-only global, not a map entry: aya creates `.rodata` with
/// `BPF_F_RDONLY_PROG` and freezes it, so the verifier reads these values
/// as constants (kernel/bpf/verifier.c, `bpf_map_direct_read`). That lets
/// the programs load kernel fields directly from the task pointer
/// `bpf_get_current_task_btf()` gives (one instruction each, checked
/// against BTF at load) instead of a `bpf_probe_read_kernel` call per
/// field, and lets the verifier drop the code of a layout the kernel lacks
/// ([`present`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelLayout {
    pub netns: NetnsLayout,
    pub filter: SockFilterLayout,
    pub task: TaskLayout,
    pub cgroup: CgroupLayout,
    pub close: CloseLayout,
    pub sysctl: SysctlLayout,
    /// [`present`] bits.
    pub present: u32,
    /// The BTF id of `struct rb_node` (whose first member is an `unsigned
    /// long`): the type the programs cast a plain kernel address to with
    /// the kfunc `bpf_rdonly_cast` to read a word there directly.
    pub rb_node_type: u32,
}

/// The helper id no kernel has that the programs call for the kfunc
/// `bpf_rdonly_cast(void *obj, u32 btf_id)` (kernel/bpf/helpers.c): the
/// loader rewrites each such call into a call of the kfunc (aya has no
/// kfunc calls; see `EbpfLoader::kfunc` in patches/). The verifier then
/// replaces the call by a register move (kernel/bpf/verifier.c,
/// `fixup_kfunc_call`), so a read through it costs one load instruction,
/// where `bpf_probe_read_kernel` costs a helper call.
pub const RDONLY_CAST_PLACEHOLDER: i32 = 0x7f00_0001;
pub const RDONLY_CAST: &str = "bpf_rdonly_cast";

// No padding the compiler adds (aya::Pod), checked where it counts.
const _: () =
    assert!(core::mem::size_of::<KernelLayout>() == 32 + 24 + 7 * 4 + 24 + 17 * 4 + 6 * 4 + 8);

/// The kernel's layout written into the programs' instructions.
///
/// A kernel field read through a BTF pointer costs one load when its offset
/// is the load's own 16-bit offset, as a CO-RE relocation would make it;
/// read from [`KERNEL_LAYOUT`] it costs three (load the offset, add it,
/// load the field), because the JIT still emits what the verifier knows
/// to be constant. Rust emits no CO-RE relocations, so the programs write
/// such a load in inline assembly with a *marker* as its offset: which
/// `u32` of [`KernelLayout`] it means, plus a small addend. A layout value
/// the programs compute with (a type id, an offset into an array, the
/// presence bits) is written the same way as a load from the stack (`r10`)
/// at a marker, which the loader turns into a move of the value. The
/// loader does both before the object is loaded
/// (`mptcpify/src/field_offsets.rs`). Markers sit at the bottom of the
/// 16-bit range, far below any stack offset a program uses (a BPF stack is
/// 512 bytes), and no BTF pointer is `r10`.
pub mod field {
    use super::KernelLayout;

    /// The lowest marker.
    pub const MARKER_BASE: i32 = i16::MIN as i32;
    /// Addends a marker can carry: 0 to `ADDENDS - 1`.
    pub const ADDENDS: i32 = 16;
    /// One past the highest marker: one run of addends per `u32` word of
    /// [`KernelLayout`].
    pub const MARKER_END: i32 =
        MARKER_BASE + (core::mem::size_of::<KernelLayout>() / 4) as i32 * ADDENDS;

    /// The marker of the field whose offset is the `u32` at byte
    /// `layout_offset` of [`KernelLayout`] (`offset_of!`), plus `addend`.
    /// Evaluated at compile time: a bad argument fails the build.
    pub const fn marker(layout_offset: usize, addend: i32) -> i16 {
        assert!(layout_offset.is_multiple_of(4), "offsets are u32 words");
        assert!(0 <= addend && addend < ADDENDS, "addend out of range");
        let marker = MARKER_BASE + (layout_offset / 4) as i32 * ADDENDS + addend;
        assert!(marker < MARKER_END, "not inside KernelLayout");
        marker as i16
    }

    /// What `offset` stands for in a load instruction: `None` when it is
    /// not a marker (an ordinary offset, left alone), else the running
    /// kernel's offset from `layout`, the layout's bytes (which may not
    /// fit a load's 16 bits: the caller checks).
    pub fn resolve(offset: i16, layout: &[u8]) -> Option<i64> {
        let offset = i32::from(offset);
        if !(MARKER_BASE..MARKER_END).contains(&offset) {
            return None;
        }
        let word = ((offset - MARKER_BASE) / ADDENDS) as usize;
        let addend = (offset - MARKER_BASE) % ADDENDS;
        let bytes = layout.get(word * 4..word * 4 + 4)?;
        let value = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Some(i64::from(value) + i64::from(addend))
    }
}

/// Bits of [`KernelLayout::present`]: which parts of the layout the kernel
/// has. The verifier sees them as constants, so the code reading a missing
/// part is never loaded.
pub mod present {
    /// The namespace guard reads MPTCP's switch itself
    /// ([`super::NetnsLayout::pernet_id_addr`] and `pernet_mptcp_enabled`
    /// are known); without it, see [`super::role::MPTCP_CHECKED`].
    pub const PERNET: u32 = 1 << 0;
    /// [`super::SockFilterLayout`] is known (the kernel has cgroup BPF).
    pub const SOCK_FILTER: u32 = 1 << 1;
    /// [`super::CloseLayout`] is known (the outcome programs may run).
    pub const CLOSE: u32 = 1 << 2;
    /// The kernel is older than 6.9: `MPTCP_FALLBACK_DONE` is bit 4 of
    /// `mptcp_sock.flags`, not 2 ([`crate::event::closed::fallback_done_bit`]).
    pub const FALLBACK_DONE_4: u32 = 1 << 3;
}

/// Where the program finds whether a `cgroup/sock_create` program applies
/// to the calling task's new sockets: the socket gets the task's cgroup v2
/// (`cgroup_sk_alloc`: `current->cgroups->dfl_cgrp`), whose
/// `bpf.effective[CGROUP_INET_SOCK_CREATE]` is the array of programs
/// `__cgroup_bpf_run_filter_sk` runs (kernel/bpf/cgroup.c). An array with
/// no program is `bpf_empty_prog_array`, whose first item's `prog` is NULL
/// (kernel/bpf/core.c). Byte offsets from BTF.
///
/// Before that chain of four loads, one word says whether any cgroup has
/// a sock_create program at all: the kernel's own switch,
/// `cgroup_bpf_enabled_key[CGROUP_INET_SOCK_CREATE]` (a static key that
/// counts the attached programs, include/linux/bpf-cgroup.h), which the
/// kernel tests before running them (`BPF_CGROUP_RUN_PROG_INET_SOCK`).
/// Where it is 0 the kernel runs no sock_create program for the socket,
/// so there is nothing to keep TCP for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockFilterLayout {
    /// The address of that key's counter (`.key.enabled`, an `atomic_t`);
    /// 0 where kallsyms does not give it (the chain is then always read).
    pub enabled_key: u64,
    /// `task_struct.cgroups`.
    pub task_cgroups: u32,
    /// `css_set.dfl_cgrp`.
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.bpf` + `cgroup_bpf.effective` + 8 × `CGROUP_INET_SOCK_CREATE`.
    pub cgroup_sock_create: u32,
    /// `bpf_prog_array.items` + `bpf_prog_array_item.prog`: the first program.
    pub array_first_prog: u32,
}

/// Where the program that follows `cgroup_mkdir(struct cgroup *, const char
/// *path)` finds the new cgroup's id (`cgrp->kn->id`, what
/// `bpf_get_current_ancestor_cgroup_id` returns) and its hierarchy
/// (`cgrp->root->hierarchy_id`: 0 for cgroup v2, `cgrp_dfl_root`; a hybrid
/// host's v1 hierarchies create the same paths with other ids). From BTF.
///
/// And where the upgrader finds a task's ancestor at a rule's depth, as
/// `bpf_get_current_ancestor_cgroup_id(level)` does (`cgroup_ancestor`,
/// include/linux/cgroup.h: `cgrp->ancestors[level]` when `level <=
/// cgrp->level`) but with loads instead of a helper call per rule.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupLayout {
    pub cgroup_kn: u32,
    pub kn_id: u32,
    pub cgroup_root: u32,
    pub root_hierarchy_id: u32,
    /// `cgroup.level` (an `int`: the root is 0).
    pub level: u32,
    /// `cgroup.ancestors`, an array of `struct cgroup *` from the root
    /// (Linux 6.2+).
    pub ancestors: u32,
}

/// The cgroup v2 hierarchy's id in `cgroup_root.hierarchy_id`
/// (kernel/cgroup/cgroup.c gives the default root the first id).
pub const CGROUP2_HIERARCHY_ID: i32 = 0;

/// Longest cgroup path (relative to the cgroup2 root, with its leading `/`)
/// a rule can follow, NUL included. Kubernetes pod cgroups are ~170 bytes.
pub const CGROUP_PATH_LEN: usize = 256;

/// A cgroup path as the `cgroup_mkdir` tracepoint gives it (relative to the
/// hierarchy's root, leading `/`), NUL-padded: the key of [`CGROUP_PATHS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CgroupPath(pub [u8; CGROUP_PATH_LEN]);

impl CgroupPath {
    /// `None` when `path` does not fit.
    pub fn new(path: &[u8]) -> Option<Self> {
        let mut key = [0u8; CGROUP_PATH_LEN];
        key.get_mut(..path.len())?.copy_from_slice(path);
        (path.len() < CGROUP_PATH_LEN).then_some(Self(key))
    }
}

/// The id of a rule whose cgroup does not exist (yet): no cgroup has it,
/// unlike 0, which `bpf_get_current_ancestor_cgroup_id` returns for levels
/// deeper than the task's.
pub const ABSENT_CGROUP: u64 = u64::MAX;

/// Where the program finds facts about the calling task, byte offsets in
/// `struct task_struct` and `struct cred` from BTF:
/// - its thread's name (`comm`) and its process name
///   (`group_leader->comm`): worker threads rename themselves, so `--comm`
///   matches either;
/// - its process id (`tgid`) and thread id (`pid`), as the kernel's own
///   namespace sees them, and when its process started (`start_boottime`);
/// - its credentials' LSM blob (`cred->security`), where Landlock keeps the
///   task's domain ([`Config::landlock_domain`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLayout {
    pub group_leader: u32,
    pub comm: u32,
    pub pid: u32,
    pub tgid: u32,
    pub cred: u32,
    pub cred_security: u32,
    /// `task_struct.start_boottime`: when the process started (ns).
    pub start_boottime: u32,
}

/// A `--pid` rule: the process is the one with this pid *and* this start
/// time, so a later process that reuses the pid is not selected.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PidRule {
    /// The start time in clock ticks since boot, as /proc/PID/stat gives
    /// it: `start_boottime / (NSEC_PER_SEC / USER_HZ)` (fs/proc/array.c,
    /// `nsec_to_clock_t`).
    pub start_ticks: u64,
    pub roles: u32,
    pub _pad: u32,
}

/// `NSEC_PER_SEC / USER_HZ`: USER_HZ is 100 on every architecture the
/// hook exists on (x86, arm64, ...).
pub const NS_PER_TICK: u64 = 10_000_000;

/// How many 8-byte words of a task's cred security blob the self-check copies.
pub const CHECK_BLOB_WORDS: usize = 32;

/// What the self-check program saw for the first TCP `socket()` of the task
/// named [`CheckSlot::comm`]: the loader runs test children (a namespace with MPTCP
/// on, one with it off, a Landlock-sandboxed task) and compares what the
/// program's own code read with what it knows to be true, before attaching
/// the upgrader.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckSlot {
    /// Written by the loader: the name the test child takes before its
    /// socket() call, a random token. A name, not a pid: in a container
    /// (its own PID namespace) the loader knows the child by a pid the
    /// program does not see.
    pub comm: [u8; COMM_LEN],
    /// Written by the program: 1 once it saw a TCP call of that task.
    pub seen: u32,
    /// The namespace guard's reading, as the upgrader computes it.
    pub mptcp_enabled: u32,
    /// Whether a `cgroup/sock_create` program applies to the task, as the
    /// upgrader reads it ([`SockFilterLayout`]).
    pub filtered: u32,
    /// [`Config::mptcp_slot`] as the program found it (0: not found), the
    /// slot `mptcp_enabled` was read through.
    pub mptcp_slot: u32,
    /// The first words of `current->cred->security`.
    pub blob: [u64; CHECK_BLOB_WORDS],
}

impl Default for CheckSlot {
    fn default() -> Self {
        Self {
            comm: [0; COMM_LEN],
            seen: 0,
            mptcp_enabled: 0,
            filtered: 0,
            mptcp_slot: 0,
            blob: [0; CHECK_BLOB_WORDS],
        }
    }
}

/// Where the program finds, from the current task, its network namespace
/// (`current->nsproxy->net_ns`), the namespace's cookie (`net->net_cookie`)
/// and its MPTCP switch (`net->gen->ptr[mptcp_pernet_id]->mptcp_enabled`).
/// Byte offsets from the running kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetnsLayout {
    /// Kernel address of `mptcp_pernet_id`; 0 when unknown (see
    /// [`role::MPTCP_CHECKED`]).
    pub pernet_id_addr: u64,
    pub task_nsproxy: u32,
    pub nsproxy_net_ns: u32,
    pub net_cookie: u32,
    pub net_gen: u32,
    pub net_generic_ptr: u32,
    pub pernet_mptcp_enabled: u32,
}

/// A task matches when its cgroup at depth `level` (the root is 0) is `id`:
/// it is in that cgroup or below it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupRule {
    /// The cgroup v2 id: the inode number of its directory.
    pub id: u64,
    pub level: u32,
    pub role: u32,
}

impl Config {
    pub fn system_wide(&self) -> bool {
        self.include_kinds == 0
    }

    #[inline(always)]
    pub fn support(&self) -> crate::Support {
        crate::Support {
            ipv6: self.flags & flag::MPTCP_IPV6 != 0,
        }
    }
}

/// A task name as the kernel stores it: at most 15 bytes, NUL-padded to 16
/// (`bpf_get_current_comm` pads with zeros, so the whole array is the key).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CommKey(pub [u8; COMM_LEN]);

impl CommKey {
    /// The key for `name`, cut to 15 bytes as the kernel cuts it. Returns the
    /// key and whether the name was cut.
    pub fn from_name(name: &[u8]) -> (Self, bool) {
        let mut key = [0u8; COMM_LEN];
        let len = name.len().min(COMM_LEN - 1);
        key[..len].copy_from_slice(&name[..len]);
        (Self(key), name.len() > len)
    }

    /// The name up to its first NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        &self.0[..end]
    }
}

/// A 256-bit filter of task names (a Bloom filter with one hash): a name
/// whose bit is clear is not in the map it filters; one whose bit is set
/// may be. While a reload adds names the loader first sets their bits,
/// and clears the bits of removed names only after removing them
/// (`policy_maps::plan`), so the filter always holds at least the map's
/// names: a name skipped by it is never one the map has.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameFilter(pub [u64; 4]);

impl NameFilter {
    /// The word and the bit of `name` (a [`CommKey`]'s 16 bytes as two
    /// little-endian words): a multiplicative hash of the two words, its
    /// top 8 bits. Shared with the BPF program.
    #[inline(always)]
    pub fn slot(words: [u64; 2]) -> (usize, u64) {
        let index = Self::index(words);
        ((index >> 6) & 3, 1u64 << (index & 63))
    }

    /// The bit of `name` in the filter, 0 to 255 (also its [`COMM_SLOTS`]
    /// position).
    #[inline(always)]
    pub fn index(words: [u64; 2]) -> usize {
        let h = (words[0] ^ words[1].rotate_left(31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 56) as usize
    }

    /// The words of a name as [`NameFilter::slot`] takes them.
    pub fn words(name: &[u8; COMM_LEN]) -> [u64; 2] {
        let mut w = [0u8; 8];
        w.copy_from_slice(&name[..8]);
        let low = u64::from_le_bytes(w);
        w.copy_from_slice(&name[8..]);
        [low, u64::from_le_bytes(w)]
    }

    /// The filter of `names`.
    pub fn of<'a>(names: impl IntoIterator<Item = &'a [u8; COMM_LEN]>) -> NameFilter {
        let mut filter = NameFilter::default();
        for name in names {
            let (word, bit) = Self::slot(Self::words(name));
            filter.0[word] |= bit;
        }
        filter
    }

    /// Whether `name` may be in the filtered map.
    pub fn may_hold(&self, name: &[u8; COMM_LEN]) -> bool {
        let (word, bit) = Self::slot(Self::words(name));
        self.0[word] & bit != 0
    }

    /// Both filters' names.
    pub fn union(self, other: NameFilter) -> NameFilter {
        let mut out = self;
        for (a, b) in out.0.iter_mut().zip(other.0) {
            *a |= b;
        }
        out
    }
}

/// Slots of [`COUNTERS`], one per verdict on a TCP call. Only TCP calls are
/// counted: counting every call would put a map lookup on the path of every
/// socket. The number of TCP calls is their sum, so it has no slot of its own.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Upgraded = 0,
    KeptMptcpDisabled = 1,
    KeptExcluded = 2,
    KeptNotSelected = 3,
    KeptSandboxed = 4,
    /// Not a `socket()` verdict: socket option calls on MPTCP sockets that
    /// MPTCP refused (see [`crate::event::refused`]).
    RefusedOption = 5,
    /// Events not sent because the ring buffer or this CPU's slots were
    /// full (the reader fell behind); what they would have said is still
    /// counted above.
    DroppedEvents = 6,
    /// A verdict, numbered after the others so that the slots other
    /// versions read stay where they were.
    KeptFiltered = 7,
    /// Upgraded sockets closed, by what they did (see
    /// [`crate::event::closed`]), and the extra subflows the MPTCP ones
    /// joined. Not verdicts.
    ClosedMptcp = 8,
    ClosedFallback = 9,
    ClosedListener = 10,
    ClosedUnconnected = 11,
    ExtraSubflows = 12,
    /// Connections that upgraded listeners accepted: from an MPTCP client,
    /// from a plain TCP one; the MPTCP ones closed, and the extra subflows
    /// those joined. Not verdicts.
    AcceptedMptcp = 13,
    AcceptedTcp = 14,
    ClosedAccepted = 15,
    ExtraSubflowsAccepted = 16,
    /// MPTCP connections that fell back to TCP after the peer answered
    /// MP_CAPABLE, told at close: upgraded sockets, accepted connections.
    ClosedFellBackLater = 17,
    ClosedAcceptedFellBackLater = 18,
}

impl Counter {
    pub const ALL: [Counter; 19] = [
        Counter::Upgraded,
        Counter::KeptMptcpDisabled,
        Counter::KeptExcluded,
        Counter::KeptNotSelected,
        Counter::KeptSandboxed,
        Counter::RefusedOption,
        Counter::DroppedEvents,
        Counter::KeptFiltered,
        Counter::ClosedMptcp,
        Counter::ClosedFallback,
        Counter::ClosedListener,
        Counter::ClosedUnconnected,
        Counter::ExtraSubflows,
        Counter::AcceptedMptcp,
        Counter::AcceptedTcp,
        Counter::ClosedAccepted,
        Counter::ExtraSubflowsAccepted,
        Counter::ClosedFellBackLater,
        Counter::ClosedAcceptedFellBackLater,
    ];
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// Whether this counts TCP `socket()` calls (one verdict each), which
    /// add up to the TCP sockets seen.
    pub fn is_verdict(self) -> bool {
        !matches!(
            self,
            Counter::RefusedOption
                | Counter::DroppedEvents
                | Counter::ClosedMptcp
                | Counter::ClosedFallback
                | Counter::ClosedListener
                | Counter::ClosedUnconnected
                | Counter::ExtraSubflows
                | Counter::AcceptedMptcp
                | Counter::AcceptedTcp
                | Counter::ClosedAccepted
                | Counter::ExtraSubflowsAccepted
                | Counter::ClosedFellBackLater
                | Counter::ClosedAcceptedFellBackLater
        )
    }

    /// The counter's name in JSON output.
    pub fn key(self) -> &'static str {
        match self {
            Counter::Upgraded => "upgraded",
            Counter::KeptMptcpDisabled => "kept_mptcp_disabled",
            Counter::KeptExcluded => "kept_excluded",
            Counter::KeptNotSelected => "kept_not_selected",
            Counter::KeptSandboxed => "kept_sandboxed",
            Counter::KeptFiltered => "kept_sock_filtered",
            Counter::ClosedMptcp => "closed_mptcp",
            Counter::ClosedFallback => "closed_fallback",
            Counter::ClosedListener => "closed_listener",
            Counter::ClosedUnconnected => "closed_unconnected",
            Counter::ExtraSubflows => "extra_subflows",
            Counter::AcceptedMptcp => "accepted_mptcp",
            Counter::AcceptedTcp => "accepted_tcp",
            Counter::ClosedAccepted => "closed_accepted",
            Counter::ExtraSubflowsAccepted => "extra_subflows_accepted",
            Counter::ClosedFellBackLater => "closed_fell_back_later",
            Counter::ClosedAcceptedFellBackLater => "closed_accepted_fell_back_later",
            Counter::RefusedOption => "refused_options",
            Counter::DroppedEvents => "dropped_events",
        }
    }

    /// The slot that records `verdict` (`None` for non-TCP calls).
    #[inline(always)]
    pub fn for_verdict(verdict: Verdict) -> Option<Counter> {
        match verdict {
            Verdict::Upgrade => Some(Counter::Upgraded),
            Verdict::Keep(Keep::NotTcp) => None,
            Verdict::Keep(Keep::MptcpDisabled | Keep::Unsupported) => {
                Some(Counter::KeptMptcpDisabled)
            }
            Verdict::Keep(Keep::Excluded) => Some(Counter::KeptExcluded),
            Verdict::Keep(Keep::NotSelected) => Some(Counter::KeptNotSelected),
            Verdict::Keep(Keep::Sandboxed) => Some(Counter::KeptSandboxed),
            Verdict::Keep(Keep::Filtered) => Some(Counter::KeptFiltered),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Counter::Upgraded => "upgraded to mptcp",
            Counter::KeptMptcpDisabled => "kept tcp: mptcp disabled in netns (or unsupported)",
            Counter::KeptExcluded => "kept tcp: excluded",
            Counter::KeptNotSelected => "kept tcp: not selected",
            Counter::KeptSandboxed => "kept tcp: sandboxed (Landlock)",
            Counter::KeptFiltered => "kept tcp: a cgroup sock_create program applies",
            Counter::ClosedMptcp => "upgraded sockets closed after using mptcp",
            Counter::ClosedFallback => "upgraded sockets closed after falling back to tcp",
            Counter::ClosedListener => "upgraded listeners closed",
            Counter::ClosedUnconnected => "upgraded sockets closed never connected",
            Counter::ExtraSubflows => "extra subflows joined (upgraded sockets, closed)",
            Counter::AcceptedMptcp => "accepted by upgraded listeners: mptcp clients",
            Counter::AcceptedTcp => "accepted by upgraded listeners: plain tcp clients",
            Counter::ClosedAccepted => "accepted mptcp connections closed",
            Counter::ExtraSubflowsAccepted => {
                "extra subflows joined (accepted connections, closed)"
            }
            Counter::ClosedFellBackLater => {
                "upgraded sockets closed after mptcp fell back to tcp later"
            }
            Counter::ClosedAcceptedFellBackLater => {
                "accepted connections closed after mptcp fell back to tcp later"
            }
            Counter::RefusedOption => "socket option calls refused by mptcp",
            Counter::DroppedEvents => "events dropped (event buffers full; counted above)",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] data without padding or pointers.
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::CgroupRule {}
    unsafe impl aya::Pod for super::CommKey {}
    unsafe impl aya::Pod for super::NameFilter {}
    unsafe impl aya::Pod for super::CheckSlot {}
    unsafe impl aya::Pod for super::CgroupPath {}
    unsafe impl aya::Pod for super::PidRule {}
    unsafe impl aya::Pod for super::Tag {}
    unsafe impl aya::Pod for super::CloseLayout {}
    unsafe impl aya::Pod for super::KernelLayout {}
    unsafe impl aya::Pod for super::Staged {}
    unsafe impl aya::Pod for super::CommSlot {}
    unsafe impl aya::Pod for super::SelectorName {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{format, vec::Vec};

    /// Every `u32` field of the layout, with every addend, comes back as
    /// the value the loader wrote there plus the addend; offsets outside
    /// the marker range (the stack's, a map value's) are never touched.
    #[test]
    fn field_markers_resolve_to_the_layout_and_nothing_else_does() {
        let words = core::mem::size_of::<KernelLayout>() / 4;
        let layout: Vec<u8> = (0..words as u32)
            .flat_map(|w| (1000 + 8 * w).to_ne_bytes())
            .collect();
        for word in 0..words {
            for addend in [0, 1, 8, field::ADDENDS - 1] {
                let marker = field::marker(word * 4, addend);
                assert_eq!(
                    field::resolve(marker, &layout),
                    Some(i64::from(1000 + 8 * word as u32) + i64::from(addend)),
                    "word {word} + {addend}"
                );
            }
        }
        for plain in [-512, -8, 0, 8, 4096, i16::MAX, field::MARKER_END as i16] {
            assert_eq!(field::resolve(plain, &layout), None, "{plain}");
        }
        assert_eq!(
            field::marker(core::mem::offset_of!(KernelLayout, task.pid), 0),
            field::MARKER_BASE as i16
                + (core::mem::offset_of!(KernelLayout, task.pid) / 4 * 16) as i16
        );
    }

    #[test]
    fn an_include_entry_carries_its_selector_number() {
        let comm = role::with_selector(role::INCLUDE, 5);
        assert_eq!(role::selector(comm), 5);
        assert_eq!(comm & role::INCLUDE, role::INCLUDE);
        // A number that does not fit is "none of its own".
        assert_eq!(role::selector(role::with_selector(role::INCLUDE, 32)), 0);
        assert_eq!(role::selector(role::with_selector(comm, 7)), 7);
        // Kept roles: an inclusion keeps its number, an exclusion has none.
        assert_eq!(comm & role::kept_with(role::INCLUDE), comm);
        assert_eq!(
            (comm | role::EXCLUDE) & role::kept_with(role::EXCLUDE),
            role::EXCLUDE
        );
    }

    /// The maps another process finds by name (`status`, `/metrics`, a
    /// takeover) are named as the kernel keeps them: 15 bytes.
    #[test]
    fn maps_read_by_name_fit_the_kernels_name_length() {
        for name in [
            CONFIG,
            COUNTERS,
            TAGGED,
            SELECTOR_NAMES,
            SELECTOR_COUNTERS,
            FALLBACKS,
            REFUSED,
        ] {
            assert!(name.len() <= 15, "{name}");
        }
    }

    #[test]
    fn notes_selector_and_counter_slots_stay_in_their_maps() {
        assert_eq!(noted(note(77, 3), 77), Some(3));
        assert_eq!(noted(note(77, 3), 78), None);
        assert_eq!(noted(0, 0), None);
        let mut seen = std::collections::BTreeSet::new();
        for selector in 0..MAX_SELECTORS + 3 {
            for counter in SelectorCounter::ALL {
                let i = counter.index(selector);
                assert!(i < MAX_SELECTORS * SelectorCounter::COUNT);
                if selector < MAX_SELECTORS {
                    assert!(seen.insert(i), "{selector} {counter:?}");
                }
            }
        }
        for later in [false, true] {
            for reason in [0, 1, 63, 64, 255, 256, u32::MAX] {
                assert!(fallback_index(later, reason) < FALLBACK_SLOTS);
            }
        }
        assert_eq!(fallback_index(true, 256), FALLBACK_REASONS);
        assert_eq!(fallback_index(false, 90), 90);
        for level in [0, 1, 6, 41, 263, u32::MAX] {
            for option in [0, 1, 127, 128, u32::MAX] {
                let i = refused_index(level, option);
                assert!(i < REFUSED_SLOTS);
                let (back, opt) = refused_entry(i);
                assert_eq!(back, REFUSED_LEVELS.contains(&level).then_some(level));
                assert_eq!(opt, option.min(127));
            }
        }
        assert_eq!(
            SelectorName::new("unit nginx.service").as_str(),
            "unit nginx.service"
        );
        let long = "é".repeat(40);
        assert_eq!(SelectorName::new(&long).as_str(), "é".repeat(31));
    }

    #[test]
    fn stage_slots_are_a_power_of_two_within_bounds() {
        for cpus in [0, 1, 2, 3, 4, 7, 8, 64, 100, 512, 8192] {
            let slots = stage_slots(cpus);
            assert!(slots.is_power_of_two(), "{cpus}: {slots}");
            assert!((256..=4096).contains(&slots), "{cpus}: {slots}");
        }
        assert_eq!(stage_slots(2), 4096);
        assert_eq!(stage_slots(64), 256);
        assert_eq!(core::mem::size_of::<Staged>(), 64);
    }

    /// One name per position is exact; positions two names share ask the
    /// hash; a slot read torn, or not exact, is never trusted.
    #[test]
    fn comm_slots_hold_lone_names_and_trust_only_whole_reads() {
        let names: Vec<[u8; 16]> = (0..64)
            .map(|i| CommKey::from_name(format!("worker-{i}").as_bytes()).0 .0)
            .collect();
        let table = CommSlot::table(names.iter().map(|n| (n, role::INCLUDE)));
        let mut shared = 0;
        for name in &names {
            let words = NameFilter::words(name);
            let index = NameFilter::index(words);
            let others = names
                .iter()
                .filter(|n| NameFilter::index(NameFilter::words(n)) == index)
                .count();
            match table[index] {
                Some((w, roles)) => {
                    assert_eq!(others, 1);
                    assert_eq!((w, roles), (words, role::INCLUDE));
                }
                None => {
                    assert!(others > 1);
                    shared += 1;
                }
            }
        }
        assert!(shared < 32, "{shared} of 64 names share a position");
        let words = NameFilter::words(&names[0]);
        let other = NameFilter::words(&names[1]);
        let exact = comm_slot::EXACT | (5 << comm_slot::GENERATION_SHIFT) | 1;
        assert_eq!(CommSlot::answer(exact, words, exact, words), Some(1));
        assert_eq!(CommSlot::answer(exact, words, exact, other), Some(0));
        // Written between the two reads: a new generation, maybe the same
        // bits otherwise.
        let next = exact + (2 << comm_slot::GENERATION_SHIFT);
        assert_eq!(CommSlot::answer(exact, words, next, words), None);
        let asking = 6 << comm_slot::GENERATION_SHIFT;
        assert_eq!(CommSlot::answer(asking, words, asking, words), None);
        assert_eq!(CommSlot::answer(0, [0, 0], 0, [0, 0]), None);
    }

    #[test]
    fn comm_key_cuts_like_the_kernel() {
        let (key, cut) = CommKey::from_name(b"iperf3");
        assert!(!cut);
        assert_eq!(key.as_bytes(), b"iperf3");
        assert_eq!(key.0[6..], [0; 10]);
        let (key, cut) = CommKey::from_name(b"a-very-long-process-name");
        assert!(cut);
        assert_eq!(key.as_bytes(), b"a-very-long-pro");
        assert_eq!(key.0[15], 0);
        let (_, cut) = CommKey::from_name(b"exactly15bytes!");
        assert!(!cut);
    }

    /// A filter holds every name it was made of, and leaves out most names
    /// it was not (64 names set at most 64 of its 256 bits).
    #[test]
    fn a_name_filter_holds_its_names_and_few_others() {
        let names: Vec<[u8; 16]> = (0..64)
            .map(|i| CommKey::from_name(format!("worker-{i}").as_bytes()).0 .0)
            .collect();
        let filter = NameFilter::of(&names);
        assert!(names.iter().all(|n| filter.may_hold(n)));
        let others = (0..1000)
            .map(|i| CommKey::from_name(format!("other-{i}").as_bytes()).0 .0)
            .filter(|n| filter.may_hold(n))
            .count();
        assert!(others < 300, "{others} of 1000 other names pass");
        let one = NameFilter::of([&CommKey::from_name(b"iperf3").0 .0]);
        let passing = (0..1000)
            .map(|i| CommKey::from_name(format!("other-{i}").as_bytes()).0 .0)
            .filter(|n| one.may_hold(n))
            .count();
        assert!(
            passing < 20,
            "{passing} of 1000 names pass a one-name filter"
        );
        assert_eq!(NameFilter::default().union(one), one);
        assert!(!NameFilter::default().may_hold(&names[0]));
    }
}
