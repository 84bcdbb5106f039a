//! What every command that attaches shares (the foreground upgrader,
//! `run`, `audit`): preflight, load and attach with a policy, with
//! SIGINT/SIGTERM held back meanwhile; and the counters said at detach.

use crate::bpf::{instances, loader, pins, selfcheck};
use crate::errors::Failure;
use crate::kernel::{layout, preflight};
use crate::output::summary;
use crate::sys::held_signals;
use crate::{cli, policy};

/// Preflight, then load and attach with `policy`. Shared by both modes.
/// `replacing`: the programs of the pin this instance takes over, which
/// are not other instances.
pub fn attach(
    policy: &policy::Policy,
    safety: &cli::Safety,
    mode: loader::Mode,
    replacing: &[u32],
) -> Result<loader::Attached, Failure> {
    // Until attached (this function's end), a SIGINT or SIGTERM stops the
    // loader between two steps, not the verifier mid-program.
    let _held = held_signals::hold_while_attaching();
    for warning in &policy.warnings {
        eprintln!("mptcpify: warning: {warning}");
    }
    // One parse of the kernel's BTF (our reader) gives the ids the programs
    // load against and the layout they read with; kallsyms is asked
    // meanwhile. A preflight failure still comes first; an unreadable BTF
    // is its to say.
    let read = layout::read(&loader::btf_targets());
    let kernel = preflight::check(&preflight::Options {
        allow_disabled: safety.allow_disabled,
        btf: read
            .as_ref()
            .map(|(ids, _)| ids.clone())
            .map_err(|e| format!("{e:#}")),
    })?;
    // An audit changes nothing, so it cannot undo another instance's policy.
    if !matches!(mode, loader::Mode::Audit { .. }) {
        let others: Vec<_> = instances::attached()
            .into_iter()
            .filter(|i| !replacing.contains(&i.program_id))
            .collect();
        instances::check(policy, &others, safety.allow_other_instances)?;
    }
    let (_, guard) = read.map_err(|e| Failure::NoBtf {
        detail: format!("{e:#}"),
    })?;
    let guard = guard.map_err(|e| Failure::LoadFailed {
        detail: format!("reading the kernel's layout from BTF: {e:#}"),
    })?;
    if let Some(why) = &guard.fallback {
        eprintln!(
            "mptcpify: warning: cannot read net.mptcp.enabled of other network namespaces ({why}); \
             upgrading only in the namespaces whose setting mptcpify read at start: its own and \
             each --netns"
        );
    }
    if !kernel.support.ipv6 {
        eprintln!("mptcpify: warning: this kernel cannot create IPv6 MPTCP sockets (CONFIG_MPTCP_IPV6); IPv6 sockets stay TCP");
    }
    let attached = loader::attach(policy, &guard, &kernel, mode)?;
    drop(kernel);
    if let Some(why) = &attached.options_unwatched {
        eprintln!(
            "mptcpify: warning: socket options that MPTCP refuses will not be reported on this \
             kernel ({why})"
        );
    }
    if let Some(why) = &attached.outcomes_unwatched {
        eprintln!(
            "mptcpify: warning: what upgraded sockets did (MPTCP, fallback) will not be \
             reported on this kernel ({why})"
        );
    }
    if let (None, Some(why)) = (&attached.outcomes_unwatched, &attached.live_unwatched) {
        eprintln!(
            "mptcpify: warning: `mptcpify monitor` will not be told when an upgraded connection \
             is established or a subflow closes on this kernel ({why})"
        );
    }
    if let selfcheck::Landlock::KeepSandboxed { .. } = attached.landlock {
        eprintln!(
            "mptcpify: Landlock-sandboxed processes keep TCP: this kernel's Landlock does not \
             apply its TCP rules to MPTCP"
        );
    }
    // The kernel's BTF (megabytes) was parsed twice to get here (aya's and
    // ours); hand that memory back, since mptcpify may run for months.
    // SAFETY: glibc's malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    Ok(attached)
}

/// The kernel's accounting of the programs, when `kernel.bpf_stats_enabled`
/// is on (otherwise the kernel counts no runs).
pub fn say_run_stats(stats: Option<&loader::RunStats>) {
    if let Some(stats) = stats.filter(|s| s.runs > 0) {
        eprintln!(
            "mptcpify: program ran {} times, {} ns per run; all programs: {} ns per run of it \
             (kernel.bpf_stats_enabled)",
            stats.runs,
            stats.run_time.as_nanos() / u128::from(stats.runs),
            stats.all_run_time.as_nanos() / u128::from(stats.runs)
        );
    }
}

/// The line for [`loader::Attached::skipped_calls`] (the kernel counts
/// them as the program's recursion misses).
const MISSED_CALLS_LABEL: &str = "socket() calls the kernel ran without mptcpify (its program was \
                             still running on that CPU in a preempted task): they kept their \
                             protocol";

/// Detaches and prints what the programs counted (with `json`, also as one
/// JSON object on stdout).
pub fn report(mut attached: loader::Attached, json: bool) -> Result<(), Failure> {
    let counts = attached.counts()?;
    let open = attached.open_sockets();
    let stats = attached.run_stats();
    let skipped = attached.skipped_calls();
    let missed = attached.missed_calls();
    let tallies = attached.tallies();
    // Still pinned unless `mptcpify detach` or another `--pin` took the pin.
    let pinned = attached
        .pinned_at()
        .filter(|dir| pins::upgrader_at(dir) == attached.program_id())
        .map(|dir| dir.to_path_buf());
    if pinned.is_some() {
        attached.leave_pinned()?;
    }
    drop(attached);
    match pinned {
        Some(dir) => eprintln!(
            "mptcpify: exiting; the upgrade stays attached, pinned in {} (`mptcpify detach {}` \
             ends it)",
            dir.display(),
            dir.file_name().unwrap_or_default().to_string_lossy()
        ),
        None => eprintln!("mptcpify: detached; new sockets are TCP again"),
    }
    let tcp: u64 = counts
        .iter()
        .filter(|(counter, _)| counter.is_verdict())
        .map(|(_, value)| value)
        .sum();
    eprintln!("mptcpify: {tcp:>8} tcp sockets seen");
    // The verdicts (which add up to the TCP sockets) first, then the rest.
    let (verdicts, others): (Vec<_>, Vec<_>) = counts.iter().partition(|(c, _)| c.is_verdict());
    for (counter, value) in verdicts.into_iter().chain(others) {
        eprintln!("mptcpify: {:>8} {}", value, counter.label());
    }
    if let Some(missed) = skipped {
        eprintln!("mptcpify: {missed:>8} {MISSED_CALLS_LABEL}");
    }
    for (function, calls) in missed.iter().filter(|(_, calls)| *calls > 0) {
        eprintln!(
            "mptcpify: {calls:>8} {function} calls the kernel ran without mptcpify's program on \
             it (same cause): what they did is not counted"
        );
    }
    eprintln!("mptcpify: {}", summary::outcomes_line(&counts, open));
    if let Some(line) = summary::accepted_line(&counts) {
        eprintln!("mptcpify: {line}");
    }
    for line in summary::tally_lines(&tallies) {
        eprintln!("mptcpify: {line}");
    }
    say_run_stats(stats.as_ref());
    if json {
        println!(
            "{}",
            summary::detached_json(tcp, &counts, skipped, &missed, &tallies)
        );
    }
    Ok(())
}
