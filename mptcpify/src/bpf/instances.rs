//! Other mptcpify instances on this machine, found in the kernel (so a
//! sidecar in another container counts too). Instances chain on the same
//! hook and the first non-zero return wins, so together a socket is MPTCP
//! when any of them upgrades it: their selections add up. That is what each
//! asked for as long as none excludes anything (sidecars with `--netns
//! self`, a `run` next to a system-wide instance); an exclusion cannot hold
//! against another instance's selection, so then mptcpify refuses to add
//! itself, unless told to.

use std::os::fd::AsFd;

use aya::maps::MapInfo;
use aya::programs::loaded_programs;
use mptcpify_common::maps::{self, Counter, SelectorName};
use mptcpify_core::output::tallies::{self, FallbackTally, RefusedTally, SelectorTally};

use crate::errors::Failure;
use crate::policy::Policy;

/// The upgrader's program name, as the kernel keeps it (first 15 bytes).
pub const PROGRAM_NAME: &str = "mptcpify";

/// What another instance selects, from its CONFIG map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub program_id: u32,
    /// `Config::include_kinds` (0: system-wide) and `exclude_kinds`; the
    /// first two fields of every version's `Config`.
    pub include_kinds: u32,
    pub exclude_kinds: u32,
}

/// Whether `policy` may be added next to `others`: refused when any side
/// excludes something.
pub fn check(policy: &Policy, others: &[Instance], allow: bool) -> Result<(), Failure> {
    let Some(first) = others.first() else {
        return Ok(());
    };
    let ids: Vec<String> = others.iter().map(|o| o.program_id.to_string()).collect();
    let ours_clashes = policy.excludes_anything();
    let theirs_clash = others.iter().any(|o| o.exclude_kinds != 0);
    if !(ours_clashes || theirs_clash) {
        eprintln!(
            "mptcpify: note: another mptcpify is attached (BPF program id {}); a socket is MPTCP \
             when either upgrades it",
            ids.join(", ")
        );
        return Ok(());
    }
    let detail = format!(
        "BPF program id {} (see `bpftool prog show id {}`), which {}; this one {}",
        ids.join(", "),
        first.program_id,
        describe(first.include_kinds == 0, first.exclude_kinds != 0),
        describe(policy.system_wide(), policy.excludes_anything()),
    );
    if allow {
        eprintln!("mptcpify: warning: another mptcpify is attached: {detail}; attaching anyway (--allow-other-instances)");
        return Ok(());
    }
    Err(Failure::OtherInstance { detail })
}

fn describe(system_wide: bool, excludes: bool) -> &'static str {
    match (system_wide, excludes) {
        (true, true) => "upgrades every process but some",
        (true, false) => "upgrades every process",
        (false, true) => "selects some processes and excludes others",
        (false, false) => "selects some processes",
    }
}

/// Every attached mptcpify upgrader (this process's own has not been
/// loaded yet when this is asked at start; on reload, see [`others_than`]).
pub fn attached() -> Vec<Instance> {
    loaded_programs()
        .flatten()
        .filter(|p| p.name_as_str() == Some(PROGRAM_NAME))
        .filter_map(|p| {
            let config = p
                .map_ids()
                .ok()
                .flatten()?
                .into_iter()
                .filter_map(|id| MapInfo::from_id(id).ok())
                .find(|m| m.name_as_str() == Some(maps::CONFIG))?;
            let head = first_words(&config)?;
            Some(Instance {
                program_id: p.id(),
                include_kinds: head[0],
                exclude_kinds: head[1],
            })
        })
        .collect()
}

/// The program ids of every attached mptcpify upgrader; `Err` when the
/// kernel's program list cannot be read (it needs CAP_SYS_ADMIN).
pub fn attached_ids() -> Result<Vec<u32>, String> {
    let mut ids = Vec::new();
    for program in loaded_programs() {
        let program = program.map_err(|e| e.to_string())?;
        if program.name_as_str() == Some(PROGRAM_NAME) {
            ids.push(program.id());
        }
    }
    Ok(ids)
}

/// Every attached mptcpify upgrader but program `own` (this instance's).
pub fn others_than(own: Option<u32>) -> Vec<Instance> {
    attached()
        .into_iter()
        .filter(|i| Some(i.program_id) != own)
        .collect()
}

/// The first two u32 of entry 0 of an array map whose value type may be
/// another version's `Config`.
fn first_words(map: &MapInfo) -> Option<[u32; 2]> {
    let value = lookup_raw(map, 0, map.value_size().max(8) as usize)?;
    let word = |i: usize| u32::from_ne_bytes(value[i..i + 4].try_into().unwrap());
    Some([word(0), word(4)])
}

/// Entry `key` of an array map as `len` raw bytes (BPF_MAP_LOOKUP_ELEM):
/// aya's typed maps insist on this version's value size, and another
/// instance may be another version. `len` must cover the whole value (for a
/// per-CPU map: the 8-byte-rounded value times the possible CPUs).
pub fn lookup_raw(map: &MapInfo, key: u32, len: usize) -> Option<Vec<u8>> {
    let fd = map.fd().ok()?;
    let mut value = vec![0u8; len];
    crate::sys::bpf::lookup(fd.as_fd(), &key, &mut value).ok()?;
    Some(value)
}

/// A COUNTERS map's values, summed over CPUs (another version's map may
/// have fewer). A per-CPU lookup returns one 8-byte slot per possible CPU.
pub fn read_counters(map: &MapInfo) -> Vec<(Counter, u64)> {
    let cpus = aya::util::nr_cpus().unwrap_or(1);
    Counter::ALL
        .into_iter()
        .filter(|counter| (*counter as u32) < map.max_entries())
        .filter_map(|counter| {
            let bytes = lookup_raw(map, counter as u32, 8 * cpus)?;
            let sum = bytes
                .chunks_exact(8)
                .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
                .sum();
            Some((counter, sum))
        })
        .collect()
}

/// The loaded programs of ids `ids` (aya reads a program's info by fd,
/// not by id: the kernel's list is walked).
pub fn programs(ids: &[u32]) -> Vec<aya::programs::ProgramInfo> {
    loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| ids.contains(&p.id()))
        .collect()
}

/// The COUNTERS map of the upgrader `program`.
pub fn counters_map(program: &aya::programs::ProgramInfo) -> Option<MapInfo> {
    program
        .map_ids()
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|id| MapInfo::from_id(id).ok())
        .find(|m| m.name_as_str() == Some(maps::COUNTERS))
}

/// Every map of the instance whose upgrader is `upgrader`: the maps of
/// its programs, found as the loaded programs that share a map with the
/// upgrader (each outcome program shares `CONFIG` or `UPGRADING` with
/// it; another instance's programs share none).
pub fn instance_maps(upgrader: &aya::programs::ProgramInfo) -> Vec<MapInfo> {
    let ids = |p: &aya::programs::ProgramInfo| p.map_ids().ok().flatten().unwrap_or_default();
    let own = ids(upgrader);
    let mut all = own.clone();
    for program in loaded_programs().filter_map(Result::ok) {
        let theirs = ids(&program);
        if program
            .name_as_str()
            .is_some_and(|n| n.starts_with(PROGRAM_NAME))
            && theirs.iter().any(|id| own.contains(id))
        {
            all.extend(theirs);
        }
    }
    all.sort_unstable();
    all.dedup();
    all.into_iter()
        .filter_map(|id| MapInfo::from_id(id).ok())
        .collect()
}

/// Every entry of the per-CPU `u64` array `map`, summed over CPUs.
fn sums(map: &MapInfo) -> Vec<u64> {
    let cpus = aya::util::nr_cpus().unwrap_or(1);
    (0..map.max_entries())
        .map(|key| {
            lookup_raw(map, key, 8 * cpus).map_or(0, |bytes| {
                bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
                    .sum()
            })
        })
        .collect()
}

/// What an instance counted per selector, fallback reason and refused
/// option (empty parts for a version without those maps).
#[derive(Default)]
pub struct Tallies {
    pub selectors: Vec<SelectorTally>,
    pub fallbacks: Vec<FallbackTally>,
    pub refused_options: Vec<RefusedTally>,
}

/// The [`Tallies`] of the instance whose maps are `maps` ([`instance_maps`]).
pub fn read_tallies(maps: &[MapInfo]) -> Tallies {
    let named = |name: &str| maps.iter().find(|m| m.name_as_str() == Some(name));
    let size = std::mem::size_of::<SelectorName>();
    let names: Vec<String> = named(maps::SELECTOR_NAMES)
        .filter(|m| m.value_size() as usize == size)
        .map(|m| {
            (0..m.max_entries())
                .map(|key| {
                    lookup_raw(m, key, size).map_or_else(String::new, |raw| {
                        SelectorName(raw.try_into().expect("the value's size"))
                            .as_str()
                            .into()
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let counts = |name: &str| named(name).map(sums).unwrap_or_default();
    Tallies {
        selectors: tallies::selectors(&names, &counts(maps::SELECTOR_COUNTERS)),
        fallbacks: tallies::fallbacks(&counts(maps::FALLBACKS)),
        refused_options: tallies::refused(&counts(maps::REFUSED)),
    }
}

/// A process that holds an instance's program (status, detach).
#[derive(serde::Serialize)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
}

/// Processes with a file descriptor on program `id` (its link or the
/// program itself): /proc/PID/fdinfo says `prog_id:` for both. By hand:
/// procfs parses fdinfo's common fields only.
pub fn holders(id: u32) -> Vec<Holder> {
    let needle = format!("prog_id:\t{id}\n");
    let mut holders = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return holders;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fdinfo")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_to_string(fd.path()).is_ok_and(|info| info.contains(&needle)));
        if holds {
            let command = std::fs::read(entry.path().join("cmdline"))
                .map(|raw| {
                    raw.split(|&b| b == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            holders.push(Holder { pid, command });
        }
    }
    holders
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Selectors;

    fn policy(comm: &[&str], exclude: &[&str]) -> Policy {
        Policy::resolve(&Selectors {
            comm: comm.iter().map(|s| s.to_string()).collect(),
            exclude_comm: exclude.iter().map(|s| s.to_string()).collect(),
            ..Selectors::default()
        })
        .unwrap()
    }

    const SIDECAR: Instance = Instance {
        program_id: 7,
        include_kinds: maps::kind::NETNS,
        exclude_kinds: 0,
    };

    #[test]
    fn selections_add_up_and_exclusions_are_refused() {
        let system_wide = Instance {
            include_kinds: 0,
            ..SIDECAR
        };
        assert!(check(&policy(&["a"], &[]), &[], false).is_ok());
        assert!(check(&policy(&["a"], &[]), &[SIDECAR], false).is_ok());
        assert!(check(&policy(&[], &[]), &[SIDECAR], false).is_ok());
        assert!(check(&policy(&["a"], &[]), &[system_wide], false).is_ok());
        for (ours, theirs) in [
            (policy(&[], &["b"]), SIDECAR),
            (policy(&["a"], &["b"]), system_wide),
            (
                policy(&["a"], &[]),
                Instance {
                    exclude_kinds: maps::kind::COMM,
                    ..SIDECAR
                },
            ),
        ] {
            let err = check(&ours, &[theirs], false).unwrap_err();
            assert_eq!(err.exit_code(), crate::errors::exit::OTHER_INSTANCE);
            assert!(err.to_string().contains("program id 7"), "{err}");
            assert!(check(&ours, &[theirs], true).is_ok());
        }
    }
}
