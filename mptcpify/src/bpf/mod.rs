//! The programs in the kernel: loading, attaching, proving and finding
//! them again.
//!
//! - [`loader`]: load the embedded object, fill the policy maps, attach;
//!   counters; [`field_offsets`]: the kernel's offsets written into the
//!   programs' loads; [`comm_slots`]: the exact name slots in front of COMMS.
//! - [`selfcheck`]: proving, before attaching, that the program reads this
//!   kernel right; [`cgroup_bpf`]: other tools' cgroup programs it counts.
//! - [`event_source`]: where the programs' events are read.
//! - [`netns_follow`]: `--netns PATH` follows its path.
//! - [`instances`]: every mptcpify instance attached on this machine;
//!   [`pins`]: the ones that outlive mptcpify (`--pin NAME`).

pub mod cgroup_bpf;
pub mod comm_slots;
pub mod event_source;
pub mod field_offsets;
pub mod instances;
pub mod loader;
pub mod netns_follow;
pub mod pins;
pub mod selfcheck;
