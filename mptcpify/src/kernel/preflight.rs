//! Checks run before loading, each turning a cryptic kernel refusal into a
//! [`Failure`] that names the cause and the fix.

use mptcpify_common::Support;

use crate::errors::Failure;
use crate::kernel::layout::BtfIds;

/// The kernel function the program attaches to.
pub const HOOK: &str = "update_socket_protocol";

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Whether MPTCP may be off in mptcpify's own network namespace, and what
/// the kernel's BTF gave (`crate::kernel::layout::read`; `Err`: why it could
/// not be read).
pub struct Options {
    pub allow_disabled: bool,
    pub btf: Result<BtfIds, String>,
}

/// What loading needs from the checks.
pub struct Kernel {
    /// The BTF ids the programs are loaded against.
    pub ids: BtfIds,
    pub support: Support,
}

/// Runs every check.
pub fn check(options: &Options) -> Result<Kernel, Failure> {
    check_privileges()?;
    let ids = checked_btf(options.btf.clone())?;
    check_mptcp_enabled(options)?;
    Ok(Kernel {
        ids,
        support: probe_support(),
    })
}

/// Whether MPTCP works for IPv6 here. An IPv6 MPTCP socket failing where an
/// IPv4 one works means `CONFIG_MPTCP_IPV6` is off: upgrading IPv6 sockets
/// would then break them. (Without IPv6 at all, TCP and MPTCP fail alike.)
fn probe_support() -> Support {
    use rustix::net::{ipproto, socket_with, AddressFamily, SocketFlags, SocketType};
    let errno = |family| {
        socket_with(
            family,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            Some(ipproto::MPTCP),
        )
        .err()
        .map(|e| e.raw_os_error())
    };
    let v6 = errno(AddressFamily::INET6);
    Support {
        ipv6: v6.is_none() || v6 == errno(AddressFamily::INET) || v6 == Some(libc::EAFNOSUPPORT),
    }
}

pub use crate::sys::kernel_release;

fn check_privileges() -> Result<(), Failure> {
    let status = procfs::process::Process::myself()
        .and_then(|me| me.status())
        .map_err(|e| Failure::Other(anyhow::anyhow!("reading /proc/self/status: {e}")))?;
    let has = |cap: u32| status.capeff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Err(Failure::Privileges {
        missing: missing.join(" and "),
    })
}

/// The kernel's BTF ids, when it has the hook and the kfunc.
fn checked_btf(parsed: Result<BtfIds, String>) -> Result<BtfIds, Failure> {
    let btf = parsed.map_err(|detail| Failure::NoBtf { detail })?;
    // Look in BTF rather than at the version: distributions backport the hook.
    if btf.func(HOOK).is_err() {
        return Err(Failure::KernelTooOld {
            release: kernel_release(),
        });
    }
    // The programs read kernel memory through this kfunc (Linux 6.2+); a
    // kernel with a backported hook could still lack it.
    if btf.func(mptcpify_common::maps::RDONLY_CAST).is_err() {
        return Err(Failure::LoadFailed {
            detail: format!(
                "kernel {} has the update_socket_protocol hook but not the kfunc {} \
                 (Linux 6.2+), which mptcpify's programs read kernel memory with. Upgrade \
                 the kernel (6.6 and later have both), or use the LD_PRELOAD fallback for \
                 dynamically linked programs: mptcpize run CMD",
                kernel_release(),
                mptcpify_common::maps::RDONLY_CAST
            ),
        });
    }
    Ok(btf)
}

fn check_mptcp_enabled(options: &Options) -> Result<(), Failure> {
    const SYSCTL: &str = "/proc/sys/net/mptcp/enabled";
    match std::fs::read_to_string(SYSCTL) {
        Ok(value) if value.trim() == "0" => {
            let detail = "net.mptcp.enabled = 0 in mptcpify's network namespace".to_string();
            if options.allow_disabled {
                eprintln!("mptcpify: warning: {detail}; attaching anyway (--allow-disabled)");
                return Ok(());
            }
            Err(Failure::MptcpDisabled {
                detail,
                built_in: true,
            })
        }
        Ok(_) => Ok(()),
        // No sysctl: the kernel has no MPTCP at all, and no flag can help.
        Err(e) => Err(Failure::MptcpDisabled {
            detail: format!("{SYSCTL}: {e}"),
            built_in: false,
        }),
    }
}

/// The kernel's lockdown mode, when one is active (`[integrity]`, `[confidentiality]`).
pub fn lockdown_mode() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/security/lockdown").ok()?;
    let active = text.split_whitespace().find(|w| w.starts_with('['))?;
    (active != "[none]").then(|| active.trim_matches(['[', ']']).to_string())
}
