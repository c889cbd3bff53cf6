//! Real nodes: privileged containers of the node image (scripts/node-image.sh)
//! started through testcontainers, each running containerd and a real kubelet
//! v1.20.2 that registers with a [`ControlPlane`] on this machine.
//!
//! The control plane must have been started with
//! [`ControlPlaneOptions::node_address`](crate::ControlPlaneOptions::node_address)
//! set to [`docker_gateway`], so the kubelets can reach it across the Docker
//! bridge. Each node gets a client certificate for `system:node:NAME` and its
//! own pod subnet, and writes its containerd and kubelet logs into
//! the control plane's log directory (`node-NAME/`), kept when a test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use testcontainers::core::{ExecCommand, Mount};
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{ContainerAsync, GenericImage, ImageExt as _};

use crate::control_plane::{ControlPlane, random_token, sanitize};
use crate::error::{Error, Result, io};
use crate::wait::{scaled, wait_until};

/// The node image's tag, as scripts/node-image.sh printed it.
pub const IMAGE_ENV: &str = "STSMEND_E2E_NODE_IMAGE";

/// The test images preloaded into every node's containerd. `localhost:5999`
/// serves nothing, so any other image under it fails to pull, for real, and
/// no pull ever leaves the machine.
pub mod images {
    /// Serves HTTP on :8080; `GET /healthz` answers once it is warm (1 s, or
    /// `READY_AFTER`); on SIGTERM it "migrates" for `SHUTDOWN_SECONDS`.
    pub const APP_1: &str = "localhost:5999/stsmend/app:1";
    /// The same server, version 2: a good release.
    pub const APP_2: &str = "localhost:5999/stsmend/app:2";
    /// Prints a configuration error and exits 1.
    pub const APP_2_CRASH: &str = "localhost:5999/stsmend/app:2-crash";
    /// Allocates until its memory limit kills it (OOMKilled).
    pub const APP_2_OOM: &str = "localhost:5999/stsmend/app:2-oom";
    /// Not preloaded: pulling it fails (ErrImagePull, then ImagePullBackOff).
    pub const APP_2_MISSING: &str = "localhost:5999/stsmend/app:2-missing";
    /// The pod sandbox image.
    pub const PAUSE: &str = "localhost:5999/stsmend/pause:3.2";
}

/// The node image to start: `STSMEND_E2E_NODE_IMAGE`, else an error saying
/// how to build it.
pub fn node_image() -> Result<String> {
    std::env::var(IMAGE_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::Other(format!(
                "{IMAGE_ENV} is not set: build the node image with \
                 `eval \"$(bash scripts/engine.sh)\"; export {IMAGE_ENV}=$(bash scripts/node-image.sh \
                 \"$STSMEND_E2E_ASSETS\" | tail -n 1)` (scripts/test.sh does this)"
            ))
        })
}

/// The Docker bridge's gateway: the address node containers reach this
/// machine at.
pub fn docker_gateway() -> Result<std::net::IpAddr> {
    let out = Command::new("docker")
        .args([
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}}|{{.Subnet}} {{end}}",
        ])
        .output()
        .map_err(io("run docker network inspect bridge"))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "docker network inspect bridge: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    gateway_of(&text)
        .map(std::net::IpAddr::V4)
        .ok_or_else(|| Error::Other(format!("the bridge network has no IPv4 gateway: {text:?}")))
}

/// From `GATEWAY|SUBNET ...`: the gateway, or where the engine leaves it
/// unsaid (Docker 20.10's default bridge), the subnet's first address, which
/// is what Docker gives its bridge.
fn gateway_of(text: &str) -> Option<std::net::Ipv4Addr> {
    text.split_whitespace().find_map(|entry| {
        let (gateway, subnet) = entry.split_once('|').unwrap_or((entry, ""));
        gateway.parse().ok().or_else(|| {
            let base: std::net::Ipv4Addr = subnet.split_once('/')?.0.parse().ok()?;
            Some(std::net::Ipv4Addr::from(u32::from(base) + 1))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::gateway_of;

    #[test]
    fn the_gateway_is_said_or_the_subnets_first_address() {
        assert_eq!(
            gateway_of("172.18.0.1|172.18.0.0/16 \n"),
            Some([172, 18, 0, 1].into())
        );
        assert_eq!(
            gateway_of("|172.17.0.0/16 \n"),
            Some([172, 17, 0, 1].into())
        );
        assert_eq!(gateway_of("|fd00::/64 \n"), None);
        assert_eq!(gateway_of(" \n"), None);
    }
}

/// A node to start.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    /// `key=value` labels the kubelet registers with.
    pub labels: Vec<String>,
    /// `key=value:Effect` taints the kubelet registers with.
    pub taints: Vec<String>,
}

impl NodeSpec {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: Vec::new(),
            taints: Vec::new(),
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push(format!("{key}={value}"));
        self
    }

    pub fn zone(self, zone: &str) -> Self {
        self.label("topology.kubernetes.io/zone", zone)
    }

    pub fn taint(mut self, taint: &str) -> Self {
        self.taints.push(taint.to_string());
        self
    }
}

/// One running node container.
pub struct RealNode {
    pub name: String,
    container: ContainerAsync<GenericImage>,
}

impl std::fmt::Debug for RealNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealNode")
            .field("name", &self.name)
            .field("container", &self.container.id())
            .finish_non_exhaustive()
    }
}

/// The nodes of one control plane. Dropping it removes their containers
/// (testcontainers does, as each container handle drops).
pub struct RealNodes {
    nodes: Vec<RealNode>,
    image: String,
    server: String,
    ca: PathBuf,
    api_service: String,
    work: PathBuf,
    logs: PathBuf,
    pki: crate::pki::Pki,
    client: kube::Client,
    prefix: String,
}

impl std::fmt::Debug for RealNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealNodes")
            .field("image", &self.image)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl RealNodes {
    /// Starts `specs` and waits until each is Ready.
    pub async fn start(cp: &ControlPlane, specs: Vec<NodeSpec>) -> Result<Self> {
        let image = node_image()?;
        let server = cp.node_server_url().ok_or_else(|| {
            Error::Other(
                "the control plane was started without node_address: node containers cannot reach it"
                    .into(),
            )
        })?;
        let api_service = server.trim_start_matches("https://").to_string();
        // Docker names are global: the test's name and a random suffix keep
        // parallel tests apart, and `docker ps` shows whose nodes they are.
        let test = sanitize(
            cp.log_dir()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("e2e"),
        );
        let prefix = format!(
            "stsmend-{}-{}",
            test.chars().take(40).collect::<String>(),
            &random_token()[..6]
        );
        let mut nodes = Self {
            nodes: Vec::new(),
            image,
            server,
            ca: cp.ca_cert().to_path_buf(),
            api_service,
            work: cp.work_dir().join("nodes"),
            logs: cp.log_dir().to_path_buf(),
            pki: cp.pki().clone(),
            client: cp.client(),
            prefix,
        };
        for spec in specs {
            nodes.add_node(spec).await?;
        }
        Ok(nodes)
    }

    /// Starts one more node and waits until it is Ready.
    pub async fn add_node(&mut self, spec: NodeSpec) -> Result<()> {
        // Nodes are only ever added, so their count numbers the subnets.
        let index = self.nodes.len() + 1;
        let name = spec.name.clone();
        let dir = self.work.join(&name);
        let etc = dir.join("etc");
        let containerd = dir.join("containerd");
        let log_dir = self.logs.join(format!("node-{name}"));
        for d in [&etc, &containerd, &log_dir] {
            std::fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
        }
        self.pki.client_cert(
            &etc,
            "kubelet",
            &format!("system:node:{name}"),
            "system:nodes",
        )?;
        std::fs::copy(&self.ca, etc.join("ca.crt")).map_err(io("copy the CA"))?;
        write_kubelet_kubeconfig(&etc.join("kubeconfig"), &self.server)?;

        let (repo, tag) = self
            .image
            .rsplit_once(':')
            .ok_or_else(|| Error::Other(format!("{IMAGE_ENV}={} has no tag", self.image)))?;
        let s = |p: &Path| p.display().to_string();
        let request = GenericImage::new(repo, tag)
            .with_container_name(format!("{}-{name}", self.prefix))
            .with_privileged(true)
            .with_mount(Mount::bind_mount(s(&etc), "/etc/stsmend"))
            .with_mount(Mount::bind_mount(s(&log_dir), "/var/log/stsmend"))
            .with_mount(Mount::bind_mount(s(&containerd), "/var/lib/containerd"))
            .with_env_var("NODE_NAME", &name)
            .with_env_var("POD_SUBNET", format!("10.244.{index}.0/24"))
            .with_env_var("API_SERVICE", &self.api_service)
            .with_env_var("NODE_LABELS", spec.labels.join(","))
            .with_env_var("NODE_TAINTS", spec.taints.join(","))
            .with_startup_timeout(scaled(Duration::from_secs(60)));
        tracing::info!(node = %name, image = %self.image, "starting a node container");
        let container = request
            .start()
            .await
            .map_err(|e| Error::Other(format!("start node container {name}: {e}")))?;
        self.nodes.push(RealNode {
            name: name.clone(),
            container,
        });
        self.wait_ready(&name).await
    }

    async fn wait_ready(&self, name: &str) -> Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let node = self.node(name)?;
        wait_until(
            format!("node {name} Ready"),
            Duration::from_secs(120),
            || {
                let api = api.clone();
                async move {
                    if !node.container.is_running().await.unwrap_or(false) {
                        // Not a transient state: stop waiting at once.
                        return Ok(Err(format!(
                            "the node container exited; see {}",
                            self.logs.join(format!("node-{name}")).display()
                        )));
                    }
                    let n = api.get(name).await.map_err(|e| e.to_string())?;
                    let ready = n
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    let tainted = n
                        .spec
                        .and_then(|s| s.taints)
                        .unwrap_or_default()
                        .iter()
                        .any(|t| t.key == "node.kubernetes.io/not-ready");
                    if ready && !tainted {
                        Ok(Ok(()))
                    } else {
                        Err(format!("ready {ready}, not-ready taint {tainted}"))
                    }
                }
            },
        )
        .await?
        .map_err(Error::Other)
    }

    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn node(&self, name: &str) -> Result<&RealNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::Other(format!("no node {name}")))
    }

    /// Runs a command in the node container; returns its stdout.
    pub async fn exec(&self, name: &str, cmd: &[&str]) -> Result<String> {
        let node = self.node(name)?;
        let mut out = node
            .container
            .exec(ExecCommand::new(cmd.iter().copied()))
            .await
            .map_err(|e| Error::Other(format!("exec {cmd:?} on {name}: {e}")))?;
        let stdout = out
            .stdout_to_vec()
            .await
            .map_err(|e| Error::Other(format!("exec {cmd:?} on {name}: {e}")))?;
        match out.exit_code().await {
            Ok(Some(0)) | Ok(None) => Ok(String::from_utf8_lossy(&stdout).into_owned()),
            Ok(Some(code)) => {
                let stderr = out.stderr_to_vec().await.unwrap_or_default();
                Err(Error::Other(format!(
                    "{cmd:?} on {name} exited {code}: {}",
                    String::from_utf8_lossy(&stderr).trim()
                )))
            }
            Err(e) => Err(Error::Other(format!("exec {cmd:?} on {name}: {e}"))),
        }
    }

    /// Loads a local Docker image into every node's containerd, as a
    /// registry would have served it: `docker save` into the node's mounted
    /// configuration directory, then `ctr import` inside the node.
    pub async fn load_image(&self, image: &str) -> Result<()> {
        for node in &self.nodes {
            let tar = self.work.join(&node.name).join("etc").join("image.tar");
            let out = tokio::process::Command::new("docker")
                .args(["save", "-o"])
                .arg(&tar)
                .arg(image)
                .output()
                .await
                .map_err(io("run docker save"))?;
            if !out.status.success() {
                return Err(Error::Other(format!(
                    "docker save {image}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            self.exec(
                &node.name,
                &[
                    "ctr",
                    "-n",
                    "k8s.io",
                    "images",
                    "import",
                    "/etc/stsmend/image.tar",
                ],
            )
            .await?;
            let _ = std::fs::remove_file(&tar);
        }
        Ok(())
    }

    /// Stops the node's kubelet for good (the container and its pods stay):
    /// after 40 s the node lifecycle controller marks it NotReady.
    pub async fn stop_kubelet(&self, name: &str) -> Result<()> {
        self.exec(name, &["pkill", "-STOP", "-x", "kubelet"])
            .await
            .map(drop)
    }

    /// Removes every node container; also what dropping does.
    pub async fn stop(mut self) {
        for node in self.nodes.drain(..) {
            remove(node).await;
        }
    }
}

async fn remove(node: RealNode) {
    if let Err(e) = node.container.rm().await {
        tracing::warn!(node = %node.name, error = %e, "removing the node container failed");
    }
}

fn write_kubelet_kubeconfig(path: &Path, server: &str) -> Result<()> {
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    \
         certificate-authority: /etc/stsmend/ca.crt\nusers:\n- name: kubelet\n  user:\n    \
         client-certificate: /etc/stsmend/kubelet.crt\n    client-key: /etc/stsmend/kubelet.key\n\
         contexts:\n- name: e2e\n  context: {{cluster: e2e, user: kubelet}}\ncurrent-context: e2e\n"
    );
    std::fs::write(path, yaml).map_err(io(format!("write {}", path.display())))
}
