//! The command line: what an operator can ask for, and the help that teaches it.

use clap::{Args, Parser};

const ABOUT: &str = "\
Turn the TCP sockets of unmodified programs into Multipath TCP (MPTCP).

mptcpify attaches a small eBPF program to the kernel hook that socket() consults
(update_socket_protocol, Linux 6.6+). While mptcpify runs, every new IPv4/IPv6 TCP
socket of the selected processes is created as an MPTCP socket instead; it works
for static binaries and Go programs too, unlike LD_PRELOAD tools. When the peer
does not speak MPTCP the kernel falls back to plain TCP, so connections keep working.
Sockets created before mptcpify started are not changed: start it first, then the
programs. When mptcpify exits (Ctrl-C, SIGTERM, even SIGKILL) new sockets are TCP again.";

const AFTER_HELP: &str = "\
EXAMPLES:
    Upgrade every new TCP socket on the machine:
        sudo mptcpify

    Upgrade only iperf3 (client or server), quietly:
        sudo mptcpify --comm iperf3 -q

    Everything except ssh and sshd:
        sudo mptcpify --exclude-comm ssh --exclude-comm sshd

    Check it works (in another terminal):
        ss -Mni            # MPTCP sockets and their subflows
        nstat -as 'MPTcp*' # MPTCP counters

SELECTION:
    With no include selector (--comm), every process is selected. A socket is
    upgraded when its process matches at least one include selector and no
    exclude selector. A process's name (comm) is cut by the kernel to 15 bytes:
    pass the name as `ps -o comm` shows it.

    Sockets stay TCP where MPTCP cannot be created: mptcpify refuses to start
    when net.mptcp.enabled is 0 in its own network namespace.

EXIT STATUS:
    0  detached cleanly after SIGINT/SIGTERM
    1  other error
    2  bad command line
    3  missing privileges (CAP_BPF + CAP_PERFMON, or root)
    4  no kernel BTF (/sys/kernel/btf/vmlinux)
    5  kernel too old: no update_socket_protocol hook
    6  kernel refuses BPF trampoline programs (lockdown, hardened kernel)
    7  MPTCP disabled (net.mptcp.enabled = 0)
    8  a selector names something that does not exist
    9  loading or attaching failed for another reason";

#[derive(Debug, Parser)]
#[command(name = "mptcpify", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub selectors: Selectors,

    /// Do not print a line for each upgraded socket.
    #[arg(short, long)]
    pub quiet: bool,

    /// Attach even when net.mptcp.enabled is 0 in this network namespace.
    #[arg(long)]
    pub allow_disabled: bool,
}

/// Which processes' sockets to upgrade.
#[derive(Debug, Args, Default, Clone)]
pub struct Selectors {
    /// Upgrade sockets of processes named NAME (repeatable).
    #[arg(short, long = "comm", value_name = "NAME")]
    pub comm: Vec<String>,

    /// Never upgrade sockets of processes named NAME (repeatable).
    #[arg(long = "exclude-comm", value_name = "NAME")]
    pub exclude_comm: Vec<String>,
}
