//! Kubernetes pods on this node, selected by label, annotation or
//! namespace, from the container runtime's CRI socket (no API server, no
//! credentials): [`cri`] asks the runtime which pods run and where their
//! cgroups are; [`follow`] keeps the selection current while attached;
//! [`names`] tells the events which pod and container a process is in.

pub mod cri;
pub mod follow;
pub mod names;
