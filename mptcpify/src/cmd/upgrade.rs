//! `mptcpify [SELECTORS]`, the foreground upgrader: attach, report each
//! event, follow `--netns` paths, reload `--config` on SIGHUP, and detach
//! with the counters on SIGINT/SIGTERM.

use tokio::signal::unix::{signal, SignalKind};

use crate::bpf::loader::Adoption;
use crate::bpf::{instances, loader, netns_follow, pins};
use crate::cli::config;
use crate::cmd::attach::{attach, report};
use crate::errors::Failure;
use crate::kernel::preflight;
use crate::output::{events, metrics, monitor_server, summary};
use crate::paths::{self, follow};
use crate::{cli, pods, policy};
use mptcpify_core::paths::PathsMode;

/// `mptcpify [SELECTORS]`: upgrade until SIGINT/SIGTERM.
pub async fn foreground(cli: cli::Cli) -> Result<(), Failure> {
    // Installed first, so that a signal at any point after this one, even
    // before the "attached" line, leads to a clean detach.
    let mut sigint = signal(SignalKind::interrupt()).map_err(anyhow::Error::from)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(anyhow::Error::from)?;

    // With --config, SIGHUP reloads it; without, SIGHUP ends mptcpify as
    // it ends any terminal program (a clean detach).
    let mut sighup = match &cli.config {
        Some(_) => Some(signal(SignalKind::hangup()).map_err(anyhow::Error::from)?),
        None => None,
    };
    let mut policy = match &cli.config {
        Some(path) => config::load(path)?,
        None => {
            let mut policy = policy::Policy::resolve(&cli.selectors)?;
            policy.explain(&cli.explain)?;
            policy
        }
    };
    // Pods: the runtime is asked before anything is attached (unreachable,
    // it is an error with nothing to undo), and the running selected pods
    // are in the first policy the maps get.
    let mut pods = match policy.pods.clone() {
        Some(selector) => {
            let (follower, now) =
                pods::follow::Follower::start(selector, policy.cri.as_deref()).await?;
            policy.set_pods(&pod_cgroups(&now))?;
            Some(follower)
        }
        None => None,
    };
    // A pin that cannot be made fails before anything is attached; the
    // programs pinned under the same name are taken over, not competed with.
    let pin = match &cli.pin {
        Some(name) => Some((name.as_str(), pins::dir(name, true)?)),
        None => None,
    };
    // --metrics listens before anything is attached: a port in use is said
    // at start, with nothing to undo.
    let metrics_listener = match cli.metrics.or(policy.metrics) {
        Some(address) => Some((address, metrics::bind(address)?)),
        None => None,
    };
    let replacing: Vec<u32> = pin
        .as_ref()
        .and_then(|(name, _)| pins::upgrader_of(name))
        .into_iter()
        .collect();
    let mut attached = attach(
        &policy,
        &cli.safety,
        loader::Mode::Upgrade {
            events: !cli.quiet,
            reloadable: cli.config.is_some() || pods.is_some(),
            stamped: cli.json,
        },
        &replacing,
    )?;
    // --paths auto: configured once attached, before the pin (a refusal
    // leaves nothing behind: the upgrade detaches with `attached`).
    let mut follower = match cli.paths.or(policy.paths) {
        Some(PathsMode::Auto) => {
            let owner = follow::owner(pin.as_ref().map(|(name, _)| *name));
            let (follower, done) = follow::Follower::start(owner).await?;
            say_paths(&done, cli.json);
            Some(follower)
        }
        None => None,
    };
    if let Some((name, dir)) = &pin {
        let adoption = attached.pin(dir)?;
        if !replacing.is_empty() {
            let followed = match adoption {
                Adoption::Followed(adopted) => format!(
                    "the {adopted} sockets it followed (upgraded sockets, listeners, accepted \
                     connections) are followed here"
                ),
                Adoption::OtherLayout { value_size } => format!(
                    "the sockets it followed are not: it was another version of mptcpify \
                     (its socket tags are {value_size} bytes, this version's {}), so their \
                     closes and the connections its listeners accept go uncounted; new \
                     sockets are followed as usual",
                    std::mem::size_of::<mptcpify_common::maps::Tag>()
                ),
            };
            eprintln!(
                "mptcpify: took over the upgrade pinned as {name} (program id {}): it is \
                 detached now that this one is pinned in its place; {followed}",
                replacing
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        eprintln!(
            "mptcpify: pinned in {}: the upgrade stays attached after mptcpify exits \
             (`mptcpify detach {name}` ends it)",
            dir.display()
        );
    }
    // Before the "attached" line: a monitor started on it finds the instance.
    let monitors = monitor_server::Server::start(&attached, cli.quiet, cli.json);
    let served_policy = std::sync::Arc::new(std::sync::RwLock::new(policy.to_string()));
    if let Some((address, listener)) = metrics_listener {
        let source = metrics::Source {
            upgrader: attached
                .program_id()
                .ok_or_else(|| anyhow::anyhow!("the upgrader has no program id"))?,
            outcomes: attached.outcome_program_ids(),
            kernel: preflight::kernel_release(),
            policy: served_policy.clone(),
        };
        tokio::spawn(metrics::serve(listener, source));
        eprintln!(
            "mptcpify: metrics at http://{address}{}",
            mptcpify_core::output::metrics::PATH
        );
    }
    let attached_line = format!(
        "attached to {} (kernel {}); upgrading new TCP sockets of {policy}",
        preflight::HOOK,
        preflight::kernel_release()
    );
    eprintln!("mptcpify: {attached_line}");
    if !policy.explained.0.is_empty() {
        eprintln!(
            "mptcpify: explaining every TCP socket() of: {}",
            policy.explained_names().join(", ")
        );
    }
    if cli.json {
        println!("{}", summary::attached_json(&policy));
    }
    // Under systemd (Type=notify), "started" means attached and self-checked:
    // a unit ordered after mptcpify@X finds X's sockets upgraded. Not under
    // systemd, NOTIFY_SOCKET is unset and this does nothing.
    // NOTIFY_SOCKET stays set: a reload (--config) notifies again.
    if let Err(e) = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&attached_line),
        ],
    ) {
        eprintln!("mptcpify: warning: could not tell systemd that mptcpify is ready: {e}");
    }
    let output = if cli.json {
        events::Output::Json
    } else {
        events::Output::Stdout
    };
    // Read even with -q: the program then sends only refused options.
    let mut events = events::Events::new(attached.take_events()?, output, cli.quiet, monitors)?
        .naming_pods(pods.as_ref().map(|follower| follower.names()));
    let mut netns_follower = netns_follow::NetnsFollower::new(&policy, attached.fallback);
    loop {
        let hangup = async {
            match sighup.as_mut() {
                Some(sighup) => sighup.recv().await,
                None => std::future::pending().await,
            }
        };
        // The readers return only on an error; SIGHUP only with --config.
        let wake = tokio::select! {
            _ = sigint.recv() => Wake::Stop,
            _ = sigterm.recv() => Wake::Stop,
            _ = hangup => cli.config.as_deref().map_or(Wake::Stop, Wake::Reread),
            result = events.print_forever() => { result?; Wake::Stop }
            result = netns_follower.run_forever(&mut attached) => { result?; Wake::Stop }
            result = follow_paths(&mut follower, cli.json) => { result?; Wake::Stop }
            now = next_pods(&mut pods) => Wake::Pods(now),
        };
        let path = match wake {
            Wake::Stop => break,
            Wake::Reread(path) => path,
            Wake::Pods(now) => {
                if let Some(follower) = pods.as_mut() {
                    apply_pods(follower, now, &mut policy, &mut attached);
                    if let Ok(mut served) = served_policy.write() {
                        *served = policy.to_string();
                    }
                }
                continue;
            }
        };
        if let Some(reloaded) = reload(path, &cli.safety, &mut attached, pods.as_mut()) {
            policy = reloaded;
            if let Ok(mut served) = served_policy.write() {
                *served = policy.to_string();
            }
            netns_follower = netns_follow::NetnsFollower::new(&policy, attached.fallback);
            if cli.json {
                println!("{}", summary::reloaded_json(&policy));
            }
        }
    }
    events.print_ready();
    if let Some(follower) = follower {
        // Pinned, the endpoints stay with the upgrade: `mptcpify detach`.
        match follower.stop(pin.is_some()).await {
            Ok(done) => say_paths(&done, cli.json),
            Err(e) => eprintln!(
                "mptcpify: warning: the endpoints --paths auto added could not be removed \
                 (`mptcpify paths reset` removes them): {e}"
            ),
        }
    }
    report(attached, cli.json)
}

/// What `--paths auto` did: lines on stderr, and with `--json` a `path`
/// event per endpoint on stdout.
fn say_paths(done: &paths::Done, json: bool) {
    for line in paths::lines(done) {
        eprintln!("mptcpify: paths: {line}");
    }
    if json {
        for event in paths::events(done) {
            println!("{}", event.to_line());
        }
    }
}

/// The `--paths auto` follower's loop; without it, never returns.
async fn follow_paths(follower: &mut Option<follow::Follower>, json: bool) -> anyhow::Result<()> {
    match follower {
        Some(follower) => follower.run_forever(|done| say_paths(done, json)).await,
        None => std::future::pending().await,
    }
}

/// What woke the upgrader's loop.
enum Wake<'a> {
    Stop,
    Reread(&'a std::path::Path),
    Pods(Vec<pods::cri::Pod>),
}

/// The pods' cgroups as the policy holds them: (path, `namespace/name`).
fn pod_cgroups(pods: &[pods::cri::Pod]) -> Vec<(String, String)> {
    pods.iter()
        .map(|pod| (pod.cgroup.clone(), pod.name.clone()))
        .collect()
}

/// The pod follower's next change; without pod selectors, never.
async fn next_pods(follower: &mut Option<pods::follow::Follower>) -> Vec<pods::cri::Pod> {
    match follower {
        Some(follower) => follower.next().await,
        None => std::future::pending().await,
    }
}

/// Moves the maps to the pods selected `now`, and says which came and
/// went. A failure leaves the pods in force and is said; the next list
/// tries again.
fn apply_pods(
    follower: &mut pods::follow::Follower,
    now: Vec<pods::cri::Pod>,
    policy: &mut policy::Policy,
    attached: &mut loader::Attached,
) {
    let result = policy
        .set_pods(&pod_cgroups(&now))
        .and_then(|()| attached.reload(policy));
    if let Err(failure) = result {
        let text = failure.to_string();
        if follower.failed(text.clone()) {
            eprintln!(
                "mptcpify: error: pods: selecting {} failed; the pods in force stay: {text}",
                now.iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        // The policy goes back to the pods the maps hold.
        let _ = policy.set_pods(&pod_cgroups(follower.in_force()));
        return;
    }
    let (selected, gone) = follower.applied(now);
    for pod in selected {
        eprintln!(
            "mptcpify: pods: selected pod {} (cgroup {})",
            pod.name, pod.cgroup
        );
    }
    for pod in gone {
        eprintln!(
            "mptcpify: pods: pod {} is gone: no longer selected",
            pod.name
        );
    }
}

/// SIGHUP with --config: reads the file again and moves the program to its
/// policy in place. A file that does not load leaves the policy in force;
/// either way it is said (and systemd is told: `Type=notify-reload`).
fn reload(
    path: &std::path::Path,
    safety: &cli::Safety,
    attached: &mut loader::Attached,
    pods: Option<&mut pods::follow::Follower>,
) -> Option<policy::Policy> {
    let mut states = vec![sd_notify::NotifyState::Reloading];
    states.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
    let _ = sd_notify::notify(false, &states);
    let result = config::load(path).and_then(|mut policy| {
        // The pods followed now stay selected until the next list, which
        // follows the file's pod selector; a file that adds pod selectors
        // to a policy without them takes a restart.
        match (policy.pods.clone(), pods) {
            (Some(selector), Some(follower)) => {
                policy.set_pods(&pod_cgroups(follower.in_force()))?;
                follower.selector = selector;
                follower.relist();
            }
            (Some(_), None) => {
                return Err(Failure::BadConfig {
                    file: path.to_path_buf(),
                    line: None,
                    what: "pod selectors added by a reload".into(),
                    fix: "Restart mptcpify to follow pods (it connects to the container \
                          runtime at start)."
                        .into(),
                })
            }
            (None, _) => {}
        }
        for warning in &policy.warnings {
            eprintln!("mptcpify: warning: {warning}");
        }
        instances::check(
            &policy,
            &instances::others_than(attached.program_id()),
            safety.allow_other_instances,
        )?;
        attached.reload(&policy)?;
        Ok(policy)
    });
    let status = match &result {
        Ok(policy) => {
            let line = format!(
                "reloaded {}: upgrading new TCP sockets of {policy}",
                path.display()
            );
            eprintln!("mptcpify: {line}");
            line
        }
        Err(failure) => {
            eprintln!(
                "mptcpify: error: reloading {} failed; the policy in force stays: {failure}",
                path.display()
            );
            format!(
                "reload failed: {}",
                failure.to_string().lines().next().unwrap_or("")
            )
        }
    };
    let _ = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
    );
    result.ok()
}
