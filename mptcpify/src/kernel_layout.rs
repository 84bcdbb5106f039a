//! Where the BPF program finds a task's network namespace and that
//! namespace's MPTCP switch in kernel memory: struct field offsets read from
//! the running kernel's BTF, and the address of `mptcp_pernet_id` from
//! /proc/kallsyms. aya has no CO-RE for Rust BPF programs, so the offsets are
//! computed here and handed to the program in its config map.
//!
//! The chain the program follows:
//! `current->nsproxy->net_ns` → `net->ns.inum` (the netns inode, as in
//! `/proc/PID/ns/net`) and `net->gen->ptr[mptcp_pernet_id]->mptcp_enabled`.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// The offsets the program needs, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub task_nsproxy: u32,
    pub nsproxy_net_ns: u32,
    pub net_ns_inum: u32,
    pub net_gen: u32,
    pub net_generic_ptr: u32,
    /// `None` when the kernel's BTF has no `struct mptcp_pernet`.
    pub pernet_mptcp_enabled: Option<u32>,
}

impl Layout {
    pub fn from_btf(data: &[u8]) -> Result<Layout> {
        let btf = Btf::parse(data)?;
        let net_ns_inum = btf.offset("net", "ns")? + btf.offset("ns_common", "inum")?;
        Ok(Layout {
            task_nsproxy: btf.offset("task_struct", "nsproxy")?,
            nsproxy_net_ns: btf.offset("nsproxy", "net_ns")?,
            net_ns_inum,
            net_gen: btf.offset("net", "gen")?,
            net_generic_ptr: btf.offset("net_generic", "ptr")?,
            pernet_mptcp_enabled: btf.offset("mptcp_pernet", "mptcp_enabled").ok(),
        })
    }

    pub fn from_running_kernel() -> Result<Layout> {
        let data =
            std::fs::read("/sys/kernel/btf/vmlinux").context("reading /sys/kernel/btf/vmlinux")?;
        Self::from_btf(&data)
    }
}

/// The address of the kernel variable holding MPTCP's pernet id, when
/// /proc/kallsyms shows it (needs CONFIG_KALLSYMS_ALL, as in Debian, Fedora
/// and RHEL kernels, and root to see real addresses).
pub fn mptcp_pernet_id_address() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let address = parts.next()?;
        let _kind = parts.next()?;
        (parts.next()? == "mptcp_pernet_id")
            .then(|| u64::from_str_radix(address, 16).ok())
            .flatten()
            .filter(|&a| a != 0)
    })
}

/// Just enough of a BTF reader to find struct members: names and bit offsets
/// of the members of structs and unions.
struct Btf<'a> {
    /// Struct/union name → members (name, type id, bit offset).
    composites: HashMap<&'a str, Vec<(&'a str, u32, u32)>>,
    /// Type id → composite name, for anonymous members ("" for anonymous).
    by_id: HashMap<u32, &'a str>,
    anonymous: HashMap<u32, Vec<(&'a str, u32, u32)>>,
}

impl<'a> Btf<'a> {
    fn parse(data: &'a [u8]) -> Result<Self> {
        let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let u32_at = |o: usize| -> Result<u32> {
            data.get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| anyhow!("BTF truncated at {o}"))
        };
        if u16_at(0) != Some(BTF_MAGIC) {
            bail!("not little-endian BTF");
        }
        let hdr_len = u32_at(4)? as usize;
        let type_off = hdr_len + u32_at(8)? as usize;
        let type_len = u32_at(12)? as usize;
        let str_off = hdr_len + u32_at(16)? as usize;
        let str_len = u32_at(20)? as usize;
        let strings = data
            .get(str_off..str_off + str_len)
            .ok_or_else(|| anyhow!("BTF strings out of range"))?;
        let name = |off: u32| -> &'a str {
            let rest = strings.get(off as usize..).unwrap_or_default();
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            std::str::from_utf8(&rest[..end]).unwrap_or_default()
        };
        let mut btf = Btf {
            composites: HashMap::new(),
            by_id: HashMap::new(),
            anonymous: HashMap::new(),
        };
        let mut pos = type_off;
        let end = type_off + type_len;
        let mut id = 1u32;
        while pos < end {
            let name_off = u32_at(pos)?;
            let info = u32_at(pos + 4)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            pos += 12;
            let extra = match kind {
                1 | 14 | 17 => 4,
                3 => 12,
                4 | 5 => 12 * vlen,
                6 | 13 => 8 * vlen,
                15 | 19 => 12 * vlen,
                2 | 7..=12 | 16 | 18 => 0,
                other => bail!("unknown BTF kind {other}"),
            };
            if kind == KIND_STRUCT || kind == KIND_UNION {
                let mut members = Vec::with_capacity(vlen);
                for m in 0..vlen {
                    let base = pos + 12 * m;
                    let offset = u32_at(base + 8)?;
                    let bits = if kind_flag {
                        offset & 0x00ff_ffff
                    } else {
                        offset
                    };
                    members.push((name(u32_at(base)?), u32_at(base + 4)?, bits));
                }
                let type_name = name(name_off);
                btf.by_id.insert(id, type_name);
                if type_name.is_empty() {
                    btf.anonymous.insert(id, members);
                } else {
                    // The first definition wins; BTF holds one per name in vmlinux.
                    btf.composites.entry(type_name).or_insert(members);
                }
            }
            pos += extra;
            id += 1;
        }
        Ok(btf)
    }

    /// Byte offset of `member` in struct/union `composite`, looking through
    /// anonymous structs and unions.
    fn offset(&self, composite: &str, member: &str) -> Result<u32> {
        let members = self
            .composites
            .get(composite)
            .ok_or_else(|| anyhow!("kernel BTF has no struct {composite}"))?;
        let bits = find(self, members, member, 0)
            .ok_or_else(|| anyhow!("kernel BTF: struct {composite} has no member {member}"))?;
        if bits % 8 != 0 {
            bail!("{composite}.{member} is a bitfield");
        }
        Ok(bits / 8)
    }
}

fn find(btf: &Btf, members: &[(&str, u32, u32)], wanted: &str, base: u32) -> Option<u32> {
    for (name, type_id, bits) in members {
        if *name == wanted {
            return Some(base + bits);
        }
        if name.is_empty() {
            if let Some(inner) = btf.anonymous.get(type_id) {
                if let Some(found) = find(btf, inner, wanted, base + bits) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// What the program gets to keep sockets TCP where MPTCP is off.
pub struct Guard {
    pub layout: mptcpify_common::maps::NetnsLayout,
    /// Set when the program cannot read other namespaces' MPTCP switch (no
    /// `mptcp_pernet_id` in /proc/kallsyms): only mptcpify's own namespace,
    /// checked here, is upgraded.
    pub fallback: Option<String>,
}

pub fn guard() -> Result<Guard> {
    let layout = Layout::from_running_kernel()?;
    let address = mptcp_pernet_id_address();
    let mut netns = mptcpify_common::maps::NetnsLayout {
        pernet_id_addr: 0,
        task_nsproxy: layout.task_nsproxy,
        nsproxy_net_ns: layout.nsproxy_net_ns,
        net_ns_inum: layout.net_ns_inum,
        net_gen: layout.net_gen,
        net_generic_ptr: layout.net_generic_ptr,
        pernet_mptcp_enabled: 0,
    };
    let fallback = match (address, layout.pernet_mptcp_enabled) {
        (Some(address), Some(offset)) => {
            netns.pernet_id_addr = address;
            netns.pernet_mptcp_enabled = offset;
            None
        }
        (None, _) => Some(
            "mptcp_pernet_id is not in /proc/kallsyms (kernel without CONFIG_KALLSYMS_ALL?)".into(),
        ),
        (_, None) => Some("the kernel's BTF has no struct mptcp_pernet".into()),
    };
    Ok(Guard {
        layout: netns,
        fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs the build host's BTF, which every machine of ours has; the
    /// offsets are checked for plausibility, the real proof is the lab test
    /// that reads a namespace's MPTCP switch through them.
    #[test]
    fn reads_the_running_kernels_layout() {
        let layout = Layout::from_running_kernel().expect("this host's /sys/kernel/btf/vmlinux");
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
    }

    #[test]
    fn rejects_non_btf() {
        assert!(Layout::from_btf(b"not btf at all, not at all").is_err());
    }
}
