//! mptcpify: upgrade the TCP sockets of unmodified programs to MPTCP.
//!
//! - [`cli`]: the command line and its help; [`config`]: the same policy
//!   from a file (`--config`), read again on SIGHUP.
//! - [`policy`]: the selection, checked and resolved; [`cgroup`], [`netns`]
//!   and [`pid`] resolve each kind of selector; [`netns_follow`] keeps
//!   `--netns PATH` on its path; [`policy_maps`]: what the maps hold for a
//!   policy, and the order of writes of a reload; [`comm_slots`]: the exact
//!   name slots in front of COMMS.
//! - [`preflight`]: privilege, kernel and sysctl checks.
//! - [`instances`]: other mptcpify instances attached on this machine;
//!   [`cgroup_bpf`]: other tools' cgroup BPF programs.
//! - [`kernel_layout`]: what the programs read in kernel memory, and where
//!   (BTF offsets); [`field_offsets`]: those offsets written into the
//!   programs' loads; [`kallsyms`]: the address of `mptcp_pernet_id`.
//! - [`loader`]: load, fill the policy maps, attach; counters;
//!   [`held_signals`]: SIGINT/SIGTERM held back while it attaches.
//! - [`events`]: the per-socket log (text or JSON: upgrades, kept sockets,
//!   refused options, `--explain` verdicts, closed sockets' outcomes);
//!   [`summary`]: the JSON lines at attach, reload and detach, and the
//!   outcome line; [`sockopt_names`]: the
//!   symbolic names it uses; [`event_source`]: where the events are read
//!   (the ring, the per-CPU slots of `socket()` events); [`mapped`]: the
//!   shared mappings of arrays both use.
//! - [`selfcheck`]: proving, before attaching, that the program reads this
//!   kernel right (the namespace guard, Landlock, sock_create programs).
//! - [`run`]: `mptcpify run -- CMD`; [`identity`]: who CMD runs as;
//!   [`delegation`]: a cgroup that is mptcpify's to divide (systemd).
//! - [`service`]: `mptcpify enable/disable UNIT` (mptcpify@UNIT.service).
//! - [`status`]: `mptcpify status`: support, path manager, instances, sockets.
//! - [`audit`]: `mptcpify audit`: what would be upgraded and what would break.
//! - [`monitor`]: `mptcpify monitor`, and the instance's side that serves it.
//! - [`pins`]: `--pin NAME` and `mptcpify detach`: upgrades that outlive
//!   mptcpify.
//! - [`docs`]: man pages and shell completions, from the clap definitions.
//! - [`errors`]: every failure with its fix and exit code.

mod audit;
mod cgroup;
mod cgroup_bpf;
mod cli;
mod comm_slots;
mod config;
mod delegation;
mod docs;
mod errors;
mod event_source;
mod events;
mod field_offsets;
mod held_signals;
mod identity;
mod instances;
mod kallsyms;
mod kernel_layout;
mod loader;
mod mapped;
mod monitor;
mod netns;
mod netns_follow;
mod pid;
mod pins;
mod policy;
mod policy_maps;
mod preflight;
mod run;
mod selfcheck;
mod service;
mod sockopt_names;
mod status;
mod summary;

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

use crate::errors::{exit, Failure};

fn main() {
    // The self-check's test children are this binary (see selfcheck.rs), and
    // the bundle's man pages and completions come from it (docs.rs).
    let mut args = std::env::args();
    match args.nth(1).as_deref() {
        Some(selfcheck::CHILD_COMMAND) => {
            let mode = args.next().unwrap_or_default();
            std::process::exit(selfcheck::child(&mode, &args.next().unwrap_or_default()))
        }
        Some(docs::COMMAND) => {
            let dir = args.next().unwrap_or_else(|| ".".into());
            if let Err(e) = docs::generate(std::path::Path::new(&dir)) {
                eprintln!("mptcpify: writing the documents into {dir}: {e}");
                std::process::exit(errors::exit::OTHER);
            }
            std::process::exit(errors::exit::OK);
        }
        _ => {}
    }
    let cli = cli::Cli::parse();
    if cli.command.is_none() {
        if let Err(usage) = cli.require_selection() {
            usage.exit();
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Some(cli::Command::Run(args)) => run::run(args).await,
            Some(cli::Command::Enable(args)) => service::enable(&args),
            Some(cli::Command::Disable(args)) => service::disable(&args),
            Some(cli::Command::Status(args)) => status::status(&args).await,
            Some(cli::Command::Audit(args)) => audit::audit(args).await,
            Some(cli::Command::Monitor(args)) => monitor::monitor(&args).await,
            Some(cli::Command::Detach(args)) => pins::detach(&args),
            None => foreground(cli).await.map(|()| exit::OK),
        }
    });
    let code = result.unwrap_or_else(|failure| {
        match failure {
            Failure::Interrupted { .. } => eprintln!("mptcpify: {failure}"),
            _ => eprintln!("mptcpify: error: {failure}"),
        }
        failure.exit_code()
    });
    std::process::exit(code);
}

/// `mptcpify [SELECTORS]`: upgrade until SIGINT/SIGTERM.
async fn foreground(cli: cli::Cli) -> Result<(), Failure> {
    // Installed first, so that a signal at any point after this one, even
    // before the "attached" line, leads to a clean detach.
    let mut sigint = signal(SignalKind::interrupt()).map_err(anyhow::Error::from)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(anyhow::Error::from)?;

    // With --config, SIGHUP reloads it; without, SIGHUP ends mptcpify as
    // it ends any terminal program (a clean detach).
    let mut sighup = match &cli.config {
        Some(_) => Some(signal(SignalKind::hangup()).map_err(anyhow::Error::from)?),
        None => None,
    };
    let mut policy = match &cli.config {
        Some(path) => config::load(path)?,
        None => {
            let mut policy = policy::Policy::resolve(&cli.selectors)?;
            policy.explain(&cli.explain)?;
            policy
        }
    };
    // A pin that cannot be made fails before anything is attached; the
    // programs pinned under the same name are taken over, not competed with.
    let pin = match &cli.pin {
        Some(name) => Some((name.as_str(), pins::dir(name, true)?)),
        None => None,
    };
    let replacing: Vec<u32> = pin
        .as_ref()
        .and_then(|(name, _)| pins::upgrader_of(name))
        .into_iter()
        .collect();
    let mut attached = attach(
        &policy,
        &cli.safety,
        loader::Mode::Upgrade {
            events: !cli.quiet,
            reloadable: cli.config.is_some(),
            stamped: cli.json,
        },
        &replacing,
    )?;
    if let Some((name, dir)) = &pin {
        attached.pin(dir)?;
        if !replacing.is_empty() {
            eprintln!(
                "mptcpify: took over the upgrade pinned as {name} (program id {}): it is \
                 detached now that this one is pinned in its place",
                replacing
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        eprintln!(
            "mptcpify: pinned in {}: the upgrade stays attached after mptcpify exits \
             (`mptcpify detach {name}` ends it)",
            dir.display()
        );
    }
    // Before the "attached" line: a monitor started on it finds the instance.
    let monitors = monitor::Server::start(&attached, cli.quiet, cli.json);
    let attached_line = format!(
        "attached to {} (kernel {}); upgrading new TCP sockets of {policy}",
        preflight::HOOK,
        preflight::kernel_release()
    );
    eprintln!("mptcpify: {attached_line}");
    if !policy.explained.0.is_empty() {
        eprintln!(
            "mptcpify: explaining every TCP socket() of: {}",
            policy.explained_names().join(", ")
        );
    }
    if cli.json {
        println!("{}", summary::attached_json(&policy));
    }
    // Under systemd (Type=notify), "started" means attached and self-checked:
    // a unit ordered after mptcpify@X finds X's sockets upgraded. Not under
    // systemd, NOTIFY_SOCKET is unset and this does nothing.
    // NOTIFY_SOCKET stays set: a reload (--config) notifies again.
    if let Err(e) = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&attached_line),
        ],
    ) {
        eprintln!("mptcpify: warning: could not tell systemd that mptcpify is ready: {e}");
    }
    let output = if cli.json {
        events::Output::Json
    } else {
        events::Output::Stdout
    };
    // Read even with -q: the program then sends only refused options.
    let mut events = events::Events::new(attached.take_events()?, output, cli.quiet, monitors)?;
    let mut netns_follower = netns_follow::NetnsFollower::new(&policy, attached.fallback);
    loop {
        let hangup = async {
            match sighup.as_mut() {
                Some(sighup) => sighup.recv().await,
                None => std::future::pending().await,
            }
        };
        // The readers return only on an error; SIGHUP only with --config.
        let reread = tokio::select! {
            _ = sigint.recv() => None,
            _ = sigterm.recv() => None,
            _ = hangup => cli.config.as_deref(),
            result = events.print_forever() => { result?; None }
            result = netns_follower.run_forever(&mut attached) => { result?; None }
        };
        let Some(path) = reread else { break };
        if let Some(reloaded) = reload(path, &cli.safety, &mut attached) {
            policy = reloaded;
            netns_follower = netns_follow::NetnsFollower::new(&policy, attached.fallback);
            if cli.json {
                println!("{}", summary::reloaded_json(&policy));
            }
        }
    }
    events.print_ready();
    report(attached, cli.json)
}

/// SIGHUP with --config: reads the file again and moves the program to its
/// policy in place. A file that does not load leaves the policy in force;
/// either way it is said (and systemd is told: `Type=notify-reload`).
fn reload(
    path: &std::path::Path,
    safety: &cli::Safety,
    attached: &mut loader::Attached,
) -> Option<policy::Policy> {
    let mut states = vec![sd_notify::NotifyState::Reloading];
    states.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
    let _ = sd_notify::notify(false, &states);
    let result = config::load(path).and_then(|policy| {
        for warning in &policy.warnings {
            eprintln!("mptcpify: warning: {warning}");
        }
        instances::check(
            &policy,
            &instances::others_than(attached.program_id()),
            safety.allow_other_instances,
        )?;
        attached.reload(&policy)?;
        Ok(policy)
    });
    let status = match &result {
        Ok(policy) => {
            let line = format!(
                "reloaded {}: upgrading new TCP sockets of {policy}",
                path.display()
            );
            eprintln!("mptcpify: {line}");
            line
        }
        Err(failure) => {
            eprintln!(
                "mptcpify: error: reloading {} failed; the policy in force stays: {failure}",
                path.display()
            );
            format!(
                "reload failed: {}",
                failure.to_string().lines().next().unwrap_or("")
            )
        }
    };
    let _ = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
    );
    result.ok()
}

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
    let read = kernel_layout::read(&loader::btf_targets());
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
    eprintln!("mptcpify: {}", summary::outcomes_line(&counts, open));
    say_run_stats(stats.as_ref());
    if json {
        println!("{}", summary::detached_json(tcp, &counts, skipped));
    }
    Ok(())
}
