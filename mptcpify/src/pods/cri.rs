//! The node's container runtime over its CRI socket (containerd, CRI-O):
//! which pods run, with their labels, annotations and cgroup, and a stream
//! of their containers' events. Read only: mptcpify never asks the
//! runtime to change anything. The client is k8s-cri's, generated from
//! the CRI's protobuf definitions, on tonic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{self as cri};
use tonic::transport::{Channel, Endpoint, Uri};

use mptcpify_core::pods::{cgroup_parent_from_info, pod_cgroup, PodSelector};

/// The runtimes' well-known sockets, in the order they are looked for.
pub const WELL_KNOWN: &[&str] = &["/run/containerd/containerd.sock", "/run/crio/crio.sock"];

/// A pod the runtime runs, as mptcpify selects it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pod {
    /// `namespace/name`, as Kubernetes names it.
    pub name: String,
    /// Its cgroup, relative to the cgroup2 mount, with a leading `/`.
    pub cgroup: String,
}

/// Where the runtime's socket is: `--cri` (a path or `unix://PATH`), or
/// the first well-known socket that exists.
pub fn endpoint(given: Option<&str>) -> Result<PathBuf, String> {
    match given {
        Some(given) => Ok(PathBuf::from(
            given.strip_prefix("unix://").unwrap_or(given),
        )),
        None => WELL_KNOWN
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or_else(|| format!("no container runtime socket at {}", WELL_KNOWN.join(" or "))),
    }
}

/// A connected client.
pub struct Client {
    inner: RuntimeServiceClient<Channel>,
    /// Each listed sandbox's cgroup, asked once: a sandbox keeps its cgroup
    /// for its life, and every container event of the node lists again.
    cgroups: HashMap<String, String>,
}

impl Client {
    /// Connects and asks the runtime its name and version (which also
    /// proves it speaks CRI v1).
    pub async fn connect(path: &Path) -> Result<(Client, String), String> {
        let socket = path.to_path_buf();
        // The URI is unused: every connection goes to the Unix socket.
        let channel = Endpoint::try_from("http://[::]:0")
            .map_err(|e| e.to_string())?
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(socket).await?,
                    ))
                }
            }))
            .await
            .map_err(|e| format!("connecting to {}: {}", path.display(), source_chain(&e)))?;
        let mut inner = RuntimeServiceClient::new(channel);
        let version = inner
            .version(cri::VersionRequest::default())
            .await
            .map_err(|e| format!("{}: Version: {}", path.display(), e.message()))?
            .into_inner();
        let client = Client {
            inner,
            cgroups: HashMap::new(),
        };
        Ok((
            client,
            format!("{} {}", version.runtime_name, version.runtime_version),
        ))
    }

    /// The ready pods `selector` selects, sorted, and their containers
    /// (id, name). The runtime filters by label; namespaces and
    /// annotations are checked here, and each pod's cgroup is read from
    /// its verbose status.
    pub async fn selected(
        &mut self,
        selector: &PodSelector,
    ) -> Result<(Vec<Pod>, Vec<(String, String)>), String> {
        let request = cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                state: Some(cri::PodSandboxStateValue {
                    state: cri::PodSandboxState::SandboxReady as i32,
                }),
                label_selector: selector.label_selector(),
                ..Default::default()
            }),
        };
        let items = self
            .inner
            .list_pod_sandbox(request)
            .await
            .map_err(|e| format!("ListPodSandbox: {}", e.message()))?
            .into_inner()
            .items;
        let mut pods = Vec::new();
        let mut sandboxes = Vec::new();
        for sandbox in items {
            let metadata = sandbox.metadata.clone().unwrap_or_default();
            if !selector.matches(&metadata.namespace, &sandbox.labels, &sandbox.annotations) {
                continue;
            }
            let name = format!("{}/{}", metadata.namespace, metadata.name);
            let cgroup = match self.cgroups.get(&sandbox.id) {
                Some(cgroup) => cgroup.clone(),
                None => {
                    let info = self.info(&sandbox.id).await?;
                    let cgroup = info
                        .get("info")
                        .and_then(|info| cgroup_parent_from_info(info))
                        .and_then(|parent| pod_cgroup(&parent))
                        .ok_or_else(|| {
                            format!(
                                "pod {name}: the runtime does not tell its cgroup \
                                 (PodSandboxStatus)"
                            )
                        })?;
                    self.cgroups.insert(sandbox.id.clone(), cgroup.clone());
                    cgroup
                }
            };
            pods.push(Pod { name, cgroup });
            sandboxes.push(sandbox.id);
        }
        self.cgroups.retain(|id, _| sandboxes.contains(id));
        pods.sort();
        pods.dedup();
        let containers = if sandboxes.is_empty() {
            Vec::new()
        } else {
            self.inner
                .list_containers(cri::ListContainersRequest::default())
                .await
                .map_err(|e| format!("ListContainers: {}", e.message()))?
                .into_inner()
                .containers
                .into_iter()
                .filter(|c| sandboxes.contains(&c.pod_sandbox_id))
                .map(|c| (c.id, c.metadata.unwrap_or_default().name))
                .collect()
        };
        Ok((pods, containers))
    }

    /// The verbose `info` of a pod sandbox.
    async fn info(&mut self, id: &str) -> Result<HashMap<String, String>, String> {
        let request = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        Ok(self
            .inner
            .pod_sandbox_status(request)
            .await
            .map_err(|e| format!("PodSandboxStatus {id}: {}", e.message()))?
            .into_inner()
            .info)
    }

    /// The runtime's stream of container events (`GetContainerEvents`);
    /// `Err(true)` when the runtime does not implement it.
    pub async fn events(
        &mut self,
    ) -> Result<tonic::Streaming<cri::ContainerEventResponse>, (bool, String)> {
        self.inner
            .get_container_events(cri::GetEventsRequest::default())
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| {
                (
                    e.code() == tonic::Code::Unimplemented,
                    format!("GetContainerEvents: {}", e.message()),
                )
            })
    }
}

/// An error and its sources, one line (a source that repeats what is
/// said already is left out: tonic's transport error ends with its I/O
/// error's text).
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}
