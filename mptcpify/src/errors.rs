//! Every failure an operator can meet, with its cause, its fix and its exit
//! code. `main` prints [`Failure`] and exits with [`Failure::exit_code`].

use std::fmt;

/// Exit codes, documented in `--help` (see `cli/mod.rs`). 2 is clap's code for a
/// bad command line.
pub mod exit {
    pub const OK: i32 = 0;
    pub const OTHER: i32 = 1;
    pub const PRIVILEGES: i32 = 3;
    pub const NO_BTF: i32 = 4;
    pub const KERNEL_TOO_OLD: i32 = 5;
    pub const TRAMPOLINES_REFUSED: i32 = 6;
    pub const MPTCP_DISABLED: i32 = 7;
    pub const BAD_SELECTOR: i32 = 8;
    pub const LOAD_FAILED: i32 = 9;
    pub const SELF_CHECK_FAILED: i32 = 10;
    pub const OTHER_INSTANCE: i32 = 11;
    pub const RUN_SETUP: i32 = 12;
    pub const SERVICE_SETUP: i32 = 13;
    pub const BAD_CONFIG: i32 = 14;
    pub const NO_INSTANCE: i32 = 15;
    pub const PIN: i32 = 16;
    pub const FALLBACK_UNSAFE: i32 = 17;
    pub const USERSPACE_PATH_MANAGER: i32 = 18;
    pub const TOO_MANY_PATHS: i32 = 19;
    pub const PATHS: i32 = 20;
    pub const METRICS: i32 = 21;
    pub const CRI: i32 = 22;
}

#[derive(Debug)]
pub enum Failure {
    /// Missing CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN).
    Privileges {
        missing: String,
    },
    /// `/sys/kernel/btf/vmlinux` is absent or unreadable.
    NoBtf {
        detail: String,
    },
    /// The kernel has no `update_socket_protocol`.
    KernelTooOld {
        release: String,
    },
    /// The kernel refused to load a trampoline (fmod_ret) program.
    TrampolinesRefused {
        release: String,
        lockdown: Option<String>,
        detail: String,
    },
    /// `net.mptcp.enabled` is 0, or (`built_in: false`) the kernel has no MPTCP.
    MptcpDisabled {
        detail: String,
        built_in: bool,
    },
    /// A selector names something that does not exist or is not usable.
    BadSelector {
        what: String,
        fix: String,
    },
    /// Loading or attaching failed for another reason.
    LoadFailed {
        detail: String,
    },
    /// The start-up self-check found that the program would misread this
    /// kernel (the namespace guard, or where Landlock keeps its domain).
    SelfCheckFailed {
        /// The kernel's release, read when the check failed (so that
        /// printing the failure reads nothing).
        kernel: String,
        what: String,
        detail: String,
    },
    /// Another mptcpify is attached, and together they would not do what
    /// each was asked (an exclusion would not hold).
    OtherInstance {
        detail: String,
    },
    /// `mptcpify run` could not set up CMD's cgroup.
    RunSetup {
        what: String,
        fix: String,
    },
    /// `mptcpify enable/disable` could not change systemd's configuration.
    ServiceSetup {
        what: String,
        fix: String,
    },
    /// `--config FILE` does not parse, or its policy does not resolve.
    BadConfig {
        file: std::path::PathBuf,
        /// 1-based, when the error has a place in the file.
        line: Option<usize>,
        what: String,
        fix: String,
    },
    /// `mptcpify monitor`: no instance is attached, or none answers here.
    NoInstance {
        what: String,
        fix: String,
    },
    /// `--pin` or `mptcpify detach` could not do its part in /sys/fs/bpf.
    Pin {
        what: String,
        fix: String,
    },
    /// The fallback mode (no `mptcp_pernet_id`) cannot see writes of
    /// `net.mptcp.enabled` here, so a write of 0 would make selected
    /// `socket()` calls fail: refused rather than risked.
    FallbackUnsafe {
        fallback: String,
        why: String,
    },
    /// `paths auto`/`reset`, `--paths auto`: no CAP_NET_ADMIN.
    NetAdmin {
        what: String,
    },
    /// `net.mptcp.pm_type` is 1: a userspace daemon owns the paths.
    UserspacePathManager,
    /// More usable addresses than the kernel uses as paths.
    TooManyPaths {
        usable: Vec<String>,
    },
    /// The path manager or mptcpify's record of it could not be read or
    /// written.
    Paths {
        what: String,
        fix: String,
    },
    /// `--metrics`: the address could not be listened on (in use, not this
    /// host's); said before anything is attached.
    Metrics {
        what: String,
        fix: String,
    },
    /// The pod selectors: the container runtime's CRI socket could not be
    /// reached or read at start.
    Cri {
        what: String,
        fix: String,
    },
    /// SIGINT or SIGTERM came while mptcpify was attaching: it stopped
    /// there and detached what it had attached. Not an error (exit 0).
    Interrupted {
        signal: libc::c_int,
    },
    Other(anyhow::Error),
}

/// A reload whose old and new cgroup rules do not fit in the map at once.
impl From<mptcpify_core::plan::TooManyCgroupRules> for Failure {
    fn from(too_many: mptcpify_core::plan::TooManyCgroupRules) -> Failure {
        Failure::BadSelector {
            what: too_many.to_string(),
            fix: "Reload in two steps (first a policy with fewer cgroups), or restart mptcpify."
                .into(),
        }
    }
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Privileges { .. } => exit::PRIVILEGES,
            Failure::NoBtf { .. } => exit::NO_BTF,
            Failure::KernelTooOld { .. } => exit::KERNEL_TOO_OLD,
            Failure::TrampolinesRefused { .. } => exit::TRAMPOLINES_REFUSED,
            Failure::MptcpDisabled { .. } => exit::MPTCP_DISABLED,
            Failure::BadSelector { .. } => exit::BAD_SELECTOR,
            Failure::LoadFailed { .. } => exit::LOAD_FAILED,
            Failure::SelfCheckFailed { .. } => exit::SELF_CHECK_FAILED,
            Failure::OtherInstance { .. } => exit::OTHER_INSTANCE,
            Failure::RunSetup { .. } => exit::RUN_SETUP,
            Failure::ServiceSetup { .. } => exit::SERVICE_SETUP,
            Failure::BadConfig { .. } => exit::BAD_CONFIG,
            Failure::NoInstance { .. } => exit::NO_INSTANCE,
            Failure::Pin { .. } => exit::PIN,
            Failure::FallbackUnsafe { .. } => exit::FALLBACK_UNSAFE,
            Failure::NetAdmin { .. } => exit::PRIVILEGES,
            Failure::UserspacePathManager => exit::USERSPACE_PATH_MANAGER,
            Failure::TooManyPaths { .. } => exit::TOO_MANY_PATHS,
            Failure::Paths { .. } => exit::PATHS,
            Failure::Metrics { .. } => exit::METRICS,
            Failure::Cri { .. } => exit::CRI,
            Failure::Interrupted { .. } => exit::OK,
            Failure::Other(_) => exit::OTHER,
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Failure::Other(err)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Privileges { missing } => write!(
                f,
                "insufficient privileges: missing {missing}\n\n\
                 Loading BPF tracing programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN).\n\
                 Run as root (sudo mptcpify ...), or grant them, e.g. in a container:\n    \
                 --cap-add BPF --cap-add PERFMON"
            ),
            Failure::NoBtf { detail } => write!(
                f,
                "this kernel exposes no BTF type information ({detail})\n\n\
                 mptcpify needs /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF=y), which every \
                 major distribution kernel has.\nIn a container, mount the host's /sys \
                 (read-only is enough)."
            ),
            Failure::KernelTooOld { release } => write!(
                f,
                "kernel {release} has no update_socket_protocol hook\n\n\
                 The hook that lets BPF choose a socket's protocol appeared in Linux 6.6 \
                 (some distributions backport it; mptcpify looks for it in the kernel's BTF).\n\
                 Upgrade the kernel, or use the LD_PRELOAD fallback for dynamically linked \
                 programs:\n    mptcpize run CMD"
            ),
            Failure::TrampolinesRefused {
                release,
                lockdown,
                detail,
            } => {
                write!(
                    f,
                    "kernel {release} refused to load the fmod_ret program ({detail})\n\n\
                     This kernel has update_socket_protocol, but it does not allow BPF \
                     trampoline programs (fentry/fexit/fmod_ret), even for root."
                )?;
                if let Some(mode) = lockdown {
                    write!(f, "\nKernel lockdown is active ({mode}).")?;
                }
                write!(
                    f,
                    "\nHardened or locked-down kernels do this. Boot a kernel that allows BPF \
                     trampolines (stock distribution kernels do, without lockdown), or use \
                     `mptcpize run CMD`."
                )
            }
            Failure::MptcpDisabled {
                detail,
                built_in: true,
            } => write!(
                f,
                "MPTCP is disabled: {detail}\n\n\
                 Enable it (in this network namespace) with:\n    sysctl -w net.mptcp.enabled=1\n\
                 or pass --allow-disabled to attach anyway (sockets stay TCP wherever MPTCP \
                 is off)."
            ),
            Failure::MptcpDisabled {
                detail,
                built_in: false,
            } => write!(
                f,
                "this kernel has no MPTCP ({detail})\n\n\
                 It was built without CONFIG_MPTCP, so no socket can be upgraded. Use a kernel \
                 with MPTCP (every major distribution enables it)."
            ),
            Failure::BadSelector { what, fix }
            | Failure::RunSetup { what, fix }
            | Failure::ServiceSetup { what, fix }
            | Failure::NoInstance { what, fix }
            | Failure::Pin { what, fix }
            | Failure::Paths { what, fix }
            | Failure::Metrics { what, fix }
            | Failure::Cri { what, fix } => {
                write!(f, "{what}\n\n{fix}")
            }
            Failure::OtherInstance { detail } => write!(
                f,
                "another mptcpify is attached: {detail}\n\n\
                 Instances on one machine combine: a socket is MPTCP when any of them upgrades \
                 it, so one instance's --exclude-* cannot hold against another's selection. \
                 Stop the other instance (or merge both policies into one), or pass \
                 --allow-other-instances to attach anyway."
            ),
            Failure::LoadFailed { detail } => write!(f, "could not load mptcpify: {detail}"),
            Failure::BadConfig {
                file,
                line,
                what,
                fix,
            } => {
                write!(f, "{}", file.display())?;
                if let Some(line) = line {
                    write!(f, " line {line}")?;
                }
                write!(f, ": {what}\n\n{fix}")
            }
            Failure::SelfCheckFailed {
                kernel,
                what,
                detail,
            } => write!(
                f,
                "self-check failed on kernel {kernel}: {what}\n  ({detail})\n\n\
                 mptcpify checks on the running kernel, before attaching, that its program reads \
                 what it relies on; it did not, so attaching could break socket() or weaken a \
                 sandbox, and nothing was attached. Please report this with the kernel version \
                 (uname -r); meanwhile use `mptcpize run CMD` for dynamically linked programs."
            ),
            Failure::FallbackUnsafe { fallback, why } => write!(
                f,
                "cannot follow net.mptcp.enabled in other network namespaces ({fallback}), \
                 nor see it changed ({why})\n\n\
                 Upgrading there could make socket() fail once MPTCP is switched off, so \
                 nothing was attached. Let mptcpify read the kernel's own switch: run it with \
                 CAP_SYSLOG and kernel.kptr_restrict at 0 or 1 (sysctl -w \
                 kernel.kptr_restrict=1), on a kernel built with CONFIG_KALLSYMS_ALL; or run \
                 it where the host's cgroup2 root is mounted and no other tool holds the \
                 root's cgroup/sysctl programs exclusively."
            ),
            Failure::NetAdmin { what } => write!(
                f,
                "insufficient privileges: {what}\n\n\
                 Run as root (sudo mptcpify paths ...), or grant CAP_NET_ADMIN (in a \
                 container: --cap-add NET_ADMIN). Reading (`mptcpify paths`) needs neither."
            ),
            Failure::UserspacePathManager => write!(
                f,
                "this network namespace uses the userspace path manager (net.mptcp.pm_type = \
                 1): endpoints and limits are not used, a daemon (mptcpd) chooses the \
                 paths\n\n\
                 Let that daemon add the addresses, or switch to the kernel's path manager: \
                 sysctl -w net.mptcp.pm_type=0 (nothing was changed)."
            ),
            Failure::TooManyPaths { usable } => write!(
                f,
                "{} usable addresses, more than the {} extra subflows the kernel opens or \
                 accepts per connection: {}\n\n\
                 Choose at most {} with `mptcpify paths auto --interface IF` (repeatable); nothing was changed.",
                usable.len(),
                mptcpify_core::paths::KERNEL_MAX,
                usable.join(", "),
                mptcpify_core::paths::KERNEL_MAX
            ),
            Failure::Interrupted { signal } => write!(
                f,
                "{} while attaching: stopped, and detached what was attached; new sockets \
                 are TCP",
                crate::sys::held_signals::name(*signal)
            ),
            Failure::Other(err) => write!(f, "{err:#}"),
        }
    }
}
