//! Helpers for the integration tests: running mptcpify as an operator would,
//! and observing the sockets the kernel really creates.
//!
//! - [`process`]: start mptcpify, wait until it is attached, stop it.
//! - [`sockets`]: create sockets and read back what the kernel made of them.
//! - [`cgroup_bpf`]: another tool's cgroup BPF program (sock_create, connect4).
//! - [`containers`]: podman's images, built in the lab's Debian image.
//! - [`cri`]: containerd and pods run through its CRI socket, as a kubelet does.
//! - [`host`]: what the running kernel can do, probed without mptcpify.
//! - [`probe`]: an unmodified C program's socket, in a chosen cgroup or netns.
//! - [`shell`]: a shell line under systemd, an HTTP GET on loopback.
//! - [`testbed`]: two network namespaces joined by two paths.
//! - [`transfer`]: a checksummed socat transfer across them.
//! - [`xlated`]: a loaded program's translated image, counted.

pub mod bpf_sys;
pub mod cgroup_bpf;
pub mod containers;
pub mod cri;
pub mod host;
pub mod probe;
pub mod process;
pub mod shell;
pub mod sockets;
pub mod testbed;
pub mod transfer;
pub mod xlated;
