//! `mptcpify run -- CMD`: CMD in a cgroup of its own, upgraded, with signals
//! forwarded and its exit status passed through.

mod delegation;
mod identity;

use std::ffi::CString;
use std::io::ErrorKind;
use std::path::PathBuf;

use mptcpify_common::maps::role;
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::RunArgs;
use crate::cmd::run::identity::{Identity, Request};
use crate::errors::Failure;
use crate::policy::cgroup;
use crate::policy::Policy;
use crate::policy::Selectors;

/// Signals passed on to CMD.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// A signal came while attaching (the loader stopped at it, or it was
/// pending after the attach): CMD never starts, and the exit status is as if
/// CMD had been killed by it.
fn not_running(signal: i32, command: &str) -> i32 {
    eprintln!("mptcpify: signal {signal} while attaching; not running {command:?}");
    128 + signal
}

pub async fn run(args: RunArgs) -> Result<i32, Failure> {
    // Until CMD may start, the forwarded signals stay pending (blocked), so
    // that one arriving while attaching is seen for sure (sigpending), not
    // raced against the runtime's delivery. Threads started later inherit
    // the mask; CMD gets an empty one (std's spawn resets it).
    let blocked = crate::sys::held_signals::hold(&FORWARDED);
    // Every forwarded signal arrives on one channel, as its number.
    let (signals_tx, mut signals) = tokio::sync::mpsc::unbounded_channel();
    for number in FORWARDED {
        let mut stream = signal(SignalKind::from_raw(number)).map_err(anyhow::Error::from)?;
        let tx = signals_tx.clone();
        tokio::spawn(
            async move { while stream.recv().await.is_some() && tx.send(number).is_ok() {} },
        );
    }
    let sudo = std::env::var("SUDO_UID")
        .ok()
        .zip(std::env::var("SUDO_GID").ok());
    let identity = Identity::resolve(&Request {
        user: args.user.as_deref(),
        group: args.group.as_deref(),
        as_root: args.as_root,
        sudo,
    })?;
    let mut policy = Policy::resolve(&Selectors {
        exclude_comm: args.exclude_comm.clone(),
        ..Default::default()
    })?;
    let cgroup = RunCgroup::create()?;
    policy.add_cgroup(
        cgroup::resolve(&cgroup.path.to_string_lossy())?,
        role::INCLUDE,
    );
    let attached = crate::cmd::attach::attach(
        &policy,
        &args.safety,
        crate::bpf::loader::Mode::Upgrade {
            events: args.verbose,
            reloadable: false,
            stamped: false,
        },
        &[],
    );
    // The loader stopped at a signal (it detached what it had attached).
    if let Err(Failure::Interrupted { signal }) = attached {
        drop(cgroup);
        return Ok(not_running(signal, &args.command[0]));
    }
    let mut attached = attached?;
    if args.verbose {
        eprintln!("mptcpify: CMD runs as {identity}");
        eprintln!(
            "mptcpify: attached; running {:?} in {}",
            args.command,
            cgroup.path.display()
        );
    }
    // Upgrade lines only with -v (the program sends them only then); refused
    // socket options always.
    let monitors = crate::output::monitor_server::Server::start(&attached, !args.verbose, false);
    let mut events = crate::output::events::Events::new(
        attached.take_events()?,
        crate::output::events::Output::Stderr,
        !args.verbose,
        monitors,
    )?;

    // A signal that came while attaching (Ctrl-C during a slow start) means
    // "don't": CMD never starts, and mptcpify exits as if CMD had been killed.
    if let Some(number) = crate::sys::held_signals::pending(&FORWARDED) {
        drop(attached);
        drop(cgroup);
        return Ok(not_running(number, &args.command[0]));
    }
    // From here on signals are forwarded to CMD.
    drop(blocked);
    let mut child = match spawn_in(&args.command, &cgroup, identity) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("mptcpify: {}: {e}", args.command[0]);
            return Ok(if e.kind() == ErrorKind::NotFound {
                127
            } else {
                126
            });
        }
    };
    // Never 0 or -1, which kill(2) would take as a process group or everyone.
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .filter(|&p| p > 0)
        .and_then(rustix::process::Pid::from_raw);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(anyhow::Error::from)?,
            Some(number) = signals.recv() => {
                // FORWARDED holds named signals only.
                if let (Some(pid), Some(signal)) = (pid, rustix::process::Signal::from_named_raw(number)) {
                    let _ = rustix::process::kill_process(pid, signal);
                }
            }
            result = events.print_forever() => result?,
        }
    };
    events.print_ready();
    if args.verbose {
        crate::cmd::attach::report(attached, false)?;
    } else {
        drop(attached);
    }
    drop(cgroup);
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Starts CMD; the child moves itself into the cgroup, then takes on
/// `identity`, before exec: not one socket of CMD is created outside the
/// cgroup, and nothing of mptcpify's privileges reaches CMD.
fn spawn_in(
    command: &[String],
    cgroup: &RunCgroup,
    identity: Identity,
) -> std::io::Result<tokio::process::Child> {
    let procs = CString::new(
        cgroup
            .path
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
    let mut child = tokio::process::Command::new(&command[0]);
    child.args(&command[1..]).envs(identity.environment());
    // SAFETY: only async-signal-safe calls (open, write, close, and the
    // system calls of drop_privileges) between fork and exec.
    unsafe {
        child.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0\n".as_ptr().cast(), 2);
            libc::close(fd);
            if written < 0 {
                return Err(std::io::Error::last_os_error());
            }
            identity.drop_privileges()
        });
    }
    child.spawn()
}

/// The temporary cgroup of one `run`, below mptcpify's own (a delegated one:
/// see [`delegation`]); removed on drop.
struct RunCgroup {
    path: PathBuf,
    parent: PathBuf,
}

const PREFIX: &str = "mptcpify-run-";

impl RunCgroup {
    fn create() -> Result<Self, Failure> {
        let parent = crate::cmd::run::delegation::parent()?;
        sweep_leftovers(&parent);
        let path = parent.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| Failure::RunSetup {
            what: format!("cannot create the cgroup {} for CMD: {e}", path.display()),
            fix: "`mptcpify run` puts CMD in a cgroup of its own below mptcpify's: it needs root \
                  and a writable cgroup v2 hierarchy there. Alternatively start CMD yourself and \
                  select it with --pid, --comm or --cgroup."
                .into(),
        })?;
        Ok(Self { path, parent })
    }
}

/// Removes the empty cgroups of earlier runs that were killed (SIGKILL
/// leaves no chance to clean up): `mptcpify-run-PID` whose PID is gone.
fn sweep_leftovers(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            // Fails, harmlessly, while processes are still in it.
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

impl Drop for RunCgroup {
    /// Processes CMD left behind (daemons) go back to mptcpify's cgroup, so
    /// that the directory can be removed; they keep running, as plain TCP.
    fn drop(&mut self) {
        let procs = self.path.join("cgroup.procs");
        for _ in 0..10 {
            let left = std::fs::read_to_string(&procs).unwrap_or_default();
            for pid in left.lines() {
                let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
            }
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        eprintln!(
            "mptcpify: warning: could not remove {}",
            self.path.display()
        );
    }
}
