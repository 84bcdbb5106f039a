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
//! - [`events`]: the per-socket log (upgrades, kept sockets, refused
//!   options, `--explain` verdicts, closed sockets' outcomes), written as
//!   [`render`] makes its text and JSON forms;
//!   [`summary`]: the JSON lines at attach, reload and detach, and the
//!   outcome line; [`sockopt_names`]: the
//!   symbolic names it uses; [`event_source`]: where the events are read
//!   (the ring, the per-CPU slots of `socket()` events); [`mapped`]: the
//!   shared mappings of arrays both use.
//! - [`selfcheck`]: proving, before attaching, that the program reads this
//!   kernel right (the namespace guard, Landlock, sock_create programs).
//! - [`upgrade`]: `mptcpify [SELECTORS]`, the foreground upgrader;
//!   [`attach`]: preflight, load and attach, and the counters at detach,
//!   which it shares with `run` and `audit`.
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
//! - `module_graph` (a test): the modules above form no cycle.

mod attach;
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
#[cfg(test)]
mod module_graph;
mod monitor;
mod netns;
mod netns_follow;
mod pid;
mod pins;
mod policy;
mod policy_maps;
mod preflight;
mod render;
mod run;
mod selfcheck;
mod service;
mod sockopt_names;
mod status;
mod summary;
mod upgrade;

use clap::Parser;

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
            None => upgrade::foreground(cli).await.map(|()| exit::OK),
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
