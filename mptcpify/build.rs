//! Points the binary at the BPF object it embeds. The object is built by
//! `cargo xtask build` (nightly + bpf-linker); this script only finds it, so a
//! plain `cargo build` says what to run instead of failing obscurely.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=MPTCPIFY_BPF_OBJECT");
    let path = match std::env::var_os("MPTCPIFY_BPF_OBJECT") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/bpfel-unknown-none/release/mptcpify"),
    };
    if !path.is_file() {
        panic!(
            "the BPF object {} does not exist: run `cargo xtask build` (it sets up the eBPF \
             toolchain and builds it), or point MPTCPIFY_BPF_OBJECT at a built object",
            path.display()
        );
    }
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rustc-env=MPTCPIFY_BPF_OBJECT={}", path.display());
}
