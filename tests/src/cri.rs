//! A node without its kubelet: containerd (Debian's, with its CRI plugin)
//! started with the lab's configuration, images built locally and imported
//! (there is no registry), and pods run through the CRI socket with the
//! calls a kubelet makes, in its order: `RunPodSandbox` (labels,
//! annotations, the pod's cgroup parent), `CreateContainer`,
//! `StartContainer`, then `StopPodSandbox` and `RemovePodSandbox`.
//!
//! The cgroups are systemd's, as kubeadm sets up a node: containerd's runc
//! with `SystemdCgroup`, and the pod's slice named as the kubelet names it
//! (`kubepods-besteffort-pod<uid>.slice`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{self as cri};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::containers::{build, podman, static_binary};

/// containerd's well-known socket, where mptcpify looks by default.
pub const SOCKET: &str = "/run/containerd/containerd.sock";
/// The image of every pod's sandbox container: the static probe, asleep.
pub const PAUSE_IMAGE: &str = "localhost/pause:test";
/// An unmodified program: the static socket probe, alone on an empty base.
pub const PROBE_IMAGE: &str = "localhost/socket-probe:test";
/// The shipped image (deploy/container/Containerfile), which the DaemonSet runs.
pub const DAEMONSET_IMAGE: &str = "localhost/mptcpify:test";
const CONTAINERFILE: &str = include_str!("../../deploy/container/Containerfile");
/// Where the test's containerd keeps its logs, pods' logs and CNI config.
const DIR: &str = "/tmp/mptcpify-cri";

/// containerd, as the lab's root file system needs it: the `native`
/// snapshotter (the root is the initramfs, where overlay is not
/// supported) and no pivot_root (it cannot be pivoted away from); one
/// point-to-point CNI network for the pods.
fn config() -> String {
    format!(
        r#"version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
        NoPivotRoot = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{DIR}/net.d"
"#
    )
}

const CNI: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "lab",
  "plugins": [
    {"type": "ptp", "ipMasq": false,
     "ipam": {"type": "host-local", "subnet": "10.99.0.0/24"}}
  ]
}
"#;

/// containerd running, killed on drop.
pub struct Containerd {
    child: Child,
}

impl Containerd {
    /// Starts containerd and waits until its CRI answers; builds the pause
    /// and probe images and imports them.
    pub fn start() -> Containerd {
        std::fs::create_dir_all(format!("{DIR}/net.d")).unwrap();
        std::fs::write(format!("{DIR}/config.toml"), config()).unwrap();
        std::fs::write(format!("{DIR}/net.d/10-lab.conflist"), CNI).unwrap();
        let log = std::fs::File::create(format!("{DIR}/containerd.log")).unwrap();
        let child = Command::new("containerd")
            .args(["--config", &format!("{DIR}/config.toml")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting containerd (the lab's Debian image has it): {e}"));
        let containerd = Containerd { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::path::Path::new(SOCKET).exists() {
                if let Ok(mut cri) = Cri::connect(SOCKET) {
                    if cri.version().is_ok() {
                        break;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "containerd's CRI did not answer within 60 s:\n{}",
                containerd.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let probe = static_binary("socket-probe-static");
        for (image, entrypoint) in [
            (PAUSE_IMAGE, r#"["/socket-probe", "sleep", "100000"]"#),
            (PROBE_IMAGE, r#"["/socket-probe"]"#),
        ] {
            build(
                image,
                &format!(
                    "FROM scratch\nCOPY socket-probe /socket-probe\nENTRYPOINT {entrypoint}\n"
                ),
                &probe,
                "socket-probe",
            );
            import(image);
        }
        containerd
    }

    /// Builds the shipped image around the static mptcpify and imports it.
    pub fn import_mptcpify_image(&self) {
        build(
            DAEMONSET_IMAGE,
            CONTAINERFILE,
            &static_binary("mptcpify"),
            "mptcpify",
        );
        import(DAEMONSET_IMAGE);
    }

    /// What containerd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(format!("{DIR}/containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Saves podman's `image` as an OCI archive and imports it into
/// containerd's `k8s.io` namespace, where the CRI finds images.
fn import(image: &str) {
    let archive = format!("{DIR}/image.tar");
    let _ = std::fs::remove_file(&archive);
    podman(&["save", "--format", "oci-archive", "-o", &archive, image]);
    let out = Command::new("ctr")
        .args([
            "-n",
            "k8s.io",
            "images",
            "import",
            "--snapshotter",
            "native",
        ])
        .args(["--base-name", image.split(':').next().unwrap(), &archive])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctr images import {image}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A runtime that does not stream events: a proxy in front of
/// containerd's socket that answers `GetContainerEvents` as a runtime
/// without it does (gRPC status 12, unimplemented) and passes every other
/// call through. It serves until the test ends.
pub struct NoEventsProxy {
    pub path: String,
}

impl NoEventsProxy {
    pub fn start(path: &str) -> NoEventsProxy {
        let _ = std::fs::remove_file(path);
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(
                                TokioIo::new(stream),
                                hyper::service::service_fn(forward),
                            )
                            .await;
                    });
                }
            });
        });
        NoEventsProxy { path: path.into() }
    }
}

/// One call of [`NoEventsProxy`].
async fn forward(
    request: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, hyper::Error>>, std::io::Error> {
    if request.uri().path() == "/runtime.v1.RuntimeService/GetContainerEvents" {
        let unimplemented = Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "12")
            .header("grpc-message", "this runtime does not stream events")
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap();
        return Ok(unimplemented);
    }
    let io = |e: hyper::Error| std::io::Error::other(e.to_string());
    let upstream = tokio::net::UnixStream::connect(SOCKET).await?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(upstream))
            .await
            .map_err(io)?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(io)?;
    Ok(response.map(BodyExt::boxed))
}

/// A CRI client on a Unix socket, with its own runtime.
pub struct Cri {
    runtime: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
}

/// A pod the test ran.
pub struct Pod {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    config: cri::PodSandboxConfig,
}

impl Cri {
    pub fn connect(path: &str) -> Result<Cri, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let path = path.to_string();
        let channel = runtime
            .block_on(
                Endpoint::try_from("http://[::]:0")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(path).await?,
                            ))
                        }
                    })),
            )
            .map_err(|e| e.to_string())?;
        Ok(Cri {
            runtime,
            client: RuntimeServiceClient::new(channel),
        })
    }

    pub fn version(&mut self) -> Result<String, String> {
        let request = cri::VersionRequest::default();
        let reply = self
            .runtime
            .block_on(self.client.version(request))
            .map_err(|e| e.to_string())?;
        Ok(reply.into_inner().runtime_version)
    }

    /// `RunPodSandbox` as the kubelet calls it for a best-effort pod
    /// `namespace/name` with `labels`: the pod's own network namespace, its
    /// slice under `kubepods-besteffort.slice`.
    pub fn run_pod(&mut self, namespace: &str, name: &str, labels: &[(&str, &str)]) -> Pod {
        self.run_sandbox(namespace, name, labels, false)
    }

    /// `host_pid`: a privileged pod in the node's PID namespace (the
    /// DaemonSet's `privileged: true`, `hostPID: true`).
    fn run_sandbox(
        &mut self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        host_pid: bool,
    ) -> Pod {
        // A pod made again under the same name is a new pod: a new uid.
        static PODS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = PODS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uid = format!(
            "{:08x}-{n:04}-{}",
            std::process::id(),
            name.replace('_', "-")
        );
        let log_directory = format!("{DIR}/pods/{namespace}_{name}_{uid}");
        std::fs::create_dir_all(&log_directory).unwrap();
        let pid = if host_pid {
            cri::NamespaceMode::Node
        } else {
            cri::NamespaceMode::Container
        };
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: uid.clone(),
                namespace: namespace.into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory,
            labels: owned(labels),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: pod_slice(&uid),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Pod as i32,
                        pid: pid as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    privileged: host_pid,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        let reply = self
            .runtime
            .block_on(self.client.run_pod_sandbox(request))
            .unwrap_or_else(|e| panic!("RunPodSandbox {namespace}/{name}: {e}"));
        Pod {
            id: reply.into_inner().pod_sandbox_id,
            name: name.into(),
            namespace: namespace.into(),
            uid,
            config,
        }
    }

    /// The DaemonSet's pod (deploy/kubernetes/daemonset.yaml) as the
    /// kubelet runs it: privileged, in the node's PID namespace, the
    /// node's /sys/kernel/btf and /run/containerd mounted read-only, the
    /// shipped image ([`DAEMONSET_IMAGE`]) with `args`. Returns the pod and
    /// its container's id, started.
    pub fn run_daemonset_pod(&mut self, args: &[&str]) -> (Pod, String) {
        let pod = self.run_sandbox("mptcpify-system", "mptcpify", &[], true);
        let mount = |path: &str| cri::Mount {
            container_path: path.into(),
            host_path: path.into(),
            readonly: true,
            ..Default::default()
        };
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "mptcpify".into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: DAEMONSET_IMAGE.into(),
                ..Default::default()
            }),
            args: args.iter().map(|a| a.to_string()).collect(),
            mounts: vec![mount("/sys/kernel/btf"), mount("/run/containerd")],
            log_path: "mptcpify.log".into(),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    privileged: true,
                    namespace_options: pod
                        .config
                        .linux
                        .as_ref()
                        .and_then(|l| l.security_context.as_ref())
                        .and_then(|s| s.namespace_options.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self.create_and_start(&pod, config);
        (pod, id)
    }

    /// What a container of `pod` printed so far (CRI log lines' text).
    pub fn log(&self, pod: &Pod, name: &str) -> String {
        let log = format!("{}/{name}.log", pod.config.log_directory);
        // CRI log lines: "TIME STREAM TAG TEXT".
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_string))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `StopContainer`: SIGTERM, then SIGKILL after `timeout` seconds.
    pub fn stop_container(&mut self, id: &str, timeout: i64) {
        self.runtime
            .block_on(self.client.stop_container(cri::StopContainerRequest {
                container_id: id.into(),
                timeout,
            }))
            .unwrap_or_else(|e| panic!("StopContainer {id}: {e}"));
    }

    fn create_and_start(&mut self, pod: &Pod, config: cri::ContainerConfig) -> String {
        let name = config.metadata.clone().unwrap_or_default().name;
        let request = cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        let id = self
            .runtime
            .block_on(self.client.create_container(request))
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
            .into_inner()
            .container_id;
        let request = cri::StartContainerRequest {
            container_id: id.clone(),
        };
        self.runtime
            .block_on(self.client.start_container(request))
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
        id
    }

    /// `CreateContainer` and `StartContainer` of the probe in `pod`, as
    /// container `name`, with `args` (`sleep 1`: it lives on a second after
    /// its socket); waits until it exited and returns what it printed.
    pub fn run_probe(&mut self, pod: &Pod, name: &str, args: &[&str]) -> String {
        self.run_probe_attempt(pod, name, 0, args)
    }

    /// The kubelet's restart of container `name` after it exited (a pod's
    /// `restartPolicy: Always`): `CreateContainer` in the same sandbox
    /// under the same name with the next `attempt`, then `StartContainer`.
    /// The runtime gives it a new container id and cgroup, inside the
    /// pod's. What it printed.
    pub fn restart_probe(&mut self, pod: &Pod, name: &str, attempt: u32, args: &[&str]) -> String {
        self.run_probe_attempt(pod, name, attempt, args)
    }

    fn run_probe_attempt(&mut self, pod: &Pod, name: &str, attempt: u32, args: &[&str]) -> String {
        let log = log_name(name, attempt);
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt,
            }),
            image: Some(cri::ImageSpec {
                image: PROBE_IMAGE.into(),
                ..Default::default()
            }),
            args: args.iter().map(|a| a.to_string()).collect(),
            log_path: format!("{log}.log"),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..Default::default()
        };
        let id = self.create_and_start(pod, config);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let request = cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            };
            let status = self
                .runtime
                .block_on(self.client.container_status(request))
                .unwrap_or_else(|e| panic!("ContainerStatus {name}: {e}"))
                .into_inner()
                .status
                .unwrap();
            if status.state == cri::ContainerState::ContainerExited as i32 {
                break;
            }
            assert!(Instant::now() < deadline, "{name} did not exit: {status:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.log(pod, &log)
    }

    /// `StopPodSandbox` and `RemovePodSandbox`, as the kubelet does when the
    /// pod is deleted.
    pub fn remove_pod(&mut self, pod: &Pod) {
        let id = pod.id.clone();
        self.runtime
            .block_on(self.client.stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            }))
            .unwrap_or_else(|e| panic!("StopPodSandbox {}: {e}", pod.name));
        self.runtime
            .block_on(
                self.client
                    .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id }),
            )
            .unwrap_or_else(|e| panic!("RemovePodSandbox {}: {e}", pod.name));
    }
}

/// The log file's name (without `.log`) of a container's `attempt`: one
/// file per attempt, as the kubelet keeps them.
fn log_name(name: &str, attempt: u32) -> String {
    match attempt {
        0 => name.to_string(),
        n => format!("{name}.{n}"),
    }
}

/// The pod's slice as the kubelet's systemd cgroup driver names it for a
/// best-effort pod (the uid's dashes become underscores: a dash in a slice
/// name means nesting).
pub fn pod_slice(uid: &str) -> String {
    format!("kubepods-besteffort-pod{}.slice", uid.replace('-', "_"))
}

/// The pod's cgroup directory, relative to the cgroup2 mount.
pub fn pod_cgroup(uid: &str) -> PathBuf {
    PathBuf::from("kubepods.slice/kubepods-besteffort.slice").join(pod_slice(uid))
}

fn owned(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
