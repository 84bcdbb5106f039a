//! The start-up self-check: before the upgrader is attached, mptcpify proves
//! on the running kernel that its program reads what it relies on, using
//! test children whose truth it knows.
//!
//! - The namespace guard: a child in a fresh network namespace with
//!   `net.mptcp.enabled = 1` must read as on, one with 0 as off. A wrong
//!   offset reads some other byte, usually non-zero, and would upgrade where
//!   MPTCP is off (then `socket()` fails with ENOPROTOOPT): refused.
//! - Landlock (landlock-lsm/linux#54): a child sandboxes itself with a
//!   ruleset that forbids every TCP connect, and tries a TCP and an MPTCP
//!   connect. If Landlock stops the TCP one but not the MPTCP one, upgrading
//!   would let a sandboxed task escape its sandbox; then the program must
//!   keep TCP for sandboxed tasks, and finds where their Landlock domain is:
//!   the first word of the credentials' LSM blob that is NULL for plain
//!   children and a kernel pointer for the sandboxed one (the blob's layout
//!   is decided at boot, `lsm_set_blob_size` in security/security.c, so BTF
//!   cannot say).
//!
//! - Other tools' `cgroup/sock_create` programs: what the upgrader reads
//!   for each child (whether one applies to its cgroup, which is
//!   mptcpify's) must be what the kernel answers for that cgroup
//!   (`cgroup_bpf`). The lab tests prove the other direction on each kernel,
//!   with a real filter.
//!
//! The children are this binary, re-executed with a hidden subcommand
//! ([`child`]): forking the multi-threaded runtime would not be safe.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use aya::maps::{Array, MapData};
use mptcpify_common::consts::COMM_LEN;
use mptcpify_common::consts::IPPROTO_MPTCP;
use mptcpify_common::maps::{CheckSlot, CHECK_BLOB_WORDS};

use crate::errors::Failure;

/// The hidden subcommand that runs [`child`].
pub const CHILD_COMMAND: &str = "__self-check-child";

/// What the self-check learned about Landlock on this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landlock {
    /// No Landlock network rules here (Landlock off, or ABI < 4): a sandbox
    /// cannot restrict TCP, so MPTCP cannot weaken one.
    NoNetworkRules,
    /// Landlock applies its TCP rules to MPTCP sockets too.
    CoversMptcp,
    /// Landlock's TCP rules do not hold for MPTCP: sandboxed tasks keep TCP;
    /// their domain pointer is at this byte offset of the cred blob.
    KeepSandboxed { domain_offset: u32 },
}

pub struct Findings {
    pub landlock: Landlock,
    /// Where the guard finds MPTCP's per-namespace data
    /// ([`mptcpify_common::maps::Config::mptcp_slot`]); 0 in the fallback
    /// mode, which does not read it.
    pub mptcp_slot: u32,
    /// Set when the guard could only be checked in mptcpify's own namespace.
    pub partial: Option<String>,
}

/// Runs the checks with the self-check program attached; `fallback`: the
/// guard cannot read other namespaces (see `layout::Guard`).
pub fn run(
    check: &mut Array<&mut MapData, CheckSlot>,
    fallback: bool,
) -> Result<Findings, Failure> {
    let own = crate::policy::netns::own_mptcp_enabled() as u32;
    let mut partial = None;
    let on = observe(check, "netns-on")?;
    let other = if on.ready == "unshare-refused" {
        // Without CAP_SYS_ADMIN no test namespace can be made: the child ran
        // in mptcpify's own namespace, whose setting preflight read.
        expect_guard(&on, own, "mptcpify's own namespace")?;
        partial = Some(
            "the namespace guard was checked in mptcpify's own namespace only (creating a test \
             namespace needs CAP_SYS_ADMIN)"
                .into(),
        );
        observe(check, "here")?
    } else {
        // The child writes net.mptcp.enabled in its fresh namespace. In the
        // fallback mode the guard knows such a namespace only through that
        // write, which the sysctl program followed (loader.rs,
        // `follow_mptcp_switches`): reading 1 here and 0 below proves the
        // program found the switch written.
        expect_guard(&on, 1, "a fresh namespace with MPTCP on")?;
        let off = observe(check, "netns-off")?;
        expect_guard(&off, 0, "a fresh namespace with MPTCP off")?;
        if fallback {
            let here = observe(check, "here")?;
            expect_guard(&here, own, "mptcpify's own namespace")?;
        }
        off
    };
    let sandboxed = observe(check, "landlock")?;
    if let Some(note) = expect_filter_reading(&[&on, &other, &sandboxed])? {
        partial = Some(match partial {
            Some(earlier) => format!("{earlier}; {note}"),
            None => note,
        });
    }
    let landlock = match landlock_verdict(&sandboxed)? {
        Some(landlock) => landlock,
        None => {
            let domain_offset = domain_slot(&[&on.slot, &other.slot], &[&sandboxed.slot])
                .ok_or_else(|| Failure::SelfCheckFailed {
                    kernel: crate::kernel::preflight::kernel_release(),
                    what:
                        "cannot find Landlock's domain in the credentials of a sandboxed process, \
                       so sandboxed processes cannot be kept on TCP"
                            .into(),
                    detail: format!(
                        "credential blob words, plain: {}; sandboxed: {}",
                        nonzero_words(&on.slot),
                        nonzero_words(&sandboxed.slot)
                    ),
                })?;
            Landlock::KeepSandboxed { domain_offset }
        }
    };
    let mptcp_slot = if fallback {
        0
    } else {
        guard_slot(&[&on, &other])?
    };
    Ok(Findings {
        landlock,
        mptcp_slot,
        partial,
    })
}

/// What one child reported and what the program saw of it.
struct Observation {
    /// The child's "ready" line, after the word.
    ready: String,
    slot: CheckSlot,
}

/// A name no other task has: what a test child calls itself (15 bytes,
/// the kernel's limit), from the kernel's random UUIDs.
fn token() -> [u8; COMM_LEN] {
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap_or_default();
    let hex: String = uuid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(11)
        .collect();
    let name = format!("mpck{hex:0>11}");
    let mut comm = [0u8; COMM_LEN];
    comm[..15].copy_from_slice(&name.as_bytes()[..15]);
    comm
}

fn observe(check: &mut Array<&mut MapData, CheckSlot>, mode: &str) -> Result<Observation, Failure> {
    let failed = |detail: String| Failure::SelfCheckFailed {
        kernel: crate::kernel::preflight::kernel_release(),
        what: format!("the {mode} test child did not run"),
        detail,
    };
    let comm = token();
    let name = String::from_utf8_lossy(&comm[..15]).into_owned();
    let mut child = TestChild::spawn(mode, &name).map_err(|e| failed(e.to_string()))?;
    let ready = child.line().map_err(|e| failed(e.to_string()))?;
    let ready = ready
        .strip_prefix("ready")
        .ok_or_else(|| failed(format!("it said {ready:?}")))?
        .trim()
        .to_string();
    let watch = CheckSlot {
        comm,
        ..CheckSlot::default()
    };
    check
        .set(0, watch, 0)
        .map_err(|e| failed(format!("writing the CHECK map: {e}")))?;
    child.go().map_err(|e| failed(e.to_string()))?;
    let done = child.line().map_err(|e| failed(e.to_string()))?;
    if done != "done" {
        return Err(failed(format!("it said {done:?}")));
    }
    let _ = child.child.wait();
    let slot = check
        .get(&0, 0)
        .map_err(|e| failed(format!("reading the CHECK map: {e}")))?;
    if slot.seen != 1 {
        return Err(Failure::SelfCheckFailed {
            kernel: crate::kernel::preflight::kernel_release(),
            what: format!("the self-check program did not see the {mode} child's socket() call"),
            detail: "update_socket_protocol was not called for it".into(),
        });
    }
    Ok(Observation { ready, slot })
}

/// The slot through which the guard read the namespaces, which the
/// upgrader will read through: it must be found, and the same in every
/// observation. (A missing slot makes the guard read every namespace as
/// off, which `expect_guard` already refuses wherever a namespace with
/// MPTCP on was observed; this also refuses it where none could be.)
fn guard_slot(seen: &[&Observation]) -> Result<u32, Failure> {
    let slots: Vec<u32> = seen.iter().map(|o| o.slot.mptcp_slot).collect();
    match slots[..] {
        [first, ..] if first != 0 && slots.iter().all(|s| *s == first) => Ok(first),
        _ => Err(Failure::SelfCheckFailed {
            kernel: crate::kernel::preflight::kernel_release(),
            what: "the namespace guard did not find MPTCP's per-namespace data".into(),
            detail: format!(
                "the offsets of net->gen->ptr[mptcp_pernet_id] it read: {slots:?} (0: the id \
                 read at the address of mptcp_pernet_id is not a valid id)"
            ),
        }),
    }
}

fn expect_guard(seen: &Observation, expected: u32, what: &str) -> Result<(), Failure> {
    if seen.slot.mptcp_enabled == expected {
        return Ok(());
    }
    Err(Failure::SelfCheckFailed {
 kernel: crate::kernel::preflight::kernel_release(),
        what: format!(
            "the namespace guard reads net.mptcp.enabled wrongly: in {what} it read {}, expected {expected}",
            seen.slot.mptcp_enabled
        ),
        detail: "the offsets from the kernel's BTF, or the address of mptcp_pernet_id, do not \
                 lead to the setting"
            .into(),
    })
}

/// Whether the upgrader's reading of "a sock_create program applies" for the
/// children (in mptcpify's cgroup) is the kernel's answer for that cgroup.
/// `Ok(Some(note))` when the kernel could not be asked.
fn expect_filter_reading(seen: &[&Observation]) -> Result<Option<String>, Failure> {
    let asked = crate::policy::cgroup::own()
        .map_err(|e| e.to_string())
        .and_then(|own| {
            crate::bpf::cgroup_bpf::sock_create_programs(&own)
                .map_err(|e| format!("querying {}: {e}", own.display()))
        });
    let programs = match asked {
        Ok(programs) => programs,
        Err(why) => {
            return Ok(Some(format!(
                "whether other tools' sock_create programs are read right was not checked \
                 against the kernel ({why})"
            )))
        }
    };
    let expected = u32::from(programs > 0);
    match seen.iter().find(|o| o.slot.filtered != expected) {
        None => Ok(None),
        Some(wrong) => Err(Failure::SelfCheckFailed {
            kernel: crate::kernel::preflight::kernel_release(),
            what: format!(
                "the upgrader reads whether a cgroup/sock_create program applies wrongly: it \
                 read {} for a process in mptcpify's cgroup, which has {programs}",
                wrong.slot.filtered
            ),
            detail: "the offsets from the kernel's BTF (task_struct.cgroups, css_set.dfl_cgrp, \
                     cgroup.bpf.effective, bpf_prog_array.items) do not lead to the programs"
                .into(),
        }),
    }
}

/// What the Landlock child's connects say; `None` when Landlock misses
/// MPTCP, and the caller must find the domain.
fn landlock_verdict(sandboxed: &Observation) -> Result<Option<Landlock>, Failure> {
    let field = |key: &str| {
        sandboxed
            .ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse::<i32>().ok())
    };
    match (field("enforced"), field("tcp"), field("mptcp")) {
        (Some(0), _, _) => Ok(Some(Landlock::NoNetworkRules)),
        (Some(1), Some(libc::EACCES), Some(libc::EACCES)) => Ok(Some(Landlock::CoversMptcp)),
        (Some(1), Some(libc::EACCES), Some(_)) => Ok(None),
        _ => Err(Failure::SelfCheckFailed {
            kernel: crate::kernel::preflight::kernel_release(),
            what: "a Landlock sandbox that forbids TCP connects did not behave as expected".into(),
            detail: format!("the Landlock test child said {:?}", sandboxed.ready),
        }),
    }
}

/// The byte offset of the first blob word that is NULL in every plain
/// task's blob and a kernel pointer in every sandboxed one's.
///
/// Why the first: the copy runs past the blob (its size is not known here)
/// into the next objects of the same slab, and those can be systematic, not
/// noise: seen on 6.12, a sandboxed task's previous credentials' blob, with
/// the same domain pointer, right after its current one. Inside the blob,
/// only Landlock's own slot depends on being sandboxed, and it comes before
/// anything past the blob's end.
pub fn domain_slot(plain: &[&CheckSlot], sandboxed: &[&CheckSlot]) -> Option<u32> {
    // Kernel addresses have the top byte set on 64-bit (0xffff... with
    // 4-level paging, 0xff1... and up with 5-level paging).
    let is_kernel_pointer = |word: u64| word >> 56 == 0xff;
    (0..CHECK_BLOB_WORDS)
        .filter(|&i| plain.iter().all(|p| p.blob[i] == 0))
        .find(|&i| sandboxed.iter().all(|s| is_kernel_pointer(s.blob[i])))
        .map(|i| i as u32 * 8)
}

/// The non-zero words of a blob, `index:value`, for reports.
fn nonzero_words(slot: &CheckSlot) -> String {
    let words: Vec<String> = slot
        .blob
        .iter()
        .enumerate()
        .filter(|(_, &w)| w != 0)
        .map(|(i, w)| format!("{i}:{w:#x}"))
        .collect();
    if words.is_empty() {
        "all zero".into()
    } else {
        words.join(" ")
    }
}

/// A test child: this binary running [`child`].
struct TestChild {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl TestChild {
    fn spawn(mode: &str, name: &str) -> std::io::Result<Self> {
        let mut child = Command::new("/proc/self/exe")
            .args([CHILD_COMMAND, mode, name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().to_string())
    }

    fn go(&mut self) -> std::io::Result<()> {
        self.stdin.write_all(b"go\n")?;
        self.stdin.flush()
    }
}

impl Drop for TestChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test child: sets up `mode`, says "ready ...", waits for "go", takes
/// the name `name`, makes one TCP socket for the self-check program to
/// observe, says "done".
pub fn child(mode: &str, name: &str) -> i32 {
    let ready = match mode {
        "netns-on" | "netns-off" => {
            if unshare_netns() {
                let value = if mode == "netns-on" { "1" } else { "0" };
                if let Err(e) = std::fs::write("/proc/sys/net/mptcp/enabled", value) {
                    println!("error writing net.mptcp.enabled: {e}");
                    return 1;
                }
                String::new()
            } else {
                "unshare-refused".into()
            }
        }
        "here" => String::new(),
        "landlock" => {
            // A fresh namespace keeps the probe connects off the host's
            // loopback; Landlock decides before routing either way.
            unshare_netns();
            sandbox_and_probe()
        }
        other => {
            println!("error unknown mode {other}");
            return 2;
        }
    };
    println!("ready {ready}");
    let mut go = String::new();
    if std::io::stdin().read_line(&mut go).is_err() {
        return 1;
    }
    let Ok(name) = std::ffi::CString::new(name) else {
        return 2;
    };
    // SAFETY: PR_SET_NAME with a NUL-terminated name (cut to 15 bytes);
    // socket/close with plain integers.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr());
        libc::close(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0));
    }
    println!("done");
    0
}

fn unshare_netns() -> bool {
    // SAFETY: unshare with a flag; this process is single-threaded here.
    unsafe { libc::unshare(libc::CLONE_NEWNET) == 0 }
}

/// Forbids every TCP bind and connect with Landlock, then tries a TCP and an
/// MPTCP connect to 127.0.0.1:1. Says `enforced=0|1 tcp=ERRNO mptcp=ERRNO`.
fn sandbox_and_probe() -> String {
    use landlock::{AccessNet, Ruleset, RulesetAttr, RulesetStatus};
    let status = Ruleset::default()
        .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self());
    let enforced = match status {
        Ok(status) => status.ruleset != RulesetStatus::NotEnforced,
        Err(_) => false,
    };
    format!(
        "enforced={} tcp={} mptcp={}",
        enforced as u8,
        connect_errno(libc::IPPROTO_TCP),
        connect_errno(IPPROTO_MPTCP)
    )
}

/// The errno of connecting a new `protocol` stream socket to 127.0.0.1:1
/// (0 if it connected, -1 if no socket could be made).
fn connect_errno(protocol: i32) -> i32 {
    // SAFETY: plain socket calls on a zeroed sockaddr_in we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, protocol);
        if fd < 0 {
            return -1;
        }
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = 1u16.to_be();
        addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        let result = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        let errno = if result == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        };
        libc::close(fd);
        errno
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(words: &[(usize, u64)]) -> CheckSlot {
        let mut slot = CheckSlot::default();
        for &(index, word) in words {
            slot.blob[index] = word;
        }
        slot
    }

    #[test]
    fn the_domain_is_the_one_word_that_became_a_kernel_pointer() {
        // AppArmor's label (word 1) is set in both; Landlock's domain (word
        // 0) only in the sandboxed task, next to its small flags (word 2).
        let plain = slot(&[(1, 0xffff_8880_0123_4560)]);
        let sandboxed = slot(&[
            (0, 0xffff_8880_0abc_de00),
            (1, 0xffff_8880_0123_4560),
            (2, 1),
        ]);
        assert_eq!(domain_slot(&[&plain], &[&sandboxed]), Some(0));
        let later = slot(&[(3, 0xffff_9000_0000_1000)]);
        assert_eq!(domain_slot(&[&plain], &[&later]), Some(24));
        // 5-level paging (QEMU's -cpu max): the direct map is at 0xff11...
        let la57 = slot(&[(0, 0xff27_f8c7_01ad_e1e0), (3, 0x38f7_4c9d_cae7_9c4a)]);
        assert_eq!(domain_slot(&[&plain], &[&la57]), Some(0));
    }

    /// Seen on Debian 6.12 in the lab: past the blob, a neighbouring slab
    /// object's pointer (word 16) was NULL for the plain task and set for
    /// the sandboxed one.
    #[test]
    fn words_past_the_blob_come_after_the_domain() {
        let plain = slot(&[(1, 0xff1e_f2fa_811e_cd00), (22, 0xff1e_f2fa_8137_ddf0)]);
        let sandboxed = slot(&[
            (0, 0xff1e_f2fa_813b_1c60),
            (1, 0xff1e_f2fa_811e_cd00),
            (16, 0xff1e_f2fa_8137_d650),
        ]);
        assert_eq!(domain_slot(&[&plain], &[&sandboxed]), Some(0));
    }

    /// Also seen on 6.12 (a 16-byte blob: Landlock, AppArmor): words 2 and
    /// 12 held the same kind of pointer as word 0 in both sandboxed tasks,
    /// from slab neighbours. The domain is the first candidate.
    #[test]
    fn systematic_neighbours_past_the_blob_come_after_the_domain() {
        let plain = slot(&[(1, 0xff44_cd6a_011e_c500), (5, 0xff44_cd6a_011e_c500)]);
        let sandboxed = slot(&[
            (0, 0xff44_cd6a_0133_0840),
            (1, 0xff44_cd6a_011e_c500),
            (2, 0xff44_cd6a_0133_08a0),
            (12, 0xff44_cd6a_0133_09c0),
        ]);
        assert_eq!(domain_slot(&[&plain], &[&sandboxed, &sandboxed]), Some(0));
    }

    #[test]
    fn the_guard_slot_is_the_one_every_child_was_read_through() {
        let seen = |mptcp_slot| Observation {
            ready: String::new(),
            slot: CheckSlot {
                mptcp_slot,
                ..CheckSlot::default()
            },
        };
        let (a, b) = (seen(0x58), seen(0x58));
        assert_eq!(guard_slot(&[&a, &b]).ok(), Some(0x58));
        // Not found (no valid id at mptcp_pernet_id's address), or not the
        // same twice: refused, never guessed.
        let none = seen(0);
        assert!(guard_slot(&[&none, &none]).is_err());
        let other = seen(0x60);
        assert!(guard_slot(&[&a, &other]).is_err());
    }

    #[test]
    fn no_candidate_is_not_guessed() {
        let plain = CheckSlot::default();
        assert_eq!(domain_slot(&[&plain], &[&plain]), None);
        let small = slot(&[(0, 1), (3, 0x7fff_0000_0000)]);
        assert_eq!(domain_slot(&[&plain], &[&small]), None);
    }
}
