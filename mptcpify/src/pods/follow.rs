//! Following the selected pods while attached: the runtime's event stream
//! (`GetContainerEvents`) says when containers come and go, and each event
//! makes mptcpify list the selected pods again; a list every 30 s catches
//! up with anything missed. A runtime without the stream is listed every
//! second instead, and a runtime that stops answering is retried every 2
//! s, the pods selected so far staying selected (said once each).

use std::path::PathBuf;
use std::time::Duration;

use k8s_cri::v1::ContainerEventResponse;
use mptcpify_core::pods::PodSelector;

use crate::errors::Failure;
use crate::pods::cri::{self, Client, Pod};
use crate::pods::names::PodNames;

/// The list that catches up with missed events, while they stream.
const RELIST: Duration = Duration::from_secs(30);
/// The list of a runtime that does not stream events.
const POLL: Duration = Duration::from_secs(1);
/// A runtime that stopped answering is tried again this often.
const RETRY: Duration = Duration::from_secs(2);

pub struct Follower {
    pub selector: PodSelector,
    path: PathBuf,
    client: Option<Client>,
    events: Option<tonic::Streaming<ContainerEventResponse>>,
    /// False once the runtime said it does not stream events.
    streams: bool,
    /// The pods the policy in force holds.
    applied: Vec<Pod>,
    /// A list is due: an event came, the stream opened, or a period ended.
    due: bool,
    /// The runtime stopped answering (said once until it answers again).
    down: bool,
    /// The pods' and containers' names, for the events.
    names: PodNames,
    /// The last failure to put the selected pods in force, said once until
    /// it changes.
    failure: Option<String>,
}

impl Follower {
    /// Connects to the runtime (`--cri`, or the first well-known socket)
    /// and lists the pods selected now; fails when the runtime cannot be
    /// reached or read, with nothing attached yet.
    pub async fn start(
        selector: PodSelector,
        given: Option<&str>,
    ) -> Result<(Follower, Vec<Pod>), Failure> {
        let fix = |what: String| Failure::Cri {
            what,
            fix: "Give the node's container runtime socket with --cri PATH (containerd: \
                  /run/containerd/containerd.sock, CRI-O: /run/crio/crio.sock); in a pod, mount \
                  it from the host (see deploy/kubernetes/daemonset.yaml)."
                .into(),
        };
        let path = cri::endpoint(given).map_err(fix)?;
        let (mut client, runtime) = Client::connect(&path).await.map_err(fix)?;
        let (pods, containers) = client.selected(&selector).await.map_err(fix)?;
        let names = PodNames::default();
        names.set_pods(&pods);
        names.add_containers(containers);
        eprintln!(
            "mptcpify: pods: {runtime} at {}: following {selector} ({} running now)",
            path.display(),
            pods.len()
        );
        let follower = Follower {
            selector,
            path,
            client: Some(client),
            events: None,
            streams: true,
            applied: pods.clone(),
            due: false,
            down: false,
            names,
            failure: None,
        };
        Ok((follower, pods))
    }

    /// The pods the policy in force holds.
    pub fn in_force(&self) -> &[Pod] {
        &self.applied
    }

    /// The pods' and containers' names, shared with the event lines.
    pub fn names(&self) -> PodNames {
        self.names.clone()
    }

    /// `now` is in force (the policy and the maps hold it): the pods it
    /// selects that were not, and the ones gone, for the operator.
    pub fn applied(&mut self, now: Vec<Pod>) -> (Vec<Pod>, Vec<Pod>) {
        let selected = now
            .iter()
            .filter(|p| !self.applied.contains(p))
            .cloned()
            .collect();
        let gone = self
            .applied
            .iter()
            .filter(|p| !now.contains(p))
            .cloned()
            .collect();
        self.names.set_pods(&now);
        self.applied = now;
        self.failure = None;
        (selected, gone)
    }

    /// Putting the selected pods in force failed with `failure` (the pods
    /// in force stay): whether it is news. Each runtime event lists the
    /// pods again and would fail the same way; it is said once until it
    /// changes.
    pub fn failed(&mut self, failure: String) -> bool {
        let news = self.failure.as_ref() != Some(&failure);
        self.failure = Some(failure);
        news
    }

    /// The selected pods, once they differ from the ones in force
    /// ([`Follower::applied`] says when the policy holds them). Never returns an error:
    /// a runtime that stops answering is said and retried.
    pub async fn next(&mut self) -> Vec<Pod> {
        loop {
            if self.client.is_none() {
                match Client::connect(&self.path).await {
                    Ok((client, runtime)) => {
                        eprintln!(
                            "mptcpify: pods: {runtime} at {} answers again: listing its pods",
                            self.path.display()
                        );
                        self.client = Some(client);
                        self.down = false;
                        self.due = true;
                    }
                    Err(what) => {
                        self.lost(what);
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
            }
            let Some(client) = self.client.as_mut() else {
                continue;
            };
            if self.streams && self.events.is_none() {
                match client.events().await {
                    Ok(stream) => {
                        self.events = Some(stream);
                        self.due = true;
                    }
                    Err((true, what)) => {
                        self.streams = false;
                        eprintln!(
                            "mptcpify: pods: the runtime at {} does not stream container events \
                             ({what}): listing its pods every {} s instead, so a new pod's \
                             first second of sockets may be TCP",
                            self.path.display(),
                            POLL.as_secs()
                        );
                    }
                    Err((false, what)) => {
                        self.lost(what);
                        continue;
                    }
                }
            }
            if self.due {
                match client.selected(&self.selector).await {
                    Ok((pods, containers)) => {
                        self.names.add_containers(containers);
                        self.due = false;
                        if pods != self.applied {
                            return pods;
                        }
                    }
                    Err(what) => {
                        self.lost(what);
                        continue;
                    }
                }
            }
            let period = if self.streams { RELIST } else { POLL };
            match self.events.as_mut() {
                Some(stream) => {
                    tokio::select! {
                        message = stream.message() => match message {
                            Ok(Some(event)) => {
                                // Named before it starts: its first
                                // sockets' events can name it.
                                self.names.add_containers(event.containers_statuses.into_iter().map(
                                    |c| (c.id, c.metadata.unwrap_or_default().name),
                                ));
                                self.due = true;
                            }
                            // The runtime ended the stream: open it again.
                            Ok(None) => self.events = None,
                            Err(status) => self.lost(status.message().to_string()),
                        },
                        _ = tokio::time::sleep(period) => self.due = true,
                    }
                }
                None => {
                    tokio::time::sleep(period).await;
                    self.due = true;
                }
            }
        }
    }

    /// A list is due now (the selector changed).
    pub fn relist(&mut self) {
        self.due = true;
    }

    /// The runtime stopped answering: said once, retried.
    fn lost(&mut self, what: String) {
        if !self.down {
            eprintln!(
                "mptcpify: warning: pods: the container runtime at {} does not answer ({what}); \
                 the pods selected so far stay selected; trying again every {} s",
                self.path.display(),
                RETRY.as_secs()
            );
        }
        self.down = true;
        self.client = None;
        self.events = None;
    }
}
