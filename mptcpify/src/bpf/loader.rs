//! Loads the embedded BPF object, writes the policy into its maps, attaches
//! it, and reads back counters and events. Detaching is dropping [`Attached`]
//! (or the process dying: the kernel drops the link with its last fd).

use std::time::Duration;

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        links::{CgroupAttachMode, FdLink, PinnedLink},
        BtfTracePoint, CgroupSysctl, FEntry, FExit, FModRet, ProgramError,
    },
    Ebpf, EbpfLoader,
};
use mptcpify_common::event::origin;
use mptcpify_common::maps::{
    self, flag, present, role, CgroupPath, CgroupRule, CheckSlot, Config, Counter, PidRule,
    SelectorCounter, SelectorName,
};

use crate::bpf::comm_slots::{self, CommSlots};
use crate::bpf::event_source::EventSource;
use crate::bpf::field_offsets;
use crate::bpf::selfcheck::{self, Landlock};
use crate::errors::Failure;
use crate::kernel::layout::{self, Guard};
use crate::kernel::preflight::{kernel_release, lockdown_mode, Kernel, HOOK};
use crate::policy::Policy;
use mptcpify_core::plan::{self, Contents, Step};
use mptcpify_core::selector_numbers::Numbers;

/// The object built by `cargo xtask build` (see build.rs).
pub(crate) static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("MPTCPIFY_BPF_OBJECT"));
/// The upgrader's function name in the object.
const PROGRAM: &str = "mptcpify";
/// The start-up self-check program (see `selfcheck`).
const CHECK_PROGRAM: &str = "mptcpify_check";
/// Loaded by `mptcpify status` to learn whether trampoline programs load.
const PROBE_PROGRAM: &str = "mptcpify_probe";
/// The program that keeps cgroup rules on their paths (on `cgroup_mkdir`).
const FOLLOW_PROGRAM: &str = "mptcpify_follow";
const FOLLOW_TRACEPOINT: &str = "cgroup_mkdir";
/// Its type in BTF (include/trace/bpf_probe.h: `btf_trace_##call`).
const FOLLOW_TRACEPOINT_TYPEDEF: &str = "btf_trace_cgroup_mkdir";
/// The programs that report socket options MPTCP refuses, by the kernel
/// function each follows (see mptcpify-ebpf/src/options.rs).
const OPTION_PROGRAMS: [(&str, &str); 2] = [
    ("mptcpify_setsockopt", "mptcp_setsockopt"),
    ("mptcpify_getsockopt", "mptcp_getsockopt"),
];

/// Loads the program `$name` of type `$kind` (FEntry, FExit, BtfTracePoint:
/// aya gives them no common trait) against `$target`, a kernel function
/// (or tracepoint: `tracepoint $target`) whose BTF id is in `$ids`,
/// attaches it and adds its link to `$links`; `Err(String)` says which step
/// failed.
macro_rules! attach_traced {
    ($ebpf:expr, $kind:ty, $name:expr, $target:expr, $ids:expr, $links:expr) => {
        attach_traced!(@ $ebpf, $kind, $name, $target, $ids.func($target), $links)
    };
    ($ebpf:expr, $kind:ty, $name:expr, tracepoint $target:expr, $ids:expr, $links:expr) => {
        attach_traced!(@ $ebpf, $kind, $name, $target,
            $ids.get(&format!("btf_trace_{}", $target), layout::BtfKind::Typedef), $links)
    };
    (@ $ebpf:expr, $kind:ty, $name:expr, $target:expr, $id:expr, $links:expr) => {
        (|| -> Result<(), String> {
            let program: &mut $kind = $ebpf
                .program_mut($name)
                .ok_or_else(|| format!("no program {} in the BPF object", $name))?
                .try_into()
                .map_err(|e: ProgramError| e.to_string())?;
            program
                .load_by_id($id?)
                .map_err(|e| format!("loading the program for {}: {e}", $target))?;
            let id = program
                .attach()
                .map_err(|e| format!("attaching to {}: {e}", $target))?;
            let link = program
                .take_link(id)
                .map_err(|e| format!("taking the link to {}: {e}", $target))?;
            $links.push(($name.to_string(), FdLink::from(link)));
            Ok(())
        })()
    };
}

/// The links of the attached programs, by program name: dropped, they
/// detach; pinned ([`Attached::pin`]), they stay.
type Links = Vec<(String, FdLink)>;

pub struct Attached {
    ebpf: Ebpf,
    /// What the self-check found about Landlock on this kernel.
    pub landlock: Landlock,
    /// The fallback mode: the program cannot read other namespaces' MPTCP
    /// switch (see `layout::Guard`).
    pub fallback: bool,
    /// Why refused socket options are not reported on this kernel, if not.
    pub options_unwatched: Option<String>,
    /// Why what upgraded sockets did is not reported on this kernel, if not.
    pub outcomes_unwatched: Option<String>,
    /// Why `mptcpify monitor` cannot be told when an upgraded connection is
    /// established or a subflow closes on this kernel, if not.
    pub live_unwatched: Option<String>,
    /// What the policy maps hold now (see `policy::plan`).
    contents: Contents,
    /// The number each include selector's sockets are counted under.
    numbers: Numbers,
    /// The exact name slots in front of COMMS, kept with it.
    comm_slots: CommSlots,
    /// The possible CPUs and the `STAGED` event slots of each, as loaded.
    stage: (u32, u32),
    /// Whether the program that keeps cgroup rules on their paths runs.
    following: bool,
    /// The programs' links, until [`Attached::pin`] pins them.
    links: Links,
    /// The links pinned, and where.
    pinned: Option<(std::path::PathBuf, Vec<PinnedLink>)>,
}

/// How the upgrader runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Upgrade; `events`: report each upgrade (see [`Attached::take_events`]);
    /// `reloadable`: the policy may change later ([`Attached::reload`]), so
    /// the cgroup follower runs even when the first policy has no cgroup.
    /// `stamped`: each event carries its time ([`flag::STAMP`], for
    /// `--json`).
    Upgrade {
        events: bool,
        reloadable: bool,
        stamped: bool,
    },
    /// `mptcpify audit`: upgrade nothing, report what would be upgraded and
    /// the TCP socket options selected processes set.
    Audit { stamped: bool },
}

/// The programs that tell what each upgraded socket did, by the kernel
/// function each follows (see mptcpify-ebpf/src/outcomes.rs).
/// The accept program comes after the close program: every connection it
/// tags is then told when it closes.
const OUTCOME_PROGRAMS: [(&str, &str); 4] = [
    ("mptcpify_tag", "mptcp_init_sock"),
    ("mptcpify_join", "mptcp_finish_join"),
    ("mptcpify_closed", "mptcp_close"),
    ("mptcpify_accepted", "mptcp_stream_accept"),
];

/// Why a followed socket fell back, where the kernel has a function that
/// is told (6.17+; see mptcpify-ebpf/src/outcomes.rs). Without it the
/// fallback is still seen at close, without its reason.
const FALLBACK_PROGRAM: (&str, &str) = ("mptcpify_fallback", "__mptcp_try_fallback");

/// The programs that tell a monitor an upgraded connection's life (see
/// mptcpify-ebpf/src/outcomes.rs), by the kernel function each follows.
const LIVE_PROGRAMS: [(&str, &str); 2] = [
    ("mptcpify_established", "mptcp_pm_new_connection"),
    ("mptcpify_subflow_closed", "mptcp_close_ssk"),
];

/// The fallback mode's program on sysctl writes (see
/// [`follow_mptcp_switches`]).
const SYSCTL_PROGRAM: &str = "mptcpify_sysctl";

/// The program of `mptcpify audit` and the kernel function it follows.
const AUDIT_PROGRAM: (&str, &str) = ("mptcpify_audit_setsockopt", "tcp_setsockopt");

/// The names the programs need BTF ids of (see [`layout::read`]):
/// the functions and tracepoint they attach to, the kfunc they call,
/// `struct rb_node` (the type it casts to).
pub fn btf_targets() -> Vec<(&'static str, layout::BtfKind)> {
    use layout::BtfKind::{Func, Struct, Typedef};
    let mut targets = vec![
        (HOOK, Func),
        (maps::RDONLY_CAST, Func),
        ("rb_node", Struct),
        (FOLLOW_TRACEPOINT_TYPEDEF, Typedef),
        (AUDIT_PROGRAM.1, Func),
        (FALLBACK_PROGRAM.1, Func),
    ];
    for (_, function) in OUTCOME_PROGRAMS
        .iter()
        .chain(&LIVE_PROGRAMS)
        .chain(&OPTION_PROGRAMS)
    {
        targets.push((function, Func));
    }
    targets
}

/// Whether the programs may mark an event slot whole with a plain store
/// (see maps::STAGE_ORDERED): the JIT turns a BPF store into one `mov`,
/// and x86-64 keeps stores in order.
const STAGE_ORDERED: u32 = cfg!(target_arch = "x86_64") as u32;

/// `kernel`: the BTF ids to load against and what MPTCP supports here.
pub fn attach(
    policy: &Policy,
    guard: &Guard,
    kernel: &Kernel,
    mode: Mode,
) -> Result<Attached, Failure> {
    // aya gets no kernel BTF (EbpfLoader::new would parse it: 12 MB): our
    // reader found every id the programs need (`btf_targets`), and the
    // object needs no CO-RE relocation. The kernel's layout is a read-only
    // global, set before the load: the verifier then checks every field
    // access against BTF once.
    let layout = maps::KernelLayout {
        rb_node_type: kernel
            .ids
            .get("rb_node", layout::BtfKind::Struct)
            .map_err(load_failed)?,
        ..guard.kernel
    };
    let rdonly_cast = kernel.ids.func(maps::RDONLY_CAST).map_err(load_failed)?;
    let hook = kernel.ids.func(HOOK).map_err(load_failed)?;
    let (cpus, slots) = stage_size().map_err(load_failed)?;
    let object = field_offsets::patch(OBJECT, &layout).map_err(load_failed)?;
    let mut ebpf = EbpfLoader::with_btf(None)
        .override_global(maps::KERNEL_LAYOUT, &layout, true)
        .override_global(maps::STAGE_SLOTS, &slots, true)
        .override_global(maps::STAGE_ORDERED, &STAGE_ORDERED, true)
        .map_max_entries(maps::STAGED, cpus * slots)
        .map_max_entries(maps::STAGE_POS, cpus)
        .kfunc(maps::RDONLY_CAST_PLACEHOLDER, rdonly_cast)
        .load(object.bytes())
        .map_err(|e| load_failed(format!("parsing the embedded BPF object: {e}")))?;
    let mut flags = match mode {
        Mode::Upgrade { events: true, .. } => flag::EVENTS,
        Mode::Upgrade { events: false, .. } => 0,
        Mode::Audit { .. } => flag::AUDIT,
    };
    if let Mode::Upgrade { stamped: true, .. } | Mode::Audit { stamped: true } = mode {
        flags |= flag::STAMP;
    }
    if kernel.support.ipv6 {
        flags |= flag::MPTCP_IPV6;
    }
    let mut links = Links::new();
    // Before mptcpify reads any namespace's net.mptcp.enabled (in
    // write_policy): a write after that read is then always seen.
    if let Some(fallback) = &guard.fallback {
        follow_mptcp_switches(&mut ebpf, guard, &mut links).map_err(|why| {
            Failure::FallbackUnsafe {
                fallback: fallback.clone(),
                why,
            }
        })?;
    }
    let mut numbers = Numbers::default();
    let (mut config, contents) = write_policy(&mut ebpf, policy, &mut numbers, guard, flags)?;
    let mut comm_slots = match ebpf.take_map(maps::COMM_SLOTS) {
        Some(aya::maps::Map::Array(data)) => {
            CommSlots::new(data).map_err(|e| load_failed(e.to_string()))?
        }
        _ => {
            return Err(load_failed(format!(
                "no array map {} in the BPF object",
                maps::COMM_SLOTS
            )))
        }
    };
    comm_slots.settle(&comm_slots::table(contents.comm_entries()));

    go_on()?;
    // The self-check runs before the upgrader exists, with the same config.
    let findings = {
        let check = program(&mut ebpf, CHECK_PROGRAM)?;
        check.load_by_id(hook).map_err(classify_load_error)?;
        check
            .attach()
            .map_err(|e| load_failed(format!("attaching the self-check to {HOOK}: {e}")))?;
        let mut slots: Array<_, CheckSlot> = map(&mut ebpf, maps::CHECK)?;
        let findings = selfcheck::run(&mut slots, guard.fallback.is_some());
        program(&mut ebpf, CHECK_PROGRAM)?
            .unload()
            .map_err(|e| load_failed(format!("detaching the self-check: {e}")))?;
        findings?
    };
    go_on()?;
    if let Some(partial) = &findings.partial {
        eprintln!("mptcpify: warning: {partial}");
    }
    // Before the upgrader and the tag program exist: neither ever reads a
    // config without the slot.
    config.mptcp_slot = findings.mptcp_slot;
    if let Landlock::KeepSandboxed { domain_offset } = findings.landlock {
        config.flags |= flag::KEEP_SANDBOXED;
        config.landlock_domain = domain_offset;
    }
    write_config(&mut ebpf, config)?;

    let following = !policy.cgroups.0.is_empty()
        || matches!(
            mode,
            Mode::Upgrade {
                reloadable: true,
                ..
            }
        );
    if following {
        follow_cgroups(&mut ebpf, policy, kernel, &mut links)?;
    }

    // The observers first, the upgrader last: every socket it upgrades is
    // then tagged, reported and counted when it closes (none is made
    // before they watch).
    go_on()?;
    if matches!(mode, Mode::Audit { .. }) {
        let (name, function) = AUDIT_PROGRAM;
        attach_traced!(ebpf, FEntry, name, function, &kernel.ids, links).map_err(load_failed)?;
    }
    go_on()?;
    // An audit upgrades nothing, so there are no refusals to watch (and its
    // own probes of MPTCP's options would be reported).
    let options_unwatched = match mode {
        Mode::Upgrade { .. } => watch_options(&mut ebpf, kernel, &mut links).err(),
        Mode::Audit { .. } => None,
    };
    go_on()?;
    let outcomes_unwatched = match mode {
        Mode::Upgrade { .. } => match watch_outcomes(&mut ebpf, kernel, guard, &mut links) {
            Ok(()) => {
                // Where the kernel tells why (6.17+); else a fallback is
                // still seen at close, and its events say that this kernel
                // does not say why.
                let (name, function) = FALLBACK_PROGRAM;
                let _ = attach_traced!(ebpf, FExit, name, function, &kernel.ids, links);
                // The upgrader notes each upgrade for the tag from its
                // first run on.
                config.flags |= flag::OUTCOMES;
                write_config(&mut ebpf, config)?;
                None
            }
            Err(why) => Some(why),
        },
        Mode::Audit { .. } => None,
    };
    go_on()?;
    let live_unwatched = match (mode, &outcomes_unwatched) {
        (Mode::Audit { .. }, _) => None,
        (_, Some(why)) => Some(why.clone()),
        (_, None) => LIVE_PROGRAMS
            .iter()
            .try_for_each(|(name, function)| {
                attach_traced!(ebpf, FEntry, *name, *function, &kernel.ids, links)
            })
            .err(),
    };
    go_on()?;
    let upgrader = program(&mut ebpf, PROGRAM)?;
    upgrader.load_by_id(hook).map_err(classify_load_error)?;
    go_on()?;
    let id = upgrader
        .attach()
        .map_err(|e| load_failed(format!("attaching to {HOOK}: {e}")))?;
    let link = upgrader
        .take_link(id)
        .map_err(|e| load_failed(format!("taking the link to {HOOK}: {e}")))?;
    links.push((PROGRAM.to_string(), FdLink::from(link)));
    Ok(Attached {
        ebpf,
        landlock: findings.landlock,
        fallback: guard.fallback.is_some(),
        options_unwatched,
        outcomes_unwatched,
        live_unwatched,
        contents,
        numbers,
        comm_slots,
        stage: (cpus, slots),
        following,
        links,
        pinned: None,
    })
}

/// `Err` when a SIGINT or SIGTERM came (held back while attaching, see
/// `held_signals`): the caller drops what it attached.
fn go_on() -> Result<(), Failure> {
    match crate::sys::held_signals::interrupted() {
        Some(signal) => Err(Failure::Interrupted { signal }),
        None => Ok(()),
    }
}

/// Whether this kernel loads BPF trampoline programs (fmod_ret): loads the
/// probe program (which needs no layout), attaches nothing. `Err` when it cannot tell (no
/// privileges, another failure).
/// `hook`: the hook's BTF id.
pub fn trampolines_load(hook: u32) -> Result<bool, String> {
    let mut ebpf = EbpfLoader::with_btf(None)
        .load(OBJECT)
        .map_err(|e| format!("parsing the embedded BPF object: {e}"))?;
    let probe = program(&mut ebpf, PROBE_PROGRAM).map_err(|e| e.to_string())?;
    match probe.load_by_id(hook) {
        Ok(()) => Ok(true),
        Err(err) => match classify_load_error(err) {
            Failure::TrampolinesRefused { .. } => Ok(false),
            other => Err(other.to_string()),
        },
    }
}

/// Attaches the programs that tell what each upgraded socket did. Upgrading
/// does not depend on them: a kernel where they cannot attach is said.
fn watch_outcomes(
    ebpf: &mut Ebpf,
    kernel: &Kernel,
    guard: &Guard,
    links: &mut Links,
) -> Result<(), String> {
    guard.close.clone()?;
    attach_traced!(
        ebpf,
        FEntry,
        OUTCOME_PROGRAMS[0].0,
        OUTCOME_PROGRAMS[0].1,
        &kernel.ids,
        links
    )?;
    attach_traced!(
        ebpf,
        FExit,
        OUTCOME_PROGRAMS[1].0,
        OUTCOME_PROGRAMS[1].1,
        &kernel.ids,
        links
    )?;
    attach_traced!(
        ebpf,
        FEntry,
        OUTCOME_PROGRAMS[2].0,
        OUTCOME_PROGRAMS[2].1,
        &kernel.ids,
        links
    )?;
    attach_traced!(
        ebpf,
        FExit,
        OUTCOME_PROGRAMS[3].0,
        OUTCOME_PROGRAMS[3].1,
        &kernel.ids,
        links
    )
}

/// The fallback mode's program that tells the upgrader where a
/// namespace's MPTCP switch is whenever `net.mptcp.enabled` is written
/// (mptcpify-ebpf/src/sysctl.rs). The kernel runs a `cgroup/sysctl`
/// program for writes by tasks in its cgroup and below, so it is attached
/// at the hierarchy's root, alongside any other tool's (multi-attach: it
/// never replaces one, and never refuses a write). `Err` says why it
/// cannot follow every write here.
fn follow_mptcp_switches(ebpf: &mut Ebpf, guard: &Guard, links: &mut Links) -> Result<(), String> {
    guard.sysctl.clone()?;
    let root = crate::policy::cgroup::mount_point().map_err(|e| e.to_string())?;
    let dir = std::fs::File::open(&root).map_err(|e| format!("opening {}: {e}", root.display()))?;
    // The hierarchy's root cgroup has id 1 (kernfs numbers it first); a
    // cgroup namespace's own mount is rooted lower and sees only its part.
    let id = std::os::unix::fs::MetadataExt::ino(
        &dir.metadata()
            .map_err(|e| format!("reading {}: {e}", root.display()))?,
    );
    if id != 1 {
        return Err(format!(
            "the cgroup2 mount at {} is not the hierarchy's root (cgroup id {id}, a cgroup \
             namespace's view): writes from outside it would go unseen",
            root.display()
        ));
    }
    let program: &mut CgroupSysctl = ebpf
        .program_mut(SYSCTL_PROGRAM)
        .ok_or_else(|| format!("no program {SYSCTL_PROGRAM} in the BPF object"))?
        .try_into()
        .map_err(|e: ProgramError| e.to_string())?;
    program
        .load()
        .map_err(|e| format!("loading the cgroup/sysctl program: {e}"))?;
    // A link (BPF_LINK_CREATE, which aya uses from 5.7 on) takes no flags
    // and always attaches alongside the others (kernel/bpf/cgroup.c,
    // `cgroup_bpf_link_attach`): aya's "single" mode is the flags 0 it needs.
    let id = program
        .attach(&dir, CgroupAttachMode::Single)
        .map_err(|e| {
            format!(
                "attaching a cgroup/sysctl program at {}: {:#} (another tool's program there \
                 may not allow others)",
                root.display(),
                anyhow::Error::from(e)
            )
        })?;
    let link = program
        .take_link(id)
        .map_err(|e| format!("taking the cgroup/sysctl link: {e}"))?;
    let link = FdLink::try_from(link).map_err(|e| format!("the cgroup/sysctl link: {e}"))?;
    links.push((SYSCTL_PROGRAM.to_string(), link));
    Ok(())
}

/// Attaches the programs that report refused socket options. Upgrading
/// does not depend on them: a kernel where they cannot attach is said, not
/// refused.
fn watch_options(ebpf: &mut Ebpf, kernel: &Kernel, links: &mut Links) -> Result<(), String> {
    for (name, function) in OPTION_PROGRAMS {
        attach_traced!(ebpf, FExit, name, function, &kernel.ids, links)?;
    }
    Ok(())
}

/// Attaches the program that writes a re-created cgroup's id into its rule,
/// then takes each rule's id afresh: a cgroup re-created between resolving
/// the policy and this point is caught here, one created later by the
/// program.
fn follow_cgroups(
    ebpf: &mut Ebpf,
    policy: &Policy,
    kernel: &Kernel,
    links: &mut Links,
) -> Result<(), Failure> {
    attach_traced!(
        ebpf,
        BtfTracePoint,
        FOLLOW_PROGRAM,
        tracepoint FOLLOW_TRACEPOINT,
        &kernel.ids,
        links
    )
    .map_err(load_failed)?;
    refresh_cgroup_ids(ebpf, policy, |index| Some(index as u32))
}

/// Takes the id of each of `policy`'s cgroups afresh (one re-created
/// since the policy was resolved) into its rule's slot, `slot_of` its
/// index in the policy.
fn refresh_cgroup_ids(
    ebpf: &mut Ebpf,
    policy: &Policy,
    slot_of: impl Fn(usize) -> Option<u32>,
) -> Result<(), Failure> {
    let mut rules: Array<_, CgroupRule> = map(ebpf, maps::CGROUPS)?;
    for (index, (cgroup, _, _)) in policy.cgroups.0.iter().enumerate() {
        let (Some(id), Some(slot)) = (cgroup.current_id(), slot_of(index)) else {
            continue;
        };
        let mut rule = rules
            .get(&slot, 0)
            .map_err(|e| load_failed(format!("reading {}: {e}", maps::CGROUPS)))?;
        if rule.id != id {
            rule.id = id;
            rules
                .set(slot, rule, 0)
                .map_err(|e| load_failed(format!("writing {}: {e}", maps::CGROUPS)))?;
        }
    }
    Ok(())
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut FModRet, Failure> {
    ebpf.program_mut(name)
        .ok_or_else(|| load_failed(format!("no program {name} in the BPF object")))?
        .try_into()
        .map_err(|e: ProgramError| load_failed(e.to_string()))
}

fn write_config(ebpf: &mut Ebpf, config: Config) -> Result<(), Failure> {
    let mut array: Array<_, Config> = map(ebpf, maps::CONFIG)?;
    array
        .set(0, config, 0)
        .map_err(|e| load_failed(format!("writing {}: {e}", maps::CONFIG)))
}

/// Fills every policy map the way a reload does: the plan from the empty
/// policy ([`plan::plan`]), applied step by step (the program is not
/// attached yet, so no order is needed, but one writer is). Returns the
/// config written and what the maps hold.
fn write_policy(
    ebpf: &mut Ebpf,
    policy: &Policy,
    numbers: &mut Numbers,
    guard: &Guard,
    flags: u32,
) -> Result<(Config, Contents), Failure> {
    let mut config = Config {
        flags,
        ..Config::default()
    };
    if guard.kernel.present & present::SOCK_FILTER != 0 {
        config.flags |= flag::KEEP_FILTERED;
    }
    write_config(ebpf, config)?;
    // Policy::resolve checked the counts against the maps' sizes; a path
    // too long to follow is the operator's to fix.
    for (cgroup, _, _) in &policy.cgroups.0 {
        if CgroupPath::new(cgroup.relative.as_bytes()).is_none() {
            return Err(Failure::BadSelector {
                what: format!(
                    "cgroup path {} is longer than the {} bytes mptcpify can follow",
                    cgroup.relative,
                    maps::CGROUP_PATH_LEN - 1
                ),
                fix: "Select a parent cgroup with a shorter path.".into(),
            });
        }
    }
    let netns = if guard.fallback.is_some() {
        checked_namespaces(policy)?
    } else {
        policy.netns.clone()
    };
    let numbered = number_selectors(ebpf, numbers, policy)?;
    let (steps, contents) = plan::plan(&Contents::default(), &policy.contents(&netns, &numbered))?;
    for step in steps {
        apply(ebpf, step)?;
    }
    let config = map::<Array<_, Config>>(ebpf, maps::CONFIG)?
        .get(&0, 0)
        .map_err(|e| load_failed(format!("reading {}: {e}", maps::CONFIG)))?;
    Ok((config, contents))
}

/// Numbers `policy`'s include selectors ([`Numbers::assign`]) and writes
/// their names for `status` (SELECTOR_NAMES), and clears the counts of a
/// number given to another selector; before the maps carry the numbers.
fn number_selectors(
    ebpf: &mut Ebpf,
    numbers: &mut Numbers,
    policy: &Policy,
) -> Result<Vec<u32>, Failure> {
    let assigned = numbers.assign(&policy.selectors());
    let together = assigned.numbers.iter().filter(|&&n| n == 0).count();
    if numbers.tell_together(together) && !policy.system_wide() {
        eprintln!(
            "mptcpify: warning: {together} include selectors past the first {} are counted \
             together in `status` and /metrics (\"{}\"); their sockets are upgraded all the same",
            maps::MAX_SELECTORS - 1,
            mptcpify_core::selector_numbers::unnumbered(false)
        );
    }
    let mut names: Array<_, SelectorName> = map(ebpf, maps::SELECTOR_NAMES)?;
    for (number, name) in numbers.names(policy.system_wide()).iter().enumerate() {
        names
            .set(number as u32, SelectorName::new(name), 0)
            .map_err(|e| load_failed(format!("writing {}: {e}", maps::SELECTOR_NAMES)))?;
    }
    if !assigned.cleared.is_empty() {
        let mut counters: PerCpuArray<_, u64> = map(ebpf, maps::SELECTOR_COUNTERS)?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| load_failed(e.to_string()))?;
        for &number in &assigned.cleared {
            for counter in SelectorCounter::ALL {
                let zeros = aya::maps::PerCpuValues::try_from(vec![0u64; cpus])
                    .map_err(|e| load_failed(e.to_string()))?;
                counters
                    .set(counter.index(number), zeros, 0)
                    .map_err(|e| load_failed(format!("clearing selector {number}: {e}")))?;
            }
        }
    }
    Ok(assigned.numbers)
}

/// The fallback mode (the program cannot read other namespaces' MPTCP
/// switch): the namespaces whose `net.mptcp.enabled` mptcpify read as 1 —
/// its own and each `--netns` — get [`role::MPTCP_CHECKED`]; every other
/// namespace keeps TCP. A selected namespace with MPTCP off is said.
fn checked_namespaces(policy: &Policy) -> Result<crate::policy::Entries<u64>, Failure> {
    let mut netns = policy.netns.clone();
    let mut specs = policy.netns_specs.clone();
    specs.push((crate::policy::netns::resolve("self")?, "self".into()));
    for (key, spec) in specs {
        let enabled =
            crate::policy::netns::mptcp_enabled_at(&spec).map_err(|e| Failure::BadSelector {
                what: format!("--netns {spec}: cannot read its net.mptcp.enabled: {e}"),
                fix: "mptcpify needs to join the namespace (CAP_SYS_ADMIN) to read it.".into(),
            })?;
        if !enabled {
            if spec != "self" {
                eprintln!(
                    "mptcpify: warning: net.mptcp.enabled is 0 in --netns {spec}: its sockets stay TCP"
                );
            }
            continue;
        }
        match netns.0.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, roles, _)) => *roles |= role::MPTCP_CHECKED,
            None => netns.0.push((key, role::MPTCP_CHECKED, String::new())),
        }
    }
    Ok(netns)
}

/// One write of a plan (at start and on reload).
fn apply(ebpf: &mut Ebpf, step: Step) -> Result<(), Failure> {
    let failed = |name: &str, e: aya::maps::MapError| load_failed(format!("writing {name}: {e}"));
    match step {
        Step::Comm(key, roles) | Step::Explain(key, roles) => {
            let name = if matches!(step, Step::Comm(..)) {
                maps::COMMS
            } else {
                maps::EXPLAIN
            };
            let mut comms: HashMap<_, maps::CommKey, u8> = map(ebpf, name)?;
            let key = maps::CommKey(key);
            match roles {
                Some(roles) => comms.insert(key, roles, 0),
                None => comms.remove(&key),
            }
            .map_err(|e| failed(name, e))
        }
        Step::Pid(tgid, rule) => {
            let mut pids: HashMap<_, u32, PidRule> = map(ebpf, maps::PIDS)?;
            match rule {
                Some(rule) => pids.insert(tgid, plan::pid_rule(rule), 0),
                None => pids.remove(&tgid),
            }
            .map_err(|e| failed(maps::PIDS, e))
        }
        Step::Netns(cookie, roles) => {
            let mut netns: HashMap<_, u64, u8> = map(ebpf, maps::NETNS)?;
            match roles {
                Some(roles) => netns.insert(cookie, roles, 0),
                None => netns.remove(&cookie),
            }
            .map_err(|e| failed(maps::NETNS, e))
        }
        Step::Cgroup(slot, rule, path) => {
            let mut rules: Array<_, CgroupRule> = map(ebpf, maps::CGROUPS)?;
            rules
                .set(slot, rule, 0)
                .map_err(|e| failed(maps::CGROUPS, e))?;
            let key = CgroupPath::new(path.as_bytes())
                .ok_or_else(|| load_failed(format!("cgroup path {path} is too long to follow")))?;
            let mut paths: HashMap<_, CgroupPath, u32> = map(ebpf, maps::CGROUP_PATHS)?;
            paths
                .insert(key, slot, 0)
                .map_err(|e| failed(maps::CGROUP_PATHS, e))
        }
        Step::NameFilter(index, filter) => {
            let mut filters: Array<_, maps::NameFilter> = map(ebpf, maps::NAME_FILTER)?;
            filters
                .set(index, filter, 0)
                .map_err(|e| failed(maps::NAME_FILTER, e))
        }
        Step::CgroupPathGone(path) => {
            let mut paths: HashMap<_, CgroupPath, u32> = map(ebpf, maps::CGROUP_PATHS)?;
            if let Some(key) = CgroupPath::new(path.as_bytes()) {
                let _ = paths.remove(&key);
            }
            Ok(())
        }
        Step::Config {
            include_kinds,
            exclude_kinds,
            cgroup_rules,
            explain,
        } => {
            let array: Array<_, Config> = map(ebpf, maps::CONFIG)?;
            let mut config = array
                .get(&0, 0)
                .map_err(|e| load_failed(format!("reading {}: {e}", maps::CONFIG)))?;
            config.include_kinds = include_kinds;
            config.exclude_kinds = exclude_kinds;
            config.cgroup_rules = cgroup_rules;
            if explain {
                config.flags |= flag::EXPLAIN;
            } else {
                config.flags &= !flag::EXPLAIN;
            }
            write_config(ebpf, config)
        }
    }
}

fn map<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<T, Failure>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .map_mut(name)
        .ok_or_else(|| load_failed(format!("no map {name} in the BPF object")))?;
    T::try_from(map).map_err(|e| load_failed(format!("map {name}: {e}")))
}

/// EPERM from BPF_PROG_LOAD after the privilege check passed means the kernel
/// refuses trampoline programs as such (lockdown, hardening patches).
fn classify_load_error(err: ProgramError) -> Failure {
    match &err {
        ProgramError::LoadError { io_error, .. }
            if io_error.raw_os_error() == Some(libc::EPERM) =>
        {
            Failure::TrampolinesRefused {
                release: kernel_release(),
                lockdown: lockdown_mode(),
                detail: "BPF_PROG_LOAD returned EPERM".into(),
            }
        }
        _ => load_failed(format!("loading the program for {HOOK}: {err}")),
    }
}

fn load_failed(detail: String) -> Failure {
    Failure::LoadFailed { detail }
}

/// An error and its sources (aya's errors keep the errno in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Switches on, while a monitor listens, the events of an upgraded
/// connection's life ([`flag::LIVE`]), their times ([`flag::STAMP`]) and,
/// for a quiet instance, the per-socket events it does not print itself
/// ([`flag::EVENTS`]).
pub struct LiveSwitch {
    config: Array<MapData, Config>,
    quiet: bool,
    /// The instance stamps its events anyway (`--json`).
    stamped: bool,
}

impl LiveSwitch {
    pub fn set(&mut self, monitored: bool) -> anyhow::Result<()> {
        let mut config = self.config.get(&0, 0)?;
        let mut bits = flag::LIVE;
        if self.quiet {
            bits |= flag::EVENTS;
        }
        if !self.stamped {
            bits |= flag::STAMP;
        }
        if monitored {
            config.flags |= bits;
        } else {
            config.flags &= !bits;
        }
        Ok(self.config.set(0, config, 0)?)
    }
}

/// What the program counted, summed over CPUs, in [`Counter`] order.
pub type Counts = Vec<(Counter, u64)>;

/// The kernel's own accounting of the program (`kernel.bpf_stats_enabled=1`).
pub struct RunStats {
    /// The upgrader's runs (every `socket()` call) and their time.
    pub runs: u64,
    pub run_time: Duration,
    /// The time of every program of this instance (the upgrader, and the
    /// outcome, option and cgroup programs it attached): what the instance
    /// costs the kernel in all.
    pub all_run_time: Duration,
}

impl Attached {
    pub fn counts(&self) -> anyhow::Result<Counts> {
        let counters: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map(maps::COUNTERS)
                .ok_or_else(|| anyhow::anyhow!("no map {}", maps::COUNTERS))?,
        )?;
        Counter::ALL
            .iter()
            .map(|&c| Ok((c, counters.get(&(c as u32), 0)?.iter().sum())))
            .collect()
    }

    /// The upgraded sockets that exist now, as the kernel keeps them: the
    /// tag program adds each to `TAGGED` when `socket()` creates it, the
    /// close program removes it in `mptcp_close`, which every MPTCP socket
    /// passes when it is released (net/mptcp/protocol.c). `None` where
    /// the outcome programs do not run.
    pub fn open_sockets(&self) -> Option<u64> {
        if self.outcomes_unwatched.is_some() {
            return None;
        }
        let tagged: HashMap<_, u64, maps::Tag> =
            HashMap::try_from(self.ebpf.map(maps::TAGGED)?).ok()?;
        // The accepted connections tagged are not upgraded sockets.
        Some(
            tagged
                .iter()
                .filter_map(Result::ok)
                .filter(|(_, tag)| tag.origin == origin::CREATED)
                .count() as u64,
        )
    }

    /// What this instance counted per selector, fallback reason and
    /// refused option.
    pub fn tallies(&self) -> crate::bpf::instances::Tallies {
        use crate::bpf::instances;
        self.program_id()
            .and_then(|id| instances::programs(&[id]).into_iter().next())
            .map(|upgrader| instances::read_tallies(&instances::instance_maps(&upgrader)))
            .unwrap_or_default()
    }

    /// The upgrader's BPF program id.
    pub fn program_id(&self) -> Option<u32> {
        let program: &FModRet = self.ebpf.program(PROGRAM)?.try_into().ok()?;
        Some(program.info().ok()?.id())
    }

    pub fn run_stats(&self) -> Option<RunStats> {
        let program: &FModRet = self.ebpf.program(PROGRAM)?.try_into().ok()?;
        let info = program.info().ok()?;
        let all_run_time = self
            .ebpf
            .programs()
            .filter_map(|(_, program)| program.info().ok())
            .map(|info| info.run_time())
            .sum();
        Some(RunStats {
            runs: info.run_count(),
            run_time: info.run_time(),
            all_run_time,
        })
    }

    /// The `socket()` calls the kernel made without the upgrader because it
    /// was already running on that CPU: a trampoline program is entered at
    /// most once per CPU (`__bpf_prog_enter_recur`, kernel/bpf/trampoline.c),
    /// and on a preemptible kernel (Debian's cloud kernels since 6.18 are
    /// PREEMPT_LAZY) a task preempted inside the program keeps it entered
    /// until it runs again. Those sockets kept the application's protocol.
    /// The kernel counts them whether or not `bpf_stats_enabled` is on.
    pub fn skipped_calls(&self) -> Option<u64> {
        let program: &FModRet = self.ebpf.program(PROGRAM)?.try_into().ok()?;
        Some(program.info().ok()?.recursion_misses())
    }

    /// Per kernel function an outcome program follows, the calls the
    /// kernel made without it, as for [`Attached::skipped_calls`]: the
    /// events and counts of those calls are missing (a missed
    /// `mptcp_close` leaves its socket counted open, a missed
    /// `mptcp_stream_accept` its connection uncounted). Empty where the
    /// outcome programs do not run.
    pub fn missed_calls(&self) -> Vec<(&'static str, u64)> {
        self.outcome_programs()
            .into_iter()
            .map(|(function, info)| (function, info.recursion_misses()))
            .collect()
    }

    /// The outcome programs' ids, by the kernel function each follows
    /// (what `--metrics` reads their missed calls by).
    pub fn outcome_program_ids(&self) -> Vec<(&'static str, u32)> {
        self.outcome_programs()
            .into_iter()
            .map(|(function, info)| (function, info.id()))
            .collect()
    }

    /// The outcome programs, by the kernel function each follows; none
    /// where they do not run.
    fn outcome_programs(&self) -> Vec<(&'static str, aya::programs::ProgramInfo)> {
        if self.outcomes_unwatched.is_some() {
            return Vec::new();
        }
        OUTCOME_PROGRAMS
            .iter()
            .filter_map(|(name, function)| Some((*function, self.ebpf.program(name)?.info().ok()?)))
            .collect()
    }

    /// Moves a `--netns` rule from namespace cookie `old` to `new`.
    pub fn move_netns_rule(&mut self, old: u64, new: u64, roles: u8) -> anyhow::Result<()> {
        let mut netns: HashMap<_, u64, u8> = HashMap::try_from(
            self.ebpf
                .map_mut(maps::NETNS)
                .ok_or_else(|| anyhow::anyhow!("no map {}", maps::NETNS))?,
        )?;
        netns.insert(new, roles, 0)?;
        let _ = netns.remove(&old);
        // What a later reload starts from.
        if let Some(held) = self.contents.netns.remove(&old) {
            self.contents.netns.insert(new, held);
        }
        Ok(())
    }

    /// Moves the program to `policy` in place (see `policy::plan`): no moment
    /// where a process both policies upgrade gets TCP, or one neither
    /// upgrades gets MPTCP. On an error part-way the maps hold a state
    /// between the two policies; the caller says so.
    pub fn reload(&mut self, policy: &Policy) -> Result<(), Failure> {
        if !policy.cgroups.0.is_empty() && !self.following {
            return Err(load_failed(
                "this instance was started without the cgroup follower (no --config):                  restart it to select by cgroup"
                    .into(),
            ));
        }
        let netns = if self.fallback {
            checked_namespaces(policy)?
        } else {
            policy.netns.clone()
        };
        let numbered = number_selectors(&mut self.ebpf, &mut self.numbers, policy)?;
        let next = policy.contents(&netns, &numbered);
        let (steps, done) = plan::plan(&self.contents, &next)?;
        // The slots that change ask COMMS until its last step (see
        // maps::COMM_SLOTS); on an error part-way they go on asking it.
        let slots = comm_slots::table(next.comm_entries());
        self.comm_slots.unsettle(&slots);
        for step in steps {
            apply(&mut self.ebpf, step)?;
        }
        self.comm_slots.settle(&slots);
        let slots: Vec<String> = done.cgroups.iter().map(|(_, p)| p.clone()).collect();
        refresh_cgroup_ids(&mut self.ebpf, policy, |index| {
            let path = &policy.cgroups.0[index].0.relative;
            slots.iter().position(|p| p == path).map(|s| s as u32)
        })?;
        self.contents = done;
        Ok(())
    }

    /// Pins every link in `dir` (by program name), replacing what is pinned
    /// there: each pin is written beside and renamed over the old one, so
    /// the old program stays attached until the new one is pinned in its
    /// place. Files of `dir` that are not this instance's are removed
    /// (another version's programs).
    /// Returns what became of the sockets the upgrade pinned there before
    /// (a takeover) followed ([`Attached::adopt`]).
    pub fn pin(&mut self, dir: &std::path::Path) -> Result<Adoption, Failure> {
        let pin_failed = |what: String, e: &dyn std::error::Error| Failure::Pin {
            what: format!("{what}: {}", error_chain(e)),
            fix: "Pins need root and the BPF filesystem mounted at /sys/fs/bpf (under \
                  systemd: ReadWritePaths=/sys/fs/bpf)."
                .into(),
        };
        // Taken while the previous upgrade is still pinned: the map of the
        // sockets it follows, which outlives its programs while held.
        let previous = previous_tagged(dir);
        let mut pinned = Vec::new();
        let mut names = Vec::new();
        for (name, link) in self.links.drain(..) {
            // bpffs refuses dots in names (kernel/bpf/inode.c, bpf_lookup).
            let (new, path) = (dir.join(format!("new_{name}")), dir.join(&name));
            let _ = std::fs::remove_file(&new);
            let link = link
                .pin(&new)
                .map_err(|e| pin_failed(format!("pinning {}", new.display()), &e))?;
            std::fs::rename(&new, &path).map_err(|e| {
                pin_failed(
                    format!("renaming {} over {}", new.display(), path.display()),
                    &e,
                )
            })?;
            pinned.push(link);
            names.push(name);
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !names.contains(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        self.pinned = Some((dir.to_path_buf(), pinned));
        Ok(previous.map_or(Adoption::Followed(0), |map| self.adopt(map)))
    }

    /// Follows from now on the sockets the previous upgrade's programs
    /// followed (`TAGGED`: its upgraded sockets, its listeners, their
    /// accepted connections), copied once its programs are detached: a
    /// listener inherited across a takeover keeps being counted, and each
    /// socket's close is told here. Entries this instance already has
    /// stay (`BPF_NOEXIST`); a map of another version's layout cannot be
    /// read, and is told ([`Adoption::OtherLayout`]). A socket that closed
    /// between the old programs' detach and the copy stays counted open.
    fn adopt(&mut self, previous: MapData) -> Adoption {
        let value_size = previous.info().map_or(0, |info| info.value_size());
        let Ok(old) = HashMap::<_, u64, maps::Tag>::try_from(aya::maps::Map::HashMap(previous))
        else {
            return Adoption::OtherLayout { value_size };
        };
        let Some(Ok(mut new)) = self
            .ebpf
            .map_mut(maps::TAGGED)
            .map(HashMap::<_, u64, maps::Tag>::try_from)
        else {
            return Adoption::Followed(0);
        };
        /// `BPF_NOEXIST` (include/uapi/linux/bpf.h).
        const BPF_NOEXIST: u64 = 1;
        Adoption::Followed(
            old.iter()
                .filter_map(Result::ok)
                .filter(|(sk, tag)| new.insert(sk, tag, BPF_NOEXIST).is_ok())
                .count(),
        )
    }

    /// Where the links are pinned, if they are.
    pub fn pinned_at(&self) -> Option<&std::path::Path> {
        self.pinned.as_ref().map(|(dir, _)| dir.as_path())
    }

    /// Before exiting with the links pinned: the events no one will read
    /// any more are switched off (the counters still count).
    pub fn leave_pinned(&mut self) -> Result<(), Failure> {
        let mut array: Array<_, Config> = map(&mut self.ebpf, maps::CONFIG)?;
        let mut config = array
            .get(&0, 0)
            .map_err(|e| load_failed(format!("reading {}: {e}", maps::CONFIG)))?;
        config.flags &= !(flag::EVENTS | flag::LIVE | flag::STAMP);
        array
            .set(0, config, 0)
            .map_err(|e| load_failed(format!("writing {}: {e}", maps::CONFIG)))
    }

    /// A second handle on the config, for the event reader to switch the
    /// events only monitors want on and off (see [`LiveSwitch`]); `quiet`:
    /// this instance sends no events of its own (`-q`); `stamped`: it
    /// stamps them anyway (`--json`).
    pub fn live_switch(&self, quiet: bool, stamped: bool) -> anyhow::Result<LiveSwitch> {
        let id = match self.ebpf.map(maps::CONFIG) {
            Some(aya::maps::Map::Array(data)) => data.info()?.id(),
            _ => anyhow::bail!("no array map {}", maps::CONFIG),
        };
        let data = MapData::from_id(id)?;
        Ok(LiveSwitch {
            config: Array::try_from(aya::maps::Map::Array(data))?,
            quiet,
            stamped,
        })
    }

    /// Where the events are read; can be taken once.
    pub fn take_events(&mut self) -> anyhow::Result<EventSource> {
        let mut take = |name| {
            self.ebpf
                .take_map(name)
                .ok_or_else(|| anyhow::anyhow!("no map {name}"))
        };
        let ring = RingBuf::try_from(take(maps::EVENTS)?)?;
        let (aya::maps::Map::Array(staged), aya::maps::Map::Array(positions)) =
            (take(maps::STAGED)?, take(maps::STAGE_POS)?)
        else {
            anyhow::bail!("{} and {} are not arrays", maps::STAGED, maps::STAGE_POS);
        };
        let (cpus, slots) = self.stage;
        EventSource::new(ring, staged, positions, cpus, slots)
    }
}

/// What a takeover did with the sockets the upgrade it replaced followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adoption {
    /// This many are followed here from now on.
    Followed(usize),
    /// None: the previous upgrade is another version of mptcpify, whose
    /// tags (`value_size` bytes) this one cannot read; their closes, and
    /// the connections its listeners accept, are not counted.
    OtherLayout { value_size: u32 },
}

/// The `TAGGED` map of the tag program pinned in `dir`, if any.
fn previous_tagged(dir: &std::path::Path) -> Option<MapData> {
    let id = crate::bpf::pins::program_at(dir, OUTCOME_PROGRAMS[0].0)?;
    let program = crate::bpf::instances::programs(&[id]).into_iter().next()?;
    let map = program
        .map_ids()
        .ok()??
        .into_iter()
        .filter_map(|id| aya::maps::MapInfo::from_id(id).ok())
        .find(|m| m.name_as_str() == Some(maps::TAGGED))?;
    MapData::from_id(map.id()).ok()
}

/// The possible CPUs (what `bpf_get_smp_processor_id` may return is below
/// their number) and the `STAGED` slots of each.
fn stage_size() -> Result<(u32, u32), String> {
    let cpus = aya::util::nr_cpus()
        .map_err(|(path, e)| format!("reading the possible CPUs ({path}): {e}"))?
        as u32;
    Ok((cpus, maps::stage_slots(cpus)))
}
