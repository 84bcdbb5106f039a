//! `mptcpify audit [SELECTORS]`: observe only. The upgrader runs in audit
//! mode (it reports the TCP sockets it would upgrade and keeps them TCP) and
//! a program on `tcp_setsockopt` reports each socket option the selected
//! processes set. For each option, the running kernel is asked whether
//! MPTCP would refuse it: a throw-away MPTCP socket gets the same option
//! (learnt from this kernel, not from a list). At the end, a verdict per
//! process name: safe to upgrade, or would break on OPTION.

use std::collections::BTreeMap;
use std::time::SystemTime;

use mptcpify_common::event::refused;
use tokio::signal::unix::{signal, SignalKind};

use crate::bpf::loader::Mode;
use crate::cli::AuditArgs;
use crate::errors::{exit, Failure};
use crate::output::events::READ_EVERY;
use mptcpify_core::output::json::{self, AuditedOption, JsonEvent, Socket};
use mptcpify_core::output::render::{text, to_json};
use mptcpify_core::output::report::{Report, Who};
use mptcpify_core::output::sockopt_names;

use crate::output::clock::Clock;
use crate::policy::Policy;

/// What MPTCP on this kernel answers to an option: `None` accepted (or
/// refused only the value), `Some(errno)` refused as not implemented.
type Answer = Option<i32>;

#[derive(Default)]
struct Process {
    pids: std::collections::BTreeSet<u32>,
    would_upgrade: u64,
    /// (level, option) → MPTCP's answer, in the order first seen.
    options: Vec<((u32, u32), Answer)>,
}

pub async fn audit(args: AuditArgs) -> Result<i32, Failure> {
    let mut sigint = signal(SignalKind::interrupt()).map_err(anyhow::Error::from)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(anyhow::Error::from)?;
    let policy = Policy::resolve(&args.selectors)?;
    if policy.pods.is_some() {
        return Err(Failure::BadSelector {
            what: "`mptcpify audit` does not follow pods (--pod-label, --pod-annotation, \
                   --k8s-namespace)"
                .into(),
            fix: "Audit a pod by its cgroup: --cgroup with the pod's slice (`mptcpify \
                  --pod-label ...` prints it when it selects the pod)."
                .into(),
        });
    }
    let mut attached = crate::cmd::attach::attach(
        &policy,
        &args.safety,
        Mode::Audit { stamped: args.json },
        &[],
    )?;
    eprintln!(
        "mptcpify audit: watching {policy} (kernel {}); nothing is changed: sockets stay TCP. \
         Ctrl-C ends the audit and prints a verdict per process name.",
        crate::kernel::preflight::kernel_release()
    );
    let mut source = attached.take_events()?;
    let clock = Clock::now();
    let mut answers: BTreeMap<(u32, u32), Answer> = BTreeMap::new();
    let mut processes: BTreeMap<String, Process> = BTreeMap::new();
    let mut timer = tokio::time::interval(READ_EVERY);
    let duration = args.duration.map(std::time::Duration::from_secs);
    let end = tokio::time::sleep(duration.unwrap_or(std::time::Duration::MAX / 4));
    tokio::pin!(end);
    loop {
        let last = tokio::select! {
            _ = sigint.recv() => true,
            _ = sigterm.recv() => true,
            _ = &mut end, if duration.is_some() => true,
            _ = timer.tick() => false,
        };
        for record in source.drain() {
            let time = clock.wall(record.event.boot_ns);
            match Report::decode(&record) {
                Report::WouldUpgrade { who, family } => {
                    let process = processes.entry(who.comm.clone()).or_default();
                    process.pids.insert(who.pid);
                    process.would_upgrade += 1;
                    let report = Report::WouldUpgrade { who, family };
                    if args.json {
                        println!("{}", to_json(&report, time, None).to_line());
                    } else {
                        println!("{}", text(&report));
                    }
                }
                Report::TcpOption { who, level, option } => {
                    let process = processes.entry(who.comm.clone()).or_default();
                    process.pids.insert(who.pid);
                    let key = (level, option);
                    let answer = *answers
                        .entry(key)
                        .or_insert_with(|| mptcp_answer(level, option));
                    if !process.options.iter().any(|(k, _)| *k == key) {
                        process.options.push((key, answer));
                    }
                    say_option(&who, key, answer, time, args.json);
                }
                // The audit mode's programs send no other events.
                _ => {}
            }
        }
        if last {
            break;
        }
    }
    crate::cmd::attach::say_run_stats(attached.run_stats().as_ref());
    drop(attached);
    verdicts(&processes, args.json);
    Ok(exit::OK)
}

/// Sets `option` (a zero int) on a throw-away MPTCP socket: an errno that
/// means "not implemented for MPTCP" is a refusal; anything else (success,
/// EINVAL for this value) means MPTCP has the option. SOL_IPV6 options are
/// tried on an IPv6 socket (an IPv4 one refuses them whatever the protocol).
fn mptcp_answer(level: u32, option: u32) -> Answer {
    let family = if level as i32 == libc::SOL_IPV6 {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: socket/setsockopt/close on our own descriptor with a local int.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM, libc::IPPROTO_MPTCP);
        if fd < 0 {
            return None;
        }
        let zero: libc::c_int = 0;
        let rc = libc::setsockopt(
            fd,
            level as i32,
            option as i32,
            (&zero as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        libc::close(fd);
        (rc != 0 && refused::is_refusal(-(errno as i64))).then_some(errno)
    }
}

fn say_option(
    who: &Who,
    (level, option): (u32, u32),
    answer: Answer,
    time: SystemTime,
    json: bool,
) {
    if json {
        let line = JsonEvent::TcpOption {
            socket: Socket {
                time: json::time(time),
                pid: who.pid,
                tid: who.tid,
                comm: who.comm.clone(),
                pod: None,
                container: None,
            },
            option: json_option(level, option, answer),
        };
        println!("{}", line.to_line());
        return;
    }
    let said = text(&Report::TcpOption {
        who: who.clone(),
        level,
        option,
    });
    match answer {
        Some(errno) => println!(
            "{said}: MPTCP on this kernel refuses it ({})",
            sockopt_names::errno(errno as u32)
        ),
        None => println!("{said}: MPTCP accepts it"),
    }
}

fn json_option(level: u32, option: u32, answer: Answer) -> AuditedOption {
    AuditedOption {
        level: sockopt_names::level(level),
        option: sockopt_names::option(level, option),
        mptcp: if answer.is_some() {
            "refused"
        } else {
            "accepted"
        }
        .into(),
        errno: answer.map(|e| sockopt_names::errno(e as u32)),
    }
}

/// The verdict per process name, on stdout.
fn verdicts(processes: &BTreeMap<String, Process>, json: bool) {
    if !json {
        println!("mptcpify audit: verdict per process name (nothing was changed):");
    }
    for (comm, process) in processes {
        let refused: Vec<String> = process
            .options
            .iter()
            .filter_map(|((level, option), answer)| {
                answer.map(|errno| {
                    format!(
                        "{} ({})",
                        sockopt_names::option(*level, *option),
                        sockopt_names::errno(errno as u32)
                    )
                })
            })
            .collect();
        if json {
            let line = JsonEvent::AuditVerdict {
                time: json::time(SystemTime::now()),
                comm: comm.clone(),
                pids: process.pids.iter().copied().collect(),
                verdict: if refused.is_empty() {
                    "safe"
                } else {
                    "would_break"
                }
                .into(),
                would_upgrade: process.would_upgrade,
                options: process
                    .options
                    .iter()
                    .map(|((l, o), a)| json_option(*l, *o, *a))
                    .collect(),
            };
            println!("{}", line.to_line());
            continue;
        }
        let sockets = format!(
            "{} TCP socket{} would be MPTCP",
            process.would_upgrade,
            if process.would_upgrade == 1 { "" } else { "s" }
        );
        if refused.is_empty() {
            let used: Vec<String> = process
                .options
                .iter()
                .map(|((l, o), _)| sockopt_names::option(*l, *o))
                .collect();
            let used = if used.is_empty() {
                "no TCP or IP options seen".into()
            } else {
                format!(
                    "options it uses, all accepted by MPTCP: {}",
                    used.join(", ")
                )
            };
            println!("  {comm}: safe to upgrade ({sockets}; {used})");
        } else {
            println!(
                "  {comm}: would break on {} ({sockets}); keep it on TCP: --exclude-comm {comm}",
                refused.join(", ")
            );
        }
    }
    if !json {
        println!(
            "  (seen: options set with SOL_TCP, SOL_IP and SOL_IPV6 on TCP sockets; not seen: \
             SOL_SOCKET options such as SO_ZEROCOPY or SO_ATTACH_FILTER, getsockopt, MSG_OOB)"
        );
    }
}
