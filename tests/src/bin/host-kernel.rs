//! Prints what the running kernel can do for mptcpify (`too-old`,
//! `trampolines` or `attachable`), for `cargo xtask test` to decide what to
//! run on this host. Probed independently of mptcpify (see `host.rs`).
fn main() {
    println!("{}", mptcpify_tests::host::kernel_kind().name());
}
