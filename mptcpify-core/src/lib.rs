//! mptcpify's pure logic: what it decides and writes, with no kernel, no
//! BPF and no I/O beyond the clock, so that `cargo test` here runs on
//! stable Rust on any machine.
//!
//! - [`plan`]: what the policy maps hold for a policy, and the order of
//!   writes that takes them from one policy to the next.
//! - [`btf`]: a reader of the kernel's BTF, and the layout the programs
//!   read kernel memory with.
//! - [`selectors`] and [`config`]: the selection as the operator names it,
//!   on the command line or in a `--config` file; [`selector_numbers`]:
//!   the number each include selector's sockets are counted under;
//!   [`pods`]: Kubernetes pods as selectors, and where their cgroups are;
//!   [`systemd_slice`]: where systemd puts a slice's cgroup.
//! - [`output`]: the events as types, and their text and JSON forms.
//! - [`paths`]: the MPTCP paths of a network namespace: the verdict, and
//!   the endpoints and limits `paths auto` writes and `paths reset` undoes.
//!
//! The decision itself, shared with the BPF program, is
//! `mptcpify_common::decide`.

pub mod btf;
pub mod config;
pub mod output;
pub mod paths;
pub mod plan;
pub mod pods;
pub mod selector_numbers;
pub mod selectors;
pub mod systemd_slice;
