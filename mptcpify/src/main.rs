//! mptcpify: upgrade the TCP sockets of unmodified programs to MPTCP.
//!
//! The modules form layers; each uses only those below it (checked by
//! `module_graph`, a test):
//!
//! - [`cmd`]: one module per subcommand (`upgrade`, `run`, `audit`,
//!   `status`, `monitor`, `detach`, `enable`/`disable`, the documents).
//! - [`cli`]: the command line and its help; `--config`, the same policy
//!   from a file.
//! - [`output`]: what the operator reads while attached: events, in text
//!   and JSON, the summary lines, the monitor's feed.
//! - [`bpf`]: the programs in the kernel: load, self-check, attach, pins,
//!   the other instances, where events are read.
//! - [`pods`]: Kubernetes pods selected by label from the node's container
//!   runtime (CRI), followed as they come and go.
//! - [`policy`]: the selection, checked and resolved into map keys, and the
//!   plan of writes that puts it in the maps.
//! - [`paths`]: the MPTCP paths of mptcpify's network namespace: endpoints
//!   and limits read, made to use every link, followed, undone.
//! - [`kernel`]: what mptcpify knows of the running kernel (BTF layout,
//!   kallsyms, preflight checks).
//! - [`errors`]: every failure with its cause, fix and exit code.
//! - [`sys`]: held signals, shared mappings.
//!
//! `main` only dispatches.

mod bpf;
mod cli;
mod cmd;
mod errors;
mod kernel;
#[cfg(test)]
mod module_graph;
mod output;
mod paths;
mod pods;
mod policy;
mod sys;

use clap::Parser;

use crate::errors::{exit, Failure};

fn main() {
    // The self-check's test children are this binary (see bpf/selfcheck.rs), and
    // the bundle's man pages and completions come from it (cmd/docs.rs).
    let mut args = std::env::args();
    match args.nth(1).as_deref() {
        Some(bpf::selfcheck::CHILD_COMMAND) => {
            let mode = args.next().unwrap_or_default();
            std::process::exit(bpf::selfcheck::child(
                &mode,
                &args.next().unwrap_or_default(),
            ))
        }
        Some(cmd::docs::COMMAND) => {
            let dir = args.next().unwrap_or_else(|| ".".into());
            if let Err(e) = cmd::docs::generate(std::path::Path::new(&dir)) {
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
            Some(cli::Command::Run(args)) => cmd::run::run(args).await,
            Some(cli::Command::Enable(args)) => cmd::service::enable(&args),
            Some(cli::Command::Disable(args)) => cmd::service::disable(&args),
            Some(cli::Command::Status(args)) => cmd::status::status(&args).await,
            Some(cli::Command::Audit(args)) => cmd::audit::audit(args).await,
            Some(cli::Command::Monitor(args)) => cmd::monitor::monitor(&args).await,
            Some(cli::Command::Detach(args)) => cmd::detach::detach(&args).await,
            Some(cli::Command::Paths(args)) => cmd::paths::paths(&args).await,
            None => cmd::upgrade::foreground(cli).await.map(|()| exit::OK),
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
