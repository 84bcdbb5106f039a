//! The selectors as the operator names them, on the command line (flattened
//! into every mptcpify command that selects) or in a `--config` file
//! ([`crate::config`]): what mptcpify's policy resolves into map keys.

use clap::Args;

/// Which processes' sockets to upgrade.
#[derive(Debug, Args, Default, Clone)]
pub struct Selectors {
    /// Upgrade sockets of processes named NAME: the process name, or a
    /// thread's own name (repeatable).
    #[arg(short, long = "comm", value_name = "NAME")]
    pub comm: Vec<String>,

    /// Upgrade sockets of processes in this cgroup v2 directory or below it:
    /// a path under the cgroup2 mount, or relative to it (repeatable).
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroup: Vec<String>,

    /// Upgrade sockets of a systemd service, running or not yet started, and
    /// across its restarts: its cgroup as systemd places it (`.service` is
    /// added when NAME has no suffix) (repeatable).
    #[arg(long = "unit", value_name = "NAME")]
    pub unit: Vec<String>,

    /// Upgrade sockets created in this network namespace: /proc/PID/ns/net,
    /// /run/netns/NAME, or `self` (mptcpify's own: the sidecar case)
    /// (repeatable). A path like /run/netns/NAME is followed: when it names a
    /// new namespace (ip netns del + add), that one is selected within 0.1 s.
    #[arg(long = "netns", value_name = "PATH|self")]
    pub netns: Vec<String>,

    /// Upgrade sockets of this process, all its threads (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pid: Vec<u32>,

    /// Upgrade sockets of Kubernetes pods labelled KEY=VALUE, every
    /// container of the pod (repeatable: a pod needs every label given).
    /// The node's container runtime tells which pods these are and where
    /// their cgroups are (--cri); pods are followed as they come and go.
    /// The runtime knows the labels a pod was created with: label the pod
    /// template, a label added to a running pod counts once it is recreated.
    #[arg(long = "pod-label", value_name = "KEY=VALUE")]
    pub pod_label: Vec<String>,

    /// Upgrade sockets of Kubernetes pods annotated KEY=VALUE (repeatable:
    /// a pod needs every annotation given, and every --pod-label).
    #[arg(long = "pod-annotation", value_name = "KEY=VALUE")]
    pub pod_annotation: Vec<String>,

    /// Only pods of this Kubernetes namespace (repeatable: any of them);
    /// alone, every pod of the namespace.
    #[arg(long = "k8s-namespace", value_name = "NS")]
    pub k8s_namespace: Vec<String>,

    /// The container runtime's CRI socket, for the pod selectors: a path or
    /// unix://PATH [default: containerd's /run/containerd/containerd.sock,
    /// else CRI-O's /run/crio/crio.sock, whichever exists].
    #[arg(long = "cri", value_name = "ENDPOINT")]
    pub cri: Option<String>,

    /// Never upgrade sockets of processes named NAME (repeatable).
    #[arg(long = "exclude-comm", value_name = "NAME")]
    pub exclude_comm: Vec<String>,

    /// Never upgrade sockets of processes in this cgroup or below (repeatable).
    #[arg(long = "exclude-cgroup", value_name = "PATH")]
    pub exclude_cgroup: Vec<String>,
}

impl Selectors {
    /// Whether any selector says which processes to upgrade (exclusions
    /// alone still leave every other process selected).
    pub fn has_include(&self) -> bool {
        !(self.comm.is_empty()
            && self.cgroup.is_empty()
            && self.unit.is_empty()
            && self.netns.is_empty()
            && self.pid.is_empty()
            && !self.selects_pods())
    }

    /// Whether pods are selected (--pod-label, --pod-annotation,
    /// --k8s-namespace).
    pub fn selects_pods(&self) -> bool {
        !(self.pod_label.is_empty()
            && self.pod_annotation.is_empty()
            && self.k8s_namespace.is_empty())
    }
}
