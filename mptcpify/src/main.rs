//! mptcpify: upgrade the TCP sockets of unmodified programs to MPTCP.
//!
//! - [`cli`]: the command line and its help.
//! - [`policy`]: the selection, checked and resolved.
//! - [`preflight`]: privilege, kernel and sysctl checks.
//! - [`loader`]: load, fill the policy maps, attach; counters.
//! - [`events`]: the per-socket log.
//! - [`errors`]: every failure with its fix and exit code.

mod cli;
mod errors;
mod events;
mod loader;
mod policy;
mod preflight;

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

use crate::errors::{exit, Failure};

fn main() {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    let code = match runtime.block_on(run(cli)) {
        Ok(()) => exit::OK,
        Err(failure) => {
            eprintln!("mptcpify: error: {failure}");
            failure.exit_code()
        }
    };
    std::process::exit(code);
}

async fn run(cli: cli::Cli) -> Result<(), Failure> {
    // Installed first, so that a signal at any point after this one, even
    // before the "attached" line, leads to a clean detach.
    let mut sigint = signal(SignalKind::interrupt()).map_err(anyhow::Error::from)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(anyhow::Error::from)?;
    let policy = policy::Policy::resolve(&cli.selectors)?;
    for warning in &policy.warnings {
        eprintln!("mptcpify: warning: {warning}");
    }
    let btf = preflight::check(&preflight::Options {
        allow_disabled: cli.allow_disabled,
    })?;
    let mut attached = loader::attach(&policy, &btf)?;
    eprintln!(
        "mptcpify: attached to {} (kernel {}); upgrading new TCP sockets of {policy}",
        preflight::HOOK,
        preflight::kernel_release()
    );

    let mut events = events::Events::new(attached.take_events()?)?;
    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
        result = events.print_forever(), if !cli.quiet => result?,
    }

    // Drain what arrived before the signal, then report.
    let counts = attached.counts()?;
    let stats = attached.run_stats();
    drop(attached);
    eprintln!("mptcpify: detached; new sockets are TCP again");
    for (counter, value) in counts {
        eprintln!("mptcpify: {:>8} {}", value, counter.label());
    }
    if let Some(stats) = stats.filter(|s| s.runs > 0) {
        eprintln!(
            "mptcpify: program ran {} times, {} ns per run (kernel.bpf_stats_enabled)",
            stats.runs,
            stats.run_time.as_nanos() / u128::from(stats.runs)
        );
    }
    Ok(())
}
