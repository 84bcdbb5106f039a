//! The command line: what an operator can ask for, and the help that teaches it.

use clap::{Args, Parser, Subcommand};

use crate::policy::Selectors;

pub mod config;

const ABOUT: &str = "\
Turn the TCP sockets of unmodified programs into Multipath TCP (MPTCP).

mptcpify attaches a small eBPF program to the kernel hook that socket() consults
(update_socket_protocol, Linux 6.6+). While mptcpify runs, the IPv4/IPv6 TCP
sockets that the selected processes create with socket(2) are created as MPTCP
sockets instead; it works for static binaries and Go programs too, unlike
LD_PRELOAD tools. When the peer does not speak MPTCP the kernel falls back to plain
TCP, so connections keep working. Sockets created before mptcpify started are not
changed: start it first, then the programs. When mptcpify exits (Ctrl-C, SIGTERM,
even SIGKILL) new sockets are TCP again, unless --pin keeps the upgrade attached.

Not covered: sockets created through io_uring (IORING_OP_SOCKET), which never pass
the hook, and sockets the kernel makes for itself (NFS, iSCSI, ...).";

/// What forcing MPTCP on every process risks; said in `--help` and when no
/// process is selected. MPTCP's own limits (net/mptcp/sockopt.c accepts a
/// subset of TCP's and IP's options), measured in the lab on 6.12.
macro_rules! all_risks {
    () => {
        "    Forcing MPTCP on programs that were not written for it can break them:
    MPTCP refuses setsockopt TCP_ULP (kTLS), TCP_MD5SIG (BGP), TCP_USER_TIMEOUT,
    TCP_MAXSEG, TCP_QUICKACK, TCP_WINDOW_CLAMP, TCP_REPAIR (CRIU), IP_TTL,
    IP_MINTTL, IP_RECVERR, IPV6_TCLASS (OpenSSH over IPv6), SO_ZEROCOPY and more
    (ENOPROTOOPT, EOPNOTSUPP), and silently ignores classic BPF socket filters,
    reuseport steering, pacing, and MSG_OOB urgent data. Select the programs you
    mean (--comm, --unit, --cgroup, ...), or say --all and exclude what breaks
    (--exclude-comm NAME, --exclude-cgroup PATH)."
    };
}

const AFTER_HELP: &str = concat!(
    "\
EXAMPLES:
    Upgrade every new TCP socket on the machine (see ALL PROCESSES):
        sudo mptcpify --all

    Upgrade only iperf3 (client or server), quietly:
        sudo mptcpify --comm iperf3 -q

    Everything except ssh and sshd:
        sudo mptcpify --all --exclude-comm ssh --exclude-comm sshd

    One systemd service, before or after it starts, across its restarts (a
    running service's existing sockets stay TCP: restart it once):
        sudo mptcpify --unit nginx
    the same as a service of its own that starts with nginx, at every boot:
        sudo mptcpify enable nginx       # undo: sudo mptcpify disable nginx

    One cgroup (and everything below it):
        sudo mptcpify --cgroup system.slice/nginx.service

    A container or pod: run mptcpify privileged in the pod's network namespace
    (a sidecar); it upgrades only sockets created in that namespace:
        mptcpify --netns self
    or from the host, for a named namespace or a process's namespace:
        sudo mptcpify --netns /run/netns/blue
        sudo mptcpify --netns /proc/1234/ns/net

    One command and its children, static binaries and Go included:
        sudo mptcpify run -- iperf3 -c 192.0.2.1

    Check it works (in another terminal):
        ss -Mni            # MPTCP sockets and their subflows
        nstat -as 'MPTcp*' # MPTCP counters

SELECTION:
    Give at least one include selector (--comm, --cgroup, --unit, --netns,
    --pid), or --all to select every process. A socket is upgraded when its
    process matches at least one include selector (or --all) and no exclude
    selector (--exclude-comm, --exclude-cgroup). --comm matches the process name (`ps -o comm`) and each
    thread's own name (`ps -L -o comm`), so worker threads that rename
    themselves (tokio-runtime-w, Java, Go) are matched by their process's name;
    the kernel cuts names to 15 bytes. --cgroup and --unit follow their path:
    when the cgroup is removed and created again (a service restart), or is
    created after mptcpify started (a unit started later), its processes are
    selected from the moment it exists. --unit asks systemd for the unit's
    cgroup (its Slice= included). Namespaces and processes are matched by ids
    the kernel never reuses (the namespace cookie; pid and start time). Every
    selector is checked before anything is attached: a cgroup, namespace or
    process that does not exist, or a unit systemd does not know, is an error.

ALL PROCESSES:
",
    all_risks!(),
    "

SAFETY:
    A socket stays TCP wherever MPTCP cannot be created: in any network
    namespace where net.mptcp.enabled is 0, including namespaces created after
    mptcpify started, the program reads the namespace's setting and leaves the
    socket alone, so socket() never fails because of mptcpify. mptcpify refuses
    to start when MPTCP is off in its own namespace (--allow-disabled overrides).
    A process sandboxed by Landlock keeps TCP when the kernel's Landlock does not
    apply its TCP rules to MPTCP (upgrading would let it reach what its sandbox
    forbids); mptcpify finds out which at start and says so. A process whose
    cgroup has another tool's cgroup/sock_create BPF program keeps TCP (that
    program would see protocol mptcp, and a filter on TCP would let it pass).
    Before attaching, mptcpify checks itself on the running kernel with test
    processes (a namespace with MPTCP on and one with it off, a sandboxed
    process, what its own cgroup's sock_create programs are); if its program
    would misread this kernel it refuses (exit 10).
    Several mptcpify instances combine (a socket is MPTCP when any upgrades it):
    when either excludes anything, the second is refused (exit 11).
    See the Safety section of the README for what other access controls see.

OBSERVING:
    mptcpify prints a line per upgraded socket, and per socket kept TCP because
    its process is sandboxed or under a sock_create program (-q silences
    them), and its counters at exit. To see why a program's sockets are, or
    are not, upgraded: --explain NAME (a line per TCP socket() it makes).
    When MPTCP refuses a socket option on an MPTCP socket (setsockopt or
    getsockopt answering EOPNOTSUPP or ENOPROTOOPT: TCP_ULP, TCP_MD5SIG, ...),
    it says so with the process and the fix, even with -q. --json writes all
    of it as JSON lines. From another shell, `mptcpify monitor` streams the
    same events live, and the life of each upgraded connection (MPTCP
    established, extra subflows up and down).
    Servers: each connection an upgraded listener accepts is a line (the
    accepting process, both ends, whether the client did MPTCP), and the
    exit summary adds them up. A connection that falls back to TCP is said,
    with the kernel's reason where it gives one (6.17+). --metrics PORT
    serves all counters to Prometheus at http://127.0.0.1:PORT/metrics.

CONFIG FILE:
    --config FILE takes the policy from a TOML file, one key per option, each
    a list (all is true or false); unknown keys are errors, and every error
    names the file and line:
        unit = [\"nginx\"]
        comm = [\"iperf3\"]
        exclude_comm = [\"sshd\"]
    Keys: comm, cgroup, unit, netns, pid, exclude_comm, exclude_cgroup, all,
    explain, paths = \"auto\" (--paths auto) and metrics = \"9464\" (--metrics)
    (both read at start only). On SIGHUP (systemctl reload mptcpify) mptcpify reads the file
    again and moves to the new policy in place: a process the old and the
    new policy both upgrade never gets TCP meanwhile, one that neither
    upgrades never gets MPTCP. A file that does not parse or resolve on
    SIGHUP leaves the policy in force, and says why.

EXIT STATUS:
    0  detached cleanly after SIGINT/SIGTERM
    1  other error
    2  bad command line
    3  missing privileges (CAP_BPF + CAP_PERFMON, or root)
    4  no kernel BTF (/sys/kernel/btf/vmlinux)
    5  kernel too old: no update_socket_protocol hook
    6  kernel refuses BPF trampoline programs (lockdown, hardened kernel)
    7  MPTCP disabled (net.mptcp.enabled = 0)
    8  a selector names something that does not exist, or too many of them
    9  loading or attaching failed for another reason
    10 self-check failed: the program would misread this kernel
    11 another mptcpify is attached and would override this one's policy
    12 `mptcpify run` could not set up CMD: its cgroup, or the user it runs as
    13 `mptcpify enable/disable` could not change systemd's configuration
    14 the --config file does not parse or its policy does not resolve (at
       start; on SIGHUP the policy in force stays and the error is said)
    15 `mptcpify monitor`: no instance attached, or none reachable from here
    16 --pin or `mptcpify detach`: the pin could not be made, found or removed
    17 the kernel hides MPTCP's per-namespace switch (kallsyms) and a change of
       net.mptcp.enabled could not be followed either: refused rather than
       risk a failing socket()
    18 --paths auto, `paths auto`: the userspace path manager is in use
       (net.mptcp.pm_type = 1)
    19 --paths auto, `paths auto`: more usable addresses than the kernel's 8
    20 --paths, `paths`: the path manager or mptcpify's record of it could not
       be read or written
    21 --metrics: the address could not be listened on (the port is in use,
       or the address is not this host's)
    22 --pod-label, --pod-annotation, --k8s-namespace: the container
       runtime's CRI socket could not be reached or read at start (while
       attached, mptcpify says so and retries)"
);

const RUN_ABOUT: &str = "\
Run CMD with MPTCP: CMD and every process it starts get MPTCP sockets, nothing else.

mptcpify creates a cgroup for CMD (below its own cgroup; under systemd, in a
transient scope mptcpify-run-PID.scope with Delegate=yes, unless mptcpify already
runs in a delegated unit), upgrades only that cgroup, forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to CMD,
and exits with CMD's exit status (128+N when CMD is killed by signal N, like a
shell). The cgroup is removed afterwards. Unlike `mptcpize run`, this works for
statically linked programs and Go.

mptcpify needs root to attach, CMD does not get it: started through sudo, CMD
runs as the user who ran sudo (SUDO_UID, SUDO_GID), with that user's groups,
HOME, USER and LOGNAME, like `sudo -u USER CMD`; --user/--group choose another
identity, --as-root keeps root on purpose. CMD gets no capability (none
effective, permitted, inheritable or ambient) and no_new_privs. Without sudo
and without --user, CMD runs as root.";

#[derive(Debug, Parser)]
#[command(name = "mptcpify", version, about = ABOUT, after_help = AFTER_HELP)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub selectors: Selectors,

    /// Upgrade every process on the machine (but those excluded). Needed
    /// when no include selector is given: forcing MPTCP on everything breaks
    /// programs that use what MPTCP lacks (see ALL PROCESSES below).
    #[arg(long, conflicts_with_all = ["comm", "cgroup", "unit", "netns", "pid"])]
    pub all: bool,

    /// Read the policy (the selectors, --all, --explain) from FILE, a TOML
    /// file (see CONFIG FILE below), and read it again on SIGHUP (systemctl
    /// reload): the new policy takes over in place, without detaching.
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "comm", "cgroup", "unit", "netns", "pid", "exclude_comm", "exclude_cgroup", "all",
        "explain",
    ])]
    pub config: Option<std::path::PathBuf>,

    /// Do not print a line for each upgraded socket (refused socket options
    /// are still said).
    #[arg(short, long)]
    pub quiet: bool,

    /// Write events and the exit summary as JSON, one object per line, on
    /// stdout (fields: README, "JSON output"). Messages stay text on stderr.
    #[arg(long)]
    pub json: bool,

    /// Why (not) upgraded: for every TCP socket() of processes named NAME
    /// (the process name or a thread's own, as --comm matches), say whether
    /// it was upgraded and what decided it: the selector that selected or
    /// excluded it, or the guard that kept it TCP (MPTCP off in its
    /// namespace, Landlock, a sock_create program). Said even with -q; not a
    /// selector (repeatable, at most 16).
    #[arg(long, value_name = "NAME")]
    pub explain: Vec<String>,

    /// Keep the upgrade attached after mptcpify exits: its programs' links
    /// are pinned in /sys/fs/bpf/mptcpify/NAME (default NAME: default). A
    /// later `mptcpify --pin NAME` takes the pinned upgrade over (the new
    /// program is attached before the old one is let go, so no socket of a
    /// selected process is TCP meanwhile); `mptcpify detach NAME` ends it.
    /// Root only.
    #[arg(
        long,
        value_name = "NAME",
        num_args = 0..=1,
        default_missing_value = DEFAULT_PIN,
        require_equals = false
    )]
    pub pin: Option<String>,

    /// `--paths auto`: make every usable address of this network namespace a
    /// path while attached, as `mptcpify paths auto` does, and follow
    /// addresses as they come and go (an endpoint within a second); undone
    /// at exit, or with `--pin` by `mptcpify detach`. Root (CAP_NET_ADMIN).
    #[arg(long, value_enum, value_name = "MODE")]
    pub paths: Option<mptcpify_core::paths::PathsMode>,

    /// `--metrics 9464`: serve Prometheus metrics at
    /// http://127.0.0.1:9464/metrics while attached: the counters of the exit
    /// summary (upgraded, kept TCP by reason, accepted by client kind, closed
    /// by role and outcome, extra subflows, ...), read from the kernel at
    /// each scrape. A port alone listens on loopback; ADDRESS:PORT elsewhere
    /// (0.0.0.0:9464 for every interface, [::]:9464). A port in use is an
    /// error at start (exit 21).
    #[arg(long, value_name = "[ADDRESS:]PORT", value_parser = mptcpify_core::output::metrics::listen_address)]
    pub metrics: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub safety: Safety,
}

const RUN_AFTER_HELP: &str = "\
EXAMPLES:
    sudo mptcpify run -- iperf3 -c 192.0.2.1        # iperf3 runs as you, not root
    sudo mptcpify run --user www-data -- ./static-server --port 8080
    sudo mptcpify run --as-root -- ./needs-root-too
    sudo mptcpify run --exclude-comm curl -- ./script-that-runs-curl.sh

From a terminal, Ctrl-C reaches CMD directly (same process group) and is also
forwarded; programs treat the second SIGINT like the first.";

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(
        about = "Run CMD with MPTCP (and the processes it starts)",
        long_about = RUN_ABOUT,
        after_help = RUN_AFTER_HELP,
        override_usage = "mptcpify run [OPTIONS] -- CMD [ARGS]..."
    )]
    Run(RunArgs),
    #[command(
        about = "Upgrade a systemd service from now on and at every boot (mptcpify@UNIT)",
        long_about = ENABLE_ABOUT
    )]
    Enable(UnitArgs),
    #[command(
        about = "Undo `mptcpify enable UNIT`: the service's new sockets are TCP again",
        long_about = DISABLE_ABOUT
    )]
    Disable(UnitArgs),
    #[command(
        about = "Show MPTCP support, the path manager, attached mptcpify instances and MPTCP sockets",
        long_about = STATUS_ABOUT
    )]
    Status(StatusArgs),
    #[command(
        about = "Observe only: what would be upgraded, and which socket options MPTCP would refuse",
        long_about = AUDIT_ABOUT
    )]
    Audit(AuditArgs),
    #[command(
        about = "Stream the attached instances' events live: upgrades, MPTCP established, subflows, fallbacks, refused options",
        long_about = MONITOR_ABOUT
    )]
    Monitor(MonitorArgs),
    #[command(
        about = "Detach an upgrade that `--pin NAME` left attached",
        long_about = DETACH_ABOUT
    )]
    Detach(DetachArgs),
    #[command(
        about = "Show this network namespace's MPTCP paths; `paths auto` uses every link, `paths reset` undoes it",
        long_about = PATHS_ABOUT,
        after_help = PATHS_AFTER_HELP
    )]
    Paths(PathsArgs),
}

const PATHS_ABOUT: &str = "\
An MPTCP connection uses several paths only when the kernel's path manager has
them: endpoints (the local addresses it may open subflows from, and announce to
peers) and limits (how many extra subflows a connection may have). Without
them, an upgraded connection stays on one path.

`mptcpify paths` shows this network namespace's interfaces and addresses, the
endpoints (and which mptcpify added), the limits, net.mptcp.pm_type, and a
verdict: how many paths a new connection can use here, and why not more.

`mptcpify paths auto` adds an endpoint for each global address of each up,
non-loopback interface (flags signal and subflow), and raises the limits to
fit (never lowers them; the kernel caps them at 8). It is idempotent, leaves
endpoints it did not add alone (NetworkManager's, an administrator's), and
never changes net.mptcp.enabled. What it adds is recorded in
/run/mptcpify/paths, and `mptcpify paths reset` removes exactly that and puts
the limits back (if no one changed them since). Reading needs no privilege;
changing needs root (CAP_NET_ADMIN).

Exit status: 0, 2 (an unknown mode), 3 (no CAP_NET_ADMIN), 18 (userspace path
manager), 19 (more than 8 usable addresses), 20 (netlink or the record).";

const PATHS_AFTER_HELP: &str = "\
EXAMPLES:
    mptcpify paths                      # what a connection can use here, and why
    sudo mptcpify paths auto            # every link a path
    sudo mptcpify paths auto --interface eth0 --interface wlan0
    sudo mptcpify paths reset           # back to what it was
    sudo mptcpify --comm iperf3 --paths auto   # while attached, following addresses

The same by hand: ip mptcp endpoint add ADDR dev IF signal subflow;
ip mptcp limits set subflows N add_addr_accepted N.";

#[derive(Debug, Args)]
pub struct PathsArgs {
    #[command(subcommand)]
    pub action: Option<PathsAction>,

    /// One JSON object on stdout (fields: README, "Paths: every link in use").
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PathsAction {
    /// Make every usable address a path: endpoints added, limits raised.
    Auto(PathsAutoArgs),
    /// Remove the endpoints mptcpify added here and restore the limits.
    Reset,
}

#[derive(Debug, Args)]
pub struct PathsAutoArgs {
    /// Endpoints only announce the address to peers (flag `signal`), as
    /// a server wants.
    #[arg(long, conflicts_with = "subflow_only")]
    pub signal_only: bool,

    /// Endpoints only open subflows from this host (flag `subflow`), as a
    /// client wants.
    #[arg(long)]
    pub subflow_only: bool,

    /// Only the addresses of interface IF (repeatable); default: every up,
    /// non-loopback interface.
    #[arg(long, value_name = "IF")]
    pub interface: Vec<String>,
}

const DETACH_ABOUT: &str = "\
Detach an upgrade that `mptcpify --pin NAME` left attached: removes its pins in
/sys/fs/bpf/mptcpify/NAME, and with the last of them the kernel detaches the
programs, so new sockets are TCP again (an mptcpify still running with that pin
detaches when it exits). A bare `mptcpify detach` ends `default`, the pin of a
bare `--pin`. `mptcpify status` lists the pinned upgrades. Root only.

Exit status: 0, 16 (no such pin, or it could not be removed).";

/// The pin's name of a bare `--pin`, and what a bare `detach` ends.
pub const DEFAULT_PIN: &str = "default";

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// The pin's NAME (`--pin NAME`); without it, `default`, which a bare
    /// `--pin` pins as.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,

    /// Every pinned upgrade.
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
}

const MONITOR_ABOUT: &str = "\
Stream, live and from any shell, what the attached mptcpify instances see: each
upgraded socket (process, family), its MPTCP connection established, extra
subflows up and down, the socket closed with what it did (MPTCP with its extra
subflows, fell back to TCP, listener, never connected), sockets kept TCP and
why (Landlock sandbox, another tool's sock_create program), and socket options
MPTCP refused. A fallback is told when the socket closes: the kernel has no
hook where it happens. It also tells the endpoints mptcpify adds and removes
in this network namespace (`--paths auto`, `paths auto`).

Each instance serves its events to monitors on an abstract Unix socket of its
network namespace (@mptcpify/monitor/PROGRAM_ID), to root and its own user only;
it sends them, a quiet (-q) instance included, only while a monitor listens, so
an unwatched instance pays nothing for them. Finding the instances needs root
(they are listed from the kernel, as `mptcpify status` does). An instance in
another network namespace (a sidecar) is reached from inside it:
    sudo nsenter --net=/proc/PID/ns/net mptcpify monitor
A monitor that falls more than 1 MiB behind loses events, and is told how many.
It ends on Ctrl-C or SIGTERM, or when the last instance detaches.

Exit status: 0, 3 (not root), 15 (no instance attached, or none reachable).";

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// One JSON object per line on stdout, with `instance` (the program id)
    /// added (fields: README, "JSON output").
    #[arg(long)]
    pub json: bool,
}

const AUDIT_ABOUT: &str = "\
Observe only, change nothing: check a service before switching mptcpify on.

For the selected processes (the same selectors as mptcpify itself; none: every
process), mptcpify audit reports each TCP socket that would be upgraded (it stays
TCP) and each socket option the processes set on TCP sockets (SOL_TCP, SOL_IP,
SOL_IPV6), with whether MPTCP on this kernel would refuse it: it tries the option
on a throw-away MPTCP socket, so the answer comes from the running kernel. At the
end (Ctrl-C, SIGTERM, or --for SECONDS) it prints a verdict per process name:
safe to upgrade, or would break on OPTION. Not seen: SOL_SOCKET options
(SO_ZEROCOPY, SO_ATTACH_FILTER, ...), getsockopt, MSG_OOB.";

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub selectors: Selectors,

    /// Stop after SECONDS and print the verdicts.
    #[arg(long = "for", value_name = "SECONDS")]
    pub duration: Option<u64>,

    /// One JSON object per line on stdout (fields: README, "mptcpify audit").
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub safety: Safety,
}

const STATUS_ABOUT: &str = "\
Show what this machine can do and is doing, read from the kernel (from any shell):
kernel support (BTF, the update_socket_protocol hook, net.mptcp.enabled), the path
manager's limits and endpoints (netlink, as `ip mptcp limits/endpoint show`), the
mptcpify instances attached (program id, since when, the process and command line
holding it, its counters), and the MPTCP sockets with their processes, extra
subflows, and whether they fell back to TCP (as `ss -M`). Listing instances needs
root; a part that cannot be read says why and the rest is still shown.";

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object on stdout (fields: README, "mptcpify status").
    #[arg(long)]
    pub json: bool,
}

const ENABLE_ABOUT: &str = "\
Upgrade a systemd service from now on and at every boot.

Enables and starts mptcpify@UNIT.service (the unit the release bundle installs:
`mptcpify --unit UNIT` as a hardened Type=notify service, ordered before UNIT),
and adds a drop-in to UNIT (/etc/systemd/system/UNIT.service.d/50-mptcpify.conf,
Wants=mptcpify@UNIT.service) so that starting UNIT starts mptcpify first. The
rule follows UNIT across its restarts. Sockets UNIT has already created stay
TCP: restart it once (`systemctl restart UNIT`) to upgrade its listeners.
Like `mptcpize enable UNIT`, without LD_PRELOAD: static binaries and Go too.";

const DISABLE_ABOUT: &str = "\
Undo `mptcpify enable UNIT`: stops and disables mptcpify@UNIT.service and removes
the drop-in. UNIT's new sockets are TCP from then on; its existing MPTCP
sockets stay MPTCP until it restarts.";

#[derive(Debug, Args)]
pub struct UnitArgs {
    /// The service: NAME or NAME.service.
    #[arg(value_name = "UNIT")]
    pub unit: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Never upgrade sockets of processes named NAME (repeatable).
    #[arg(long = "exclude-comm", value_name = "NAME")]
    pub exclude_comm: Vec<String>,

    /// Print a line for each upgraded socket (to stderr), who CMD runs as,
    /// and the counters.
    #[arg(short, long)]
    pub verbose: bool,

    /// Run CMD as this user (name or uid), with the user's groups, HOME,
    /// USER and LOGNAME. Default: the user who ran sudo (SUDO_UID).
    #[arg(long, value_name = "USER|UID", conflicts_with = "as_root")]
    pub user: Option<String>,

    /// Run CMD with this primary group (name or gid). Default: the user's.
    #[arg(long, value_name = "GROUP|GID", conflicts_with = "as_root")]
    pub group: Option<String>,

    /// Run CMD as root, with root's capabilities, even when started through sudo.
    #[arg(long)]
    pub as_root: bool,

    #[command(flatten)]
    pub safety: Safety,

    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args, Default)]
pub struct Safety {
    /// Attach even when net.mptcp.enabled is 0 in mptcpify's own network
    /// namespace (sockets there stay TCP).
    #[arg(long)]
    pub allow_disabled: bool,

    /// Attach even though another mptcpify is attached and together they
    /// would not keep every exclusion: a socket is MPTCP when any instance
    /// upgrades it.
    #[arg(long)]
    pub allow_other_instances: bool,
}

impl Cli {
    /// Upgrading every process is a choice made with --all, not what an
    /// empty command line means: a usage error (exit 2) naming the risks.
    pub fn require_selection(&self) -> Result<(), clap::Error> {
        if self.all || self.config.is_some() || self.selectors.has_include() {
            return Ok(());
        }
        use clap::CommandFactory;
        Err(Cli::command().error(
            clap::error::ErrorKind::MissingRequiredArgument,
            concat!(
                "no process selected: give --comm, --unit, --cgroup, --netns or --pid, \
                 or --all to upgrade every process.\n\n",
                all_risks!()
            ),
        ))
    }
}
