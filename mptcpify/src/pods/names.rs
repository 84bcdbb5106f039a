//! Which selected pod, and which of its containers, a process is in: the
//! `pod` and `container` of the events (JSON) and their `pod=` and
//! `container=` words (text). Read from the process's cgroup when its
//! event is written (`/proc/PID/cgroup`, below a selected pod's cgroup);
//! a process that exited before that (within 50 ms) is not named, but its
//! socket still counts under its pod's selector, which the kernel keeps.
//! Container names come from the runtime (its events and lists).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mptcpify_core::pods::{pod_of, unified_path};

use crate::pods::cri::Pod;

/// Shared by the follower, which writes it, and the event writer.
#[derive(Clone, Default)]
pub struct PodNames(Arc<RwLock<Names>>);

#[derive(Default)]
struct Names {
    /// The selected pods: (cgroup path, `namespace/name`).
    pods: Vec<(String, String)>,
    /// Container id to its name in its pod.
    containers: HashMap<String, String>,
}

/// Containers remembered at most; past it the map starts again from the
/// runtime's next list (a node runs a few hundred).
const MAX_CONTAINERS: usize = 10_000;

impl PodNames {
    pub fn set_pods(&self, pods: &[Pod]) {
        if let Ok(mut names) = self.0.write() {
            names.pods = pods
                .iter()
                .map(|p| (p.cgroup.clone(), p.name.clone()))
                .collect();
        }
    }

    /// Remembers containers' names (id, name).
    pub fn add_containers(&self, containers: impl IntoIterator<Item = (String, String)>) {
        if let Ok(mut names) = self.0.write() {
            if names.containers.len() > MAX_CONTAINERS {
                names.containers.clear();
            }
            names.containers.extend(containers);
        }
    }

    /// The pod (`namespace/name`) and container name of process `pid`,
    /// when it is in a selected pod.
    pub fn of_pid(&self, pid: u32) -> Option<(String, Option<String>)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let path = unified_path(&text)?;
        let names = self.0.read().ok()?;
        let (pod, id) = pod_of(path, &names.pods)?;
        let container = id.and_then(|id| names.containers.get(&id).cloned());
        Some((pod.to_string(), container))
    }
}
