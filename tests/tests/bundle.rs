//! The release bundle (`cargo xtask dist`), as an operator receives it:
//! `$MPTCPIFY_BUNDLE` names the tarball. Needs root (chroot). The systemd
//! suite installs the same bundle into /usr/local and runs from it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bundle() -> PathBuf {
    std::env::var_os("MPTCPIFY_BUNDLE")
        .map(PathBuf::from)
        .expect("MPTCPIFY_BUNDLE names the tarball to check (cargo xtask test sets it)")
}

fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "`{script}` failed: {text}");
    text
}

/// The bundle unpacked into a fresh folder; returns its top folder.
fn unpacked(name: &str) -> (PathBuf, PathBuf) {
    let scratch = std::env::temp_dir().join(format!("mptcpify-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    sh(&format!("tar -xzf '{}'", bundle().display()), &scratch);
    let top = std::fs::read_dir(&scratch)
        .unwrap()
        .next()
        .expect("one top folder")
        .unwrap()
        .path();
    (scratch, top)
}

#[test]
fn every_file_is_there_and_matches_its_checksum() {
    let tarball = bundle();
    sh(
        &format!(
            "sha256sum -c '{}.sha256'",
            tarball.file_name().unwrap().to_string_lossy()
        ),
        tarball.parent().unwrap(),
    );
    let (scratch, top) = unpacked("sums");
    sh("sha256sum -c --strict SHA256SUMS", &top);
    for file in [
        "bin/mptcpify",
        "lib/systemd/system/mptcpify@.service",
        "lib/systemd/system/mptcpify.service",
        "share/man/man1/mptcpify.1",
        "share/man/man1/mptcpify-run.1",
        "share/man/man1/mptcpify-enable.1",
        "share/man/man1/mptcpify-status.1",
        "share/bash-completion/completions/mptcpify",
        "share/zsh/site-functions/_mptcpify",
        "share/fish/vendor_completions.d/mptcpify.fish",
        "share/doc/mptcpify/README.md",
    ] {
        assert!(top.join(file).is_file(), "{file} missing");
    }
    let listed = std::fs::read_to_string(top.join("SHA256SUMS")).unwrap();
    let files = sh("find . -type f ! -name SHA256SUMS | wc -l", &top);
    assert_eq!(
        listed.lines().count().to_string(),
        files.trim(),
        "SHA256SUMS does not list every file"
    );
    let page = std::fs::read_to_string(top.join("share/man/man1/mptcpify.1")).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH mptcpify"),
        "{page:.200}"
    );
    assert!(
        page.contains("EXIT STATUS"),
        "the man page lacks --help's text"
    );
    let _ = std::fs::remove_dir_all(scratch);
}

/// Statically linked: it runs in an empty root, as in a `FROM scratch` image.
#[test]
fn the_binary_runs_alone_in_an_empty_root() {
    let (scratch, top) = unpacked("static");
    let root = scratch.join("empty-root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(top.join("bin/mptcpify"), root.join("mptcpify")).unwrap();
    let version = sh(
        &format!("chroot '{}' /mptcpify --version", root.display()),
        &scratch,
    );
    let name = top.file_name().unwrap().to_string_lossy().into_owned();
    let expected = name
        .strip_prefix("mptcpify-")
        .and_then(|rest| rest.split('-').next())
        .unwrap();
    assert_eq!(version.trim(), format!("mptcpify {expected}"));
    let help = sh(
        &format!("chroot '{}' /mptcpify --help", root.display()),
        &scratch,
    );
    assert!(help.contains("EXIT STATUS"), "{help}");
    let _ = std::fs::remove_dir_all(scratch);
}
