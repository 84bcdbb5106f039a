//! Container images and podman as the lab's Debian image runs them: the
//! pod suite's sidecar and probe images, and the images the Kubernetes
//! suite imports into containerd.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process;

/// podman as the lab's root file system needs it: the `vfs` storage driver
/// (the root is the initramfs, where overlay is not supported; the images
/// are a file each) and chroot instead of pivot_root (the initramfs cannot
/// be pivoted away from), as containers.conf's `no_pivot_root` says.
pub fn podman_command() -> Command {
    let conf = std::env::temp_dir().join("mptcpify-test-containers.conf");
    std::fs::write(&conf, "[engine]\nno_pivot_root = true\n").unwrap();
    let mut command = Command::new("podman");
    command
        .env("CONTAINERS_CONF", conf)
        .args(["--storage-driver", "vfs"]);
    command
}

/// Runs podman; its stdout when it succeeds, else the test fails with its
/// output.
pub fn podman(args: &[&str]) -> String {
    let out = podman_command()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running podman (the lab's Debian image has it): {e}"));
    assert!(
        out.status.success(),
        "podman {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a container wrote, stdout and stderr.
pub fn logs(container: &str) -> String {
    let out = podman_command().args(["logs", container]).output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Builds `image` from `containerfile` with `binary` in its context.
pub fn build(image: &str, containerfile: &str, binary: &Path, name_in_context: &str) {
    let context = std::env::temp_dir().join(format!("mptcpify-pod-{name_in_context}"));
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context).unwrap();
    std::fs::copy(binary, context.join(name_in_context)).unwrap();
    std::fs::write(context.join("Containerfile"), containerfile).unwrap();
    podman(&[
        "build",
        "--quiet",
        "-t",
        image,
        "-f",
        context.join("Containerfile").to_str().unwrap(),
        context.to_str().unwrap(),
    ]);
}

/// The path of `name` on PATH, checked to be statically linked (it runs on
/// an empty base).
pub fn static_binary(name: &str) -> PathBuf {
    let path = process::on_path(name).unwrap_or_else(|| panic!("{name} is not on PATH"));
    let file = Command::new("sh")
        .args([
            "-c",
            &format!("head -c 4096 '{}' | grep -c ld-linux", path.display()),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&file.stdout).trim(),
        "0",
        "{} is not statically linked: it cannot run on an empty base",
        path.display()
    );
    path
}
