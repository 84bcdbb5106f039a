//! A reader of the kernel's BTF (the running kernel's
//! `/sys/kernel/btf/vmlinux`, read by mptcpify), and what the BPF programs
//! need from it: struct field offsets ([`Layout`]) and the ids of the
//! functions and types they are loaded against ([`BtfIds`]). aya has no
//! CO-RE for Rust BPF programs, so the offsets are computed here and handed
//! to the programs as their read-only global.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};

pub use aya_obj::btf::BtfKind;

const BTF_MAGIC: u16 = 0xeb9f;

/// The offsets the program needs, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub task_nsproxy: u32,
    pub nsproxy_net_ns: u32,
    pub net_cookie: u32,
    pub net_gen: u32,
    pub net_generic_ptr: u32,
    /// `None` when the kernel's BTF has no `struct mptcp_pernet`.
    pub pernet_mptcp_enabled: Option<u32>,
    /// `task_struct.cred` and `cred.security`: the way to a task's LSM blob.
    pub task_cred: u32,
    pub cred_security: u32,
    /// `task_struct.group_leader` and `task_struct.comm`: the process name.
    pub task_group_leader: u32,
    pub task_comm: u32,
    /// `task_struct.pid` and `.tgid`: the thread's and the process's ids.
    pub task_pid: u32,
    pub task_tgid: u32,
    /// `task_struct.start_boottime`: when the process started.
    pub task_start_boottime: u32,
    /// A new cgroup's id and hierarchy (see `maps::CgroupLayout`).
    pub cgroup: mptcpify_common::maps::CgroupLayout,
    /// `None` on a kernel without cgroup BPF (no `struct cgroup_bpf`): no
    /// sock_create program can apply there.
    pub sock_filter: Option<SockFilterLayout>,
    /// Where the counter of `cgroup_bpf_enabled_key[CGROUP_INET_SOCK_CREATE]`
    /// is from the array's start (see `maps::SockFilterLayout`).
    pub sock_create_key: Option<u32>,
    /// Where the outcome programs read an MPTCP socket; `Err` says why they
    /// cannot run here (upgrading does not depend on them).
    pub close: Result<CloseLayout, String>,
    /// Where the fallback mode's sysctl program finds a write of
    /// `net.mptcp.enabled`; `Err` says why it cannot run here.
    pub sysctl: Result<SysctlLayout, String>,
    /// This kernel's value of each fallback MIB it has, by its index in
    /// [`crate::output::fallback::MIBS`].
    pub fallback_mibs: Vec<(u32, usize)>,
}

use mptcpify_common::maps::SysctlLayout;

/// See `maps::SysctlLayout`.
fn sysctl_layout(btf: &Btf) -> Result<SysctlLayout> {
    Ok(SysctlLayout {
        kern_head: btf.offset("bpf_sysctl_kern", "head")?,
        kern_table: btf.offset("bpf_sysctl_kern", "table")?,
        header_set: btf.offset("ctl_table_header", "set")?,
        net_sysctls: btf.offset("net", "sysctls")?,
        table_data: btf.offset("ctl_table", "data")?,
        _pad: 0,
    })
}

use mptcpify_common::maps::CloseLayout;

/// See `maps::CloseLayout`.
fn close_layout(btf: &Btf) -> Result<CloseLayout> {
    let common = btf.offset("sock", "__sk_common")?;
    Ok(CloseLayout {
        sk_family: common + btf.offset("sock_common", "skc_family")?,
        sk_state: common + btf.offset("sock_common", "skc_state")?,
        remote_key: btf.offset("mptcp_sock", "remote_key")?,
        bytes_sent: btf.offset("mptcp_sock", "bytes_sent")?,
        bytes_received: btf.offset("mptcp_sock", "bytes_received")?,
        icsk_ulp_data: btf.offset("inet_connection_sock", "icsk_ulp_data")?,
        subflow_conn: btf.offset("mptcp_subflow_context", "conn")?,
        socket_sk: btf.offset("socket", "sk")?,
        sk_protocol: btf.offset("sock", "sk_protocol")?,
        skc_rcv_saddr: common + btf.offset("sock_common", "skc_rcv_saddr")?,
        skc_daddr: common + btf.offset("sock_common", "skc_daddr")?,
        skc_num: common + btf.offset("sock_common", "skc_num")?,
        skc_dport: common + btf.offset("sock_common", "skc_dport")?,
        skc_v6_rcv_saddr: common + btf.offset("sock_common", "skc_v6_rcv_saddr")?,
        skc_v6_daddr: common + btf.offset("sock_common", "skc_v6_daddr")?,
        // Renamed `extra_subflows` in 6.18 (net/mptcp/protocol.h).
        pm_subflows: btf.offset("mptcp_sock", "pm")?
            + btf
                .offset("mptcp_pm_data", "extra_subflows")
                .or_else(|_| btf.offset("mptcp_pm_data", "subflows"))?,
        msk_flags: btf.offset("mptcp_sock", "flags")?,
    })
}

use mptcpify_common::maps::SockFilterLayout;

/// The kernel's switch for sock_create programs: the symbol of the array of
/// static keys, one per attach type (kernel/bpf/cgroup.c).
pub const SOCK_CREATE_KEYS: &str = "cgroup_bpf_enabled_key";

/// Where the counter of the sock_create key is in that array: element
/// `CGROUP_INET_SOCK_CREATE`, its `.key.enabled` (`struct static_key_false`
/// holds a `struct static_key`, whose `atomic_t enabled` counts the users,
/// include/linux/jump_label.h).
fn sock_create_key(btf: &Btf) -> Result<u32> {
    let index = btf.enumerator("CGROUP_INET_SOCK_CREATE")?;
    let index = u32::try_from(index).context("CGROUP_INET_SOCK_CREATE is negative")?;
    Ok(index * btf.size("static_key_false")?
        + btf.offset("static_key_false", "key")?
        + btf.offset("static_key", "enabled")?)
}

/// Where a task's cgroup keeps its effective sock_create programs (see
/// `maps::SockFilterLayout`); `None` without cgroup BPF.
fn sock_filter(btf: &Btf) -> Result<Option<SockFilterLayout>> {
    if !btf.composites.contains_key("cgroup_bpf") {
        return Ok(None);
    }
    // include/linux/bpf-cgroup-defs.h: enum cgroup_bpf_attach_type indexes
    // cgroup_bpf.effective, an array of `struct bpf_prog_array *`.
    let index = btf.enumerator("CGROUP_INET_SOCK_CREATE")?;
    let index = u32::try_from(index).context("CGROUP_INET_SOCK_CREATE is negative")?;
    Ok(Some(SockFilterLayout {
        enabled_key: 0,
        task_cgroups: btf.offset("task_struct", "cgroups")?,
        css_set_dfl_cgrp: btf.offset("css_set", "dfl_cgrp")?,
        cgroup_sock_create: btf.offset("cgroup", "bpf")?
            + btf.offset("cgroup_bpf", "effective")?
            + 8 * index,
        array_first_prog: btf.offset("bpf_prog_array", "items")?
            + btf.offset("bpf_prog_array_item", "prog")?,
    }))
}

impl Layout {
    /// The layout in the BTF `data`.
    pub fn from_btf(data: &[u8]) -> Result<Layout> {
        Self::from_parsed(&Btf::parse(data)?)
    }

    /// The layout in `btf`, parsed once for this and the ids.
    pub fn from_parsed(btf: &Btf) -> Result<Layout> {
        Ok(Layout {
            task_nsproxy: btf.offset("task_struct", "nsproxy")?,
            nsproxy_net_ns: btf.offset("nsproxy", "net_ns")?,
            net_cookie: btf.offset("net", "net_cookie")?,
            net_gen: btf.offset("net", "gen")?,
            net_generic_ptr: btf.offset("net_generic", "ptr")?,
            pernet_mptcp_enabled: btf.offset("mptcp_pernet", "mptcp_enabled").ok(),
            task_cred: btf.offset("task_struct", "cred")?,
            cred_security: btf.offset("cred", "security")?,
            task_group_leader: btf.offset("task_struct", "group_leader")?,
            task_comm: btf.offset("task_struct", "comm")?,
            task_pid: btf.offset("task_struct", "pid")?,
            task_tgid: btf.offset("task_struct", "tgid")?,
            task_start_boottime: btf.offset("task_struct", "start_boottime")?,
            cgroup: mptcpify_common::maps::CgroupLayout {
                cgroup_kn: btf.offset("cgroup", "kn")?,
                kn_id: btf.offset("kernfs_node", "id")?,
                cgroup_root: btf.offset("cgroup", "root")?,
                root_hierarchy_id: btf.offset("cgroup_root", "hierarchy_id")?,
                level: btf.offset("cgroup", "level")?,
                ancestors: btf.offset("cgroup", "ancestors")?,
            },
            sock_filter: sock_filter(btf)?,
            sock_create_key: sock_create_key(btf).ok(),
            close: close_layout(btf).map_err(|e| format!("{e:#}")),
            sysctl: sysctl_layout(btf).map_err(|e| format!("{e:#}")),
            fallback_mibs: crate::output::fallback::MIBS
                .iter()
                .enumerate()
                .filter_map(|(index, (enumerator, _, _))| {
                    let value = btf.enumerator(enumerator).ok()?;
                    Some((u32::try_from(value).ok()?, index))
                })
                .collect(),
        })
    }
}

/// The BTF ids of named kernel types: the functions and the tracepoint the
/// programs attach to, the kfunc they call, `struct rb_node`. Found by our
/// reader in the walk that finds the layout, so that aya need not parse
/// the kernel's BTF at all (its parse holds about 12 MB; issue 10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BtfIds(Vec<(&'static str, BtfKind, u32)>);

impl BtfIds {
    /// The id of `name` of BTF kind `kind`; `Err` names what is missing.
    pub fn get(&self, name: &str, kind: BtfKind) -> Result<u32, String> {
        self.0
            .iter()
            .find(|&&(n, k, _)| n == name && k == kind)
            .map(|&(.., id)| id)
            .ok_or_else(|| {
                let what = match kind {
                    BtfKind::Func => "function",
                    BtfKind::Typedef => "typedef",
                    BtfKind::Struct => "struct",
                    _ => "type",
                };
                format!("the kernel's BTF has no {what} {name}")
            })
    }

    /// The id of kernel function `name`.
    pub fn func(&self, name: &str) -> Result<u32, String> {
        self.get(name, BtfKind::Func)
    }
}

/// Just enough of a BTF reader to find struct members (names and bit
/// offsets, through anonymous structs and unions) and enumerator values.
///
/// One walk records where each type starts and the ids of the structs by
/// name; members and enumerators are read only for the types asked about.
/// By hand rather than with aya-obj's parser: ours runs once per start over
/// megabytes of vmlinux BTF and keeps only positions (issue 10: attach
/// time), and aya-obj exposes no member offsets.
pub struct Btf<'a> {
    data: &'a [u8],
    strings: &'a [u8],
    /// Byte position of each type's header, by type id (id 0 is void).
    types: Vec<u32>,
    /// Struct/union name → the ids of its definitions. vmlinux can hold
    /// several different structs of one name (from different compilation
    /// units); a lookup that they answer differently is an error, never
    /// the first match.
    composites: HashMap<&'a str, Vec<u32>>,
    /// Ids of the enums, searched when an enumerator is asked for.
    enums: Vec<u32>,
    /// A kind this reader does not know stops the walk there (its size is
    /// unknown); structs defined before it are still found.
    stopped: Option<String>,
}

impl<'a> Btf<'a> {
    /// Parses little-endian BTF.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        if u16_at(0) != Some(BTF_MAGIC) {
            bail!("not little-endian BTF");
        }
        let word = |o: usize| u32_in(data, o);
        let hdr_len = word(4)? as usize;
        let type_off = hdr_len + word(8)? as usize;
        let type_len = word(12)? as usize;
        let str_off = hdr_len + word(16)? as usize;
        let str_len = word(20)? as usize;
        let strings = data
            .get(str_off..str_off + str_len)
            .ok_or_else(|| anyhow!("BTF strings out of range"))?;
        let mut btf = Btf {
            data,
            strings,
            types: vec![0],
            composites: HashMap::new(),
            enums: Vec::new(),
            stopped: None,
        };
        let mut pos = type_off;
        let end = (type_off + type_len).min(data.len());
        while pos + 12 <= end {
            let id = btf.types.len() as u32;
            let (name_off, info) = (word(pos)?, word(pos + 4)?);
            let vlen = (info & 0xffff) as usize;
            // What follows each kind's header (include/uapi/linux/btf.h).
            use BtfKind::*;
            let kind = BtfKind::try_from((info >> 24) & 0x1f);
            let extra = match kind {
                Ok(Int | Var | DeclTag) => 4,
                Ok(Array) => 12,
                Ok(Struct | Union) => 12 * vlen,
                Ok(Enum | FuncProto) => 8 * vlen,
                Ok(DataSec | Enum64) => 12 * vlen,
                Ok(Ptr | Fwd | Typedef | Volatile | Const | Restrict | Func | Float | TypeTag) => 0,
                Ok(Unknown) | Err(_) => {
                    let other = (info >> 24) & 0x1f;
                    btf.stopped = Some(format!("unknown BTF kind {other} at type id {id}"));
                    break;
                }
            };
            btf.types.push(pos as u32);
            if matches!(kind, Ok(Struct | Union)) {
                let type_name = btf.name(name_off);
                if !type_name.is_empty() {
                    btf.composites.entry(type_name).or_default().push(id);
                }
            } else if matches!(kind, Ok(Enum | Enum64)) {
                btf.enums.push(id);
            }
            pos += 12 + extra;
        }
        Ok(btf)
    }

    /// The ids of the named types `wanted` (name, BTF kind), in one walk;
    /// the first definition of a name, as aya and libbpf take it.
    pub fn ids(&self, wanted: &[(&'static str, BtfKind)]) -> BtfIds {
        let mut found = Vec::with_capacity(wanted.len());
        for id in 1..self.types.len() as u32 {
            let Some((name_off, kind, ..)) = self.header(id) else {
                continue;
            };
            if !wanted.iter().any(|&(_, k)| k == kind) {
                continue;
            }
            let name = self.name(name_off);
            let Some(&(wanted_name, _)) = wanted.iter().find(|&&(n, k)| n == name && k == kind)
            else {
                continue;
            };
            if !found.iter().any(|&(n, k, _)| n == wanted_name && k == kind) {
                found.push((wanted_name, kind, id));
            }
        }
        BtfIds(found)
    }

    fn name(&self, off: u32) -> &'a str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or_default()
    }

    /// Type `id`'s header: name offset, kind, vlen, kind_flag, and where
    /// its entries start.
    fn header(&self, id: u32) -> Option<(u32, BtfKind, usize, bool, usize)> {
        let pos = *self.types.get(id as usize)? as usize;
        if id == 0 {
            return None;
        }
        let info = u32_in(self.data, pos + 4).ok()?;
        Some((
            u32_in(self.data, pos).ok()?,
            BtfKind::try_from((info >> 24) & 0x1f).ok()?,
            (info & 0xffff) as usize,
            info >> 31 == 1,
            pos + 12,
        ))
    }

    /// The members of struct/union `id`: (name, type id, bit offset).
    fn members(&self, id: u32) -> Vec<(&'a str, u32, u32)> {
        let Some((_, kind, vlen, kind_flag, entries)) = self.header(id) else {
            return Vec::new();
        };
        if !matches!(kind, BtfKind::Struct | BtfKind::Union) {
            return Vec::new();
        }
        (0..vlen)
            .filter_map(|m| {
                let base = entries + 12 * m;
                let offset = u32_in(self.data, base + 8).ok()?;
                let bits = if kind_flag {
                    offset & 0x00ff_ffff
                } else {
                    offset
                };
                Some((
                    self.name(u32_in(self.data, base).ok()?),
                    u32_in(self.data, base + 4).ok()?,
                    bits,
                ))
            })
            .collect()
    }

    /// Byte offset of `member` in struct/union `composite`, looking through
    /// anonymous structs and unions.
    fn offset(&self, composite: &str, member: &str) -> Result<u32> {
        let Some(definitions) = self.composites.get(composite) else {
            match &self.stopped {
                Some(why) => bail!("kernel BTF has no struct {composite} before the {why}"),
                None => bail!("kernel BTF has no struct {composite}"),
            }
        };
        let mut found: Vec<Option<u32>> = definitions
            .iter()
            .map(|&id| self.find(id, member, 0))
            .collect();
        found.dedup();
        let bits = match found.as_slice() {
            [Some(bits)] => *bits,
            [None] => bail!("kernel BTF: struct {composite} has no member {member}"),
            _ => bail!(
                "kernel BTF has {} different definitions of struct {composite} that disagree \
                 on {member}: ambiguous",
                definitions.len()
            ),
        };
        if bits % 8 != 0 {
            bail!("{composite}.{member} is a bitfield");
        }
        Ok(bits / 8)
    }

    /// The size in bytes of struct `composite` (its definitions must agree).
    fn size(&self, composite: &str) -> Result<u32> {
        let definitions = self
            .composites
            .get(composite)
            .ok_or_else(|| anyhow!("kernel BTF has no struct {composite}"))?;
        let mut sizes: Vec<u32> = definitions
            .iter()
            .map(|&id| u32_in(self.data, self.types[id as usize] as usize + 8))
            .collect::<Result<_>>()?;
        sizes.dedup();
        match sizes.as_slice() {
            [size] => Ok(*size),
            _ => bail!("kernel BTF has definitions of struct {composite} of different sizes"),
        }
    }

    fn find(&self, id: u32, wanted: &str, base: u32) -> Option<u32> {
        for (name, type_id, bits) in self.members(id) {
            if name == wanted {
                return Some(base + bits);
            }
            if name.is_empty() {
                let anonymous = self.header(type_id).is_some_and(|(name_off, kind, ..)| {
                    matches!(kind, BtfKind::Struct | BtfKind::Union)
                        && self.name(name_off).is_empty()
                });
                if anonymous {
                    if let Some(found) = self.find(type_id, wanted, base + bits) {
                        return Some(found);
                    }
                }
            }
        }
        None
    }

    /// The value of enumerator `name`; an error when it is missing or when
    /// two definitions give it different values.
    fn enumerator(&self, name: &str) -> Result<i64> {
        let mut values = Vec::new();
        for &id in &self.enums {
            let Some((_, kind, vlen, _, entries)) = self.header(id) else {
                continue;
            };
            let size = if kind == BtfKind::Enum { 8 } else { 12 };
            for e in 0..vlen {
                let base = entries + size * e;
                if self.name(u32_in(self.data, base)?) != name {
                    continue;
                }
                let low = u32_in(self.data, base + 4)?;
                values.push(if kind == BtfKind::Enum {
                    low as i32 as i64
                } else {
                    (u64::from(u32_in(self.data, base + 8)?) << 32 | u64::from(low)) as i64
                });
            }
        }
        match values.as_slice() {
            [] => bail!("kernel BTF has no enumerator {name}"),
            [first, rest @ ..] if rest.iter().all(|v| v == first) => Ok(*first),
            _ => bail!("kernel BTF gives {name} different values {values:?}: ambiguous"),
        }
    }
}

/// The little-endian u32 at byte `o` of `data`.
fn u32_in(data: &[u8], o: usize) -> Result<u32> {
    data.get(o..o + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| anyhow!("BTF truncated at {o}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the kernel publishes its BTF.
    const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

    /// Needs the build host's BTF, which every machine of ours has; the
    /// offsets are checked for plausibility, the real proof is the lab test
    /// that reads a namespace's MPTCP switch through them.
    #[test]
    fn reads_the_running_kernels_layout() {
        let layout = Layout::from_btf(
            &std::fs::read(VMLINUX_BTF).expect("this host's /sys/kernel/btf/vmlinux"),
        )
        .unwrap();
        assert!(
            layout.task_nsproxy > 0 && layout.task_nsproxy < 16384,
            "{layout:?}"
        );
        assert!(layout.nsproxy_net_ns < 128, "{layout:?}");
        assert_eq!(
            layout.net_generic_ptr, 0,
            "ptr shares a union at the start: {layout:?}"
        );
        assert!(layout.pernet_mptcp_enabled.is_some(), "{layout:?}");
        // The fallback mode's sysctl program: `head` and `table` open
        // `struct bpf_sysctl_kern`, and a namespace's sysctl set is inside it.
        let sysctl = layout.sysctl.as_ref().expect("the sysctl layout");
        assert_eq!((sysctl.kern_head, sysctl.kern_table), (0, 8), "{layout:?}");
        assert!(sysctl.net_sysctls > 0, "{layout:?}");
        let filter = layout
            .sock_filter
            .expect("this host's kernel has cgroup BPF");
        // rcu_head (16 bytes) comes before the items; prog is their first member.
        assert_eq!(filter.array_first_prog, 16, "{filter:?}");
        // static_key_false is 16 bytes (atomic_t enabled, then a pointer);
        // CGROUP_INET_SOCK_CREATE is some element of the array.
        let key = layout.sock_create_key.expect("struct static_key_false");
        assert_eq!(key % 16, 0, "{key}");
        let close = layout.close.expect("this host's kernel has MPTCP");
        // skc_state follows the addresses, ports and family in sock_common.
        assert!(close.sk_state > 0 && close.sk_state < 64, "{close:?}");
    }

    #[test]
    fn rejects_non_btf() {
        assert!(Layout::from_btf(b"not btf at all, not at all").is_err());
    }

    /// A small BTF image: `int`, then the given composites (name, members of
    /// (name, byte offset)), then optionally a kind no reader knows (31).
    fn image(composites: &[(&str, &[(&str, u32)])], unknown_kind_at_end: bool) -> Vec<u8> {
        image_with_enums(composites, &[], unknown_kind_at_end)
    }

    /// [`image`] with anonymous enums (their enumerators, name and value)
    /// before the composites.
    fn image_with_enums(
        composites: &[(&str, &[(&str, u32)])],
        enums: &[&[(&str, i32)]],
        unknown_kind_at_end: bool,
    ) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut add = |s: &str| {
            let at = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            at
        };
        let mut types: Vec<u32> = vec![add("int"), 1 << 24, 4, 32]; // INT, 32 bits
        for enumerators in enums {
            types.extend([0, (6 << 24) | enumerators.len() as u32, 4]);
            for (name, value) in *enumerators {
                types.extend([add(name), *value as u32]);
            }
        }
        for (name, members) in composites {
            types.extend([add(name), (4 << 24) | members.len() as u32, 64]);
            for (member, offset) in *members {
                types.extend([add(member), 1, offset * 8]);
            }
        }
        if unknown_kind_at_end {
            types.extend([0, 31 << 24, 0]);
        }
        let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut out = Vec::new();
        out.extend(BTF_MAGIC.to_le_bytes());
        out.extend([1u8, 0]);
        for word in [
            24,
            0,
            type_bytes.len() as u32,
            type_bytes.len() as u32,
            strings.len() as u32,
        ] {
            out.extend(word.to_le_bytes());
        }
        out.extend(type_bytes);
        out.extend(strings);
        out
    }

    #[test]
    fn duplicated_struct_names_that_disagree_are_an_error() {
        let data = image(
            &[("pair", &[("a", 0), ("b", 8)]), ("pair", &[("b", 4)])],
            false,
        );
        let btf = Btf::parse(&data).unwrap();
        assert!(btf
            .offset("pair", "a")
            .unwrap_err()
            .to_string()
            .contains("ambiguous"));
        assert!(btf
            .offset("pair", "b")
            .unwrap_err()
            .to_string()
            .contains("ambiguous"));
        // Two definitions that agree are not ambiguous.
        let data = image(&[("same", &[("x", 16)]), ("same", &[("x", 16)])], false);
        assert_eq!(Btf::parse(&data).unwrap().offset("same", "x").unwrap(), 16);
    }

    #[test]
    fn an_unknown_kind_after_the_needed_structs_does_not_stop_the_reader() {
        let data = image(&[("net", &[("gen", 8)])], true);
        let btf = Btf::parse(&data).unwrap();
        assert_eq!(btf.offset("net", "gen").unwrap(), 8);
        let err = btf.offset("nsproxy", "net_ns").unwrap_err().to_string();
        assert!(err.contains("unknown BTF kind 31"), "{err}");
    }

    #[test]
    fn enumerators_are_read_and_disagreeing_ones_are_an_error() {
        let data = image_with_enums(
            &[("after", &[("x", 4)])],
            &[
                &[("A_ZERO", 0), ("A_NEG", -1), ("SAME", 2)],
                &[("SAME", 2), ("SPLIT", 1)],
                &[("SPLIT", 3)],
            ],
            false,
        );
        let btf = Btf::parse(&data).unwrap();
        assert_eq!(btf.enumerator("A_NEG").unwrap(), -1);
        assert_eq!(btf.enumerator("SAME").unwrap(), 2);
        assert!(btf
            .enumerator("SPLIT")
            .unwrap_err()
            .to_string()
            .contains("ambiguous"));
        assert!(btf.enumerator("NONE").is_err());
        // A struct after the enums is still found: their entries were skipped
        // by their size.
        assert_eq!(btf.offset("after", "x").unwrap(), 4);
    }
}
