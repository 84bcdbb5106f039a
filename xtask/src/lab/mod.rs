//! The VM lab: a stock Debian kernel booted under QEMU, with an initramfs
//! holding our binaries and the host tools the tests use. A kernel is data
//! ([`kernel`]), an image is a list of files ([`initramfs`]), a run is
//! (kernel, image, command) → (exit status, output) ([`qemu`]).

pub mod initramfs;
pub mod kernel;
pub mod qemu;
pub mod rootfs;

use anyhow::Result;

use crate::build::Artifacts;
use crate::cmd::say;
pub use initramfs::Image;

/// Boots `kernel` and runs `command` (a /bin/sh command line) in the guest as
/// root; returns its exit status. The guest's output is streamed.
pub fn run_in(kernel: &str, artifacts: &Artifacts, command: &str) -> Result<i32> {
    Ok(capture_in(kernel, artifacts, command, Image::Busybox)?.0)
}

/// Like [`run_in`], on `image`, also returning the console's lines.
pub fn capture_in(
    kernel: &str,
    artifacts: &Artifacts,
    command: &str,
    image: Image,
) -> Result<(i32, Vec<String>)> {
    capture_timed(kernel, artifacts, command, image, qemu::Timing::Coherent)
}

/// Like [`capture_in`], with the emulation's `timing` chosen (the
/// benchmarks want [`qemu::Timing::PerCpu`]).
pub fn capture_timed(
    kernel: &str,
    artifacts: &Artifacts,
    command: &str,
    image: Image,
    timing: qemu::Timing,
) -> Result<(i32, Vec<String>)> {
    let kernel = kernel::get(kernel)?;
    let initramfs = initramfs::build(&kernel, artifacts, command, image)?;
    let started = std::time::Instant::now();
    let (status, console) = qemu::boot(&kernel, &initramfs, image, timing)?;
    say(format!(
        "lab: kernel {} finished in {:.1} s with exit status {status}",
        kernel.release,
        started.elapsed().as_secs_f64()
    ));
    Ok((status, console))
}
