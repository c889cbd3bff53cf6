//! The k3s backend: a real single-node Kubernetes (k3s, with a kubelet and
//! containerd) in a Docker container, through testcontainers-modules.
//!
//! It needs a reachable Docker engine; [`docker_engine`] finds one the way
//! testcontainers does, so a test can skip cleanly where there is none.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::Api;
use testcontainers_modules::k3s::{K3s as K3sImage, KUBE_SECURE_PORT};
use testcontainers_modules::testcontainers::core::ExecCommand;
use testcontainers_modules::testcontainers::core::logs::LogFrame;
use testcontainers_modules::testcontainers::runners::AsyncRunner as _;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt as _};

use crate::control_plane::{random_token, sanitize};
use crate::error::{Error, Result, io};
use crate::kubeconfig;
use crate::logs::LogDir;
use crate::wait::{scaled, wait_until};

/// The rancher/k3s image tag started by default (Kubernetes v1.33).
pub const DEFAULT_TAG: &str = "v1.33.1-k3s1";

/// Overrides [`DEFAULT_TAG`], e.g. `v1.34.1-k3s1`.
pub const TAG_ENV: &str = "STSMEND_E2E_K3S_TAG";

/// Overrides the kubectl used against k3s (default: `kubectl` on PATH).
pub const KUBECTL_ENV: &str = "STSMEND_E2E_KUBECTL";

/// Where k3s writes its admin kubeconfig inside the container.
const KUBECONFIG_IN_CONTAINER: &str = "/etc/rancher/k3s/k3s.yaml";
/// The server address in that kubeconfig.
const SERVER_IN_CONTAINER: &str = "https://127.0.0.1:6443";

/// Finds the Docker engine testcontainers will use and checks that it
/// answers: `DOCKER_HOST` if set, else the first socket that exists of
/// `/var/run/docker.sock`, `$XDG_RUNTIME_DIR/.docker/run/docker.sock`,
/// `$HOME/.docker/run/docker.sock`, `$HOME/.docker/desktop/docker.sock`.
///
/// Returns the engine's address, or why none is reachable, e.g.
/// `DOCKER_HOST unset, /var/run/docker.sock absent`.
pub fn docker_engine() -> std::result::Result<String, String> {
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return probe(&host)
            .map(|()| host.clone())
            .map_err(|e| format!("DOCKER_HOST={host}: {e}"));
    }
    let mut candidates = vec![PathBuf::from("/var/run/docker.sock")];
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        candidates.push(Path::new(&dir).join(".docker/run/docker.sock"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        candidates.push(Path::new(&home).join(".docker/run/docker.sock"));
        candidates.push(Path::new(&home).join(".docker/desktop/docker.sock"));
    }
    // testcontainers takes the first that exists, reachable or not.
    match candidates.iter().find(|p| p.exists()) {
        Some(sock) => {
            let host = format!("unix://{}", sock.display());
            probe(&host)
                .map(|()| host)
                .map_err(|e| format!("DOCKER_HOST unset, {}: {e}", sock.display()))
        }
        None => Err("DOCKER_HOST unset, /var/run/docker.sock absent".to_string()),
    }
}

/// Unix sockets get a `GET /_ping`; TCP addresses a connect (they may speak
/// TLS); other schemes (ssh, npipe) are left to testcontainers.
fn probe(host: &str) -> std::result::Result<(), String> {
    const TIMEOUT: Duration = Duration::from_secs(3);
    if let Some(path) = host.strip_prefix("unix://") {
        let mut s = UnixStream::connect(path).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            .map_err(|e| format!("send /_ping: {e}"))?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).map_err(|e| format!("read /_ping: {e}"))?;
        let head = String::from_utf8_lossy(&buf[..n]);
        let status = head.lines().next().unwrap_or_default();
        return if status.starts_with("HTTP/1.") && status.contains(" 200") {
            Ok(())
        } else {
            Err(format!("/_ping answered {status:?}"))
        };
    }
    let rest = ["tcp://", "http://", "https://"]
        .iter()
        .find_map(|p| host.strip_prefix(p));
    let Some(rest) = rest else {
        return Ok(());
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let addrs: Vec<_> = authority
        .to_socket_addrs()
        .map_err(|e| format!("resolve {authority}: {e}"))?
        .collect();
    let mut last = format!("{authority} resolves to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("connect {a}: {e}"),
        }
    }
    Err(last)
}

#[derive(Debug, Clone, Default)]
pub struct K3sOptions {
    /// Names the log directory (`e2e/logs/<name>/`); defaults to the current
    /// thread's name, which libtest and nextest set to the test's name.
    pub name: Option<String>,
    /// The rancher/k3s tag; default `STSMEND_E2E_K3S_TAG`, else
    /// [`DEFAULT_TAG`].
    pub tag: Option<String>,
}

impl K3sOptions {
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    pub async fn start(self) -> Result<K3s> {
        K3s::start_with(self).await
    }
}

/// A running k3s container. Dropping it removes the container (also when a
/// test panics) and keeps the k3s log; see [`K3s::shutdown`].
pub struct K3s {
    container: Option<ContainerAsync<K3sImage>>,
    work: WorkDir,
    logs: LogDir,
    tag: String,
    server: String,
    /// Set when the server is not reached on loopback: the serving
    /// certificate names `localhost`, not the Docker host's address.
    tls_server_name: Option<&'static str>,
    ca_pem: Vec<u8>,
    admin_kubeconfig: PathBuf,
    kubectl: PathBuf,
    client: kube::Client,
}

impl std::fmt::Debug for K3s {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K3s")
            .field("tag", &self.tag)
            .field("server", &self.server)
            .field("container", &self.container.as_ref().map(|c| c.id()))
            .field("work", &self.work.path)
            .field("logs", &self.logs.path())
            .finish_non_exhaustive()
    }
}

impl K3s {
    /// Starts k3s with default options and waits until its API server is
    /// ready, its node is Ready and the `default` ServiceAccount exists.
    pub async fn start() -> Result<Self> {
        Self::start_with(K3sOptions::default()).await
    }

    pub fn builder() -> K3sOptions {
        K3sOptions::default()
    }

    pub async fn start_with(opts: K3sOptions) -> Result<Self> {
        let started = std::time::Instant::now();
        let engine = docker_engine()
            .map_err(|why| Error::Other(format!("no Docker engine reachable ({why})")))?;
        let name = opts.name.unwrap_or_else(default_name);
        let tag = opts
            .tag
            .or_else(|| std::env::var(TAG_ENV).ok().filter(|t| !t.is_empty()))
            .unwrap_or_else(|| DEFAULT_TAG.to_string());
        let kubectl = std::env::var_os(KUBECTL_ENV)
            .filter(|k| !k.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("kubectl"));
        let logs = LogDir::create(&name)?;
        let work = WorkDir::create(&name)?;

        let log_path = logs.path().join("k3s.log");
        let log_file = std::fs::File::create(&log_path)
            .map_err(io(format!("create {}", log_path.display())))?;
        let log_file = Mutex::new(log_file);
        tracing::info!(%engine, %tag, "starting k3s");
        let container = K3sImage::default()
            .with_tag(&tag)
            // Lighter and quicker to start; nothing here needs an ingress,
            // a load balancer or metrics.
            .with_cmd([
                "server",
                "--snapshotter=native",
                "--disable=traefik,servicelb,metrics-server",
            ])
            .with_privileged(true)
            .with_userns_mode("host")
            .with_startup_timeout(scaled(Duration::from_secs(240)))
            .with_log_consumer(move |frame: &LogFrame| {
                let mut f = log_file.lock().unwrap_or_else(|p| p.into_inner());
                let _ = f.write_all(frame.bytes());
            })
            .start()
            .await
            .map_err(|e| {
                Error::Other(format!(
                    "start rancher/k3s:{tag} on {engine}: {e} (log: {})",
                    log_path.display()
                ))
            })?;

        let host = container
            .get_host()
            .await
            .map_err(|e| Error::Other(format!("k3s container host: {e}")))?
            .to_string();
        let port = container
            .get_host_port_ipv4(KUBE_SECURE_PORT)
            .await
            .map_err(|e| Error::Other(format!("k3s API port: {e}")))?;
        let server = format!("https://{host}:{port}");
        let tls_server_name = if matches!(host.as_str(), "localhost" | "127.0.0.1") {
            None
        } else {
            Some("localhost")
        };

        let raw = read_kubeconfig(&container).await?;
        let admin_yaml = rewrite_server(&raw, &server, tls_server_name)?;
        let ca_pem = ca_of(&admin_yaml)?;
        let admin_kubeconfig = work.path.join("admin.kubeconfig");
        std::fs::write(&admin_kubeconfig, &admin_yaml)
            .map_err(io(format!("write {}", admin_kubeconfig.display())))?;
        let client = kubeconfig::client(&admin_kubeconfig).await?;

        let k = Self {
            container: Some(container),
            work,
            logs,
            tag,
            server,
            tls_server_name,
            ca_pem,
            admin_kubeconfig,
            kubectl,
            client,
        };
        k.wait_ready().await?;
        tracing::info!(
            server = %k.server,
            logs = %k.logs.path().display(),
            "k3s {} ready in {:.1?}",
            k.tag,
            started.elapsed()
        );
        Ok(k)
    }

    async fn wait_ready(&self) -> Result<()> {
        let timeout = Duration::from_secs(120);
        wait_until("k3s /readyz", timeout, || async {
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            match self.client.request_text(req).await {
                Ok(body) if body.trim() == "ok" => Ok(()),
                Ok(body) => Err(body),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        let nodes: Api<Node> = Api::all(self.client.clone());
        wait_until("the k3s node to be Ready", timeout, || async {
            let list = nodes
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let ready = list.items.iter().any(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            if ready {
                Ok(())
            } else {
                Err(format!("{} node(s), none Ready", list.items.len()))
            }
        })
        .await?;
        // Pods created before it exists are rejected by admission.
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), "default");
        wait_until("ServiceAccount default/default", timeout, || async {
            match sas.get_opt("default").await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("not created yet".to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    /// An admin client (k3s's `system:admin` client certificate).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// The rancher/k3s tag running.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// Scratch space that lives as long as the cluster.
    pub fn work_dir(&self) -> &Path {
        &self.work.path
    }

    /// Where the k3s log goes (`e2e/logs/<name>/k3s.log`).
    pub fn log_dir(&self) -> &Path {
        self.logs.path()
    }

    /// Writes a kubeconfig for `token` (e.g. a ServiceAccount's, from
    /// `kubectl create token`) into the work directory and returns its path.
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> Result<PathBuf> {
        let path = self
            .work
            .path
            .join(format!("{}.kubeconfig", sanitize(name)));
        kubeconfig::write(&path, &self.server, &self.ca_pem, name, token)?;
        if let Some(sni) = self.tls_server_name {
            let text = std::fs::read_to_string(&path).map_err(io("read kubeconfig"))?;
            let text = add_tls_server_name(&text, &self.server, sni)?;
            std::fs::write(&path, text).map_err(io(format!("write {}", path.display())))?;
        }
        Ok(path)
    }

    /// Runs kubectl (`STSMEND_E2E_KUBECTL`, else `kubectl` on PATH) with the
    /// admin kubeconfig.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_with_stdin(args, None).await
    }

    /// `kubectl apply -f -` of a YAML or JSON manifest.
    pub async fn apply(&self, manifest: &str) -> Result<String> {
        self.kubectl_with_stdin(&["apply", "-f", "-"], Some(manifest))
            .await
    }

    pub async fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        crate::kubectl::run(
            &self.kubectl,
            &self.admin_kubeconfig,
            &self.work.path.join("kubectl-cache"),
            args,
            stdin,
        )
        .await
    }

    /// k3s runs the API server in one process with everything else.
    pub async fn restart_apiserver(&self) -> Result<()> {
        Err(Error::Unsupported {
            operation: "restart_apiserver",
            backend: "k3s",
        })
    }

    /// The last line of a passing test: removes the container and the log
    /// (unless `STSMEND_E2E_KEEP_LOGS` is set). A test that fails or panics
    /// drops the cluster instead, which keeps the log and prints its path.
    pub async fn shutdown(mut self) {
        if let Some(c) = self.container.take()
            && let Err(e) = c.rm().await
        {
            tracing::warn!("removing the k3s container failed: {e}");
        }
        self.logs.mark_passed();
    }
}

/// Reads k3s's admin kubeconfig with `cat` in the container (works with a
/// remote Docker engine too, unlike a bind mount), retrying until k3s has
/// written it.
async fn read_kubeconfig(container: &ContainerAsync<K3sImage>) -> Result<String> {
    wait_until(
        format!("{KUBECONFIG_IN_CONTAINER} in the k3s container"),
        Duration::from_secs(60),
        || async {
            let mut exec = container
                .exec(ExecCommand::new(["cat", KUBECONFIG_IN_CONTAINER]))
                .await
                .map_err(|e| e.to_string())?;
            let out = exec.stdout_to_vec().await.map_err(|e| e.to_string())?;
            let err = exec.stderr_to_vec().await.map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out).into_owned();
            if text.contains(SERVER_IN_CONTAINER) {
                Ok(text)
            } else {
                Err(format!(
                    "stdout {:?}, stderr {:?}",
                    text.trim(),
                    String::from_utf8_lossy(&err).trim()
                ))
            }
        },
    )
    .await
}

/// Points k3s's kubeconfig at the port Docker mapped 6443 to.
fn rewrite_server(yaml: &str, server: &str, tls_server_name: Option<&str>) -> Result<String> {
    let from = format!("server: {SERVER_IN_CONTAINER}");
    if !yaml.contains(&from) {
        return Err(Error::Other(format!(
            "k3s kubeconfig has no `{from}`:\n{yaml}"
        )));
    }
    let to = format!("server: {server}");
    let out = yaml.replace(&from, &to);
    match tls_server_name {
        Some(sni) => add_tls_server_name(&out, server, sni),
        None => Ok(out),
    }
}

/// Adds `tls-server-name` next to every `server:` line of `server`, with the
/// same indentation.
fn add_tls_server_name(yaml: &str, server: &str, sni: &str) -> Result<String> {
    let mut out = String::with_capacity(yaml.len() + 64);
    let mut found = false;
    for line in yaml.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim() == format!("server: {server}") {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}tls-server-name: {sni}\n"));
            found = true;
        }
    }
    if found {
        Ok(out)
    } else {
        Err(Error::Other(format!(
            "no `server: {server}` line in:\n{yaml}"
        )))
    }
}

/// The CA of the (single) cluster in a kubeconfig, as PEM.
fn ca_of(yaml: &str) -> Result<Vec<u8>> {
    let kc = kube::config::Kubeconfig::from_yaml(yaml)?;
    let data = kc
        .clusters
        .iter()
        .filter_map(|c| c.cluster.as_ref())
        .find_map(|c| c.certificate_authority_data.clone())
        .ok_or_else(|| Error::Other("k3s kubeconfig has no certificate-authority-data".into()))?;
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Error::Other(format!("k3s certificate-authority-data: {e}")))
}

fn default_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string)
        .unwrap_or_else(|| format!("k3s-{}", std::process::id()))
}

/// Kubeconfigs and kubectl's cache; removed on drop.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn create(name: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "stsmend-e2e-k3s-{}-{}-{}",
            sanitize(name),
            std::process::id(),
            random_token()
        ));
        std::fs::create_dir_all(&path).map_err(io(format!("create {}", path.display())))?;
        Ok(Self { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape of /etc/rancher/k3s/k3s.yaml (CA shortened to a valid one).
    const K3S_YAML: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
";

    #[test]
    fn the_server_is_rewritten_to_the_mapped_port() {
        let out = rewrite_server(K3S_YAML, "https://localhost:32768", None).unwrap();
        assert!(
            out.contains("    server: https://localhost:32768\n"),
            "{out}"
        );
        assert!(!out.contains("6443"), "{out}");
        assert!(!out.contains("tls-server-name"), "{out}");
        let kc = kube::config::Kubeconfig::from_yaml(&out).unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://localhost:32768"));
    }

    #[test]
    fn a_remote_engine_gets_tls_server_name_localhost() {
        let out = rewrite_server(K3S_YAML, "https://172.17.0.1:32768", Some("localhost")).unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&out).unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://172.17.0.1:32768"));
        assert_eq!(cluster.tls_server_name.as_deref(), Some("localhost"));
    }

    #[test]
    fn a_kubeconfig_without_the_expected_server_is_an_error() {
        let other = K3S_YAML.replace("127.0.0.1:6443", "10.0.0.1:6443");
        let err = rewrite_server(&other, "https://localhost:1", None).unwrap_err();
        assert!(
            err.to_string()
                .contains("has no `server: https://127.0.0.1:6443`")
        );
    }

    #[test]
    fn the_ca_is_decoded_to_pem() {
        let pem = ca_of(K3S_YAML).unwrap();
        let pem = String::from_utf8(pem).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
        assert!(
            pem.trim_end().ends_with("-----END CERTIFICATE-----"),
            "{pem}"
        );
    }

    #[test]
    fn token_kubeconfigs_get_tls_server_name_too() {
        let dir = std::env::temp_dir().join(format!("stsmend-k3s-unit-{}", random_token()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.kubeconfig");
        kubeconfig::write(&path, "https://10.1.2.3:4", b"pem", "sa", "tok").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = add_tls_server_name(&text, "https://10.1.2.3:4", "localhost").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.tls_server_name.as_deref(), Some("localhost"));
        assert_eq!(cluster.server.as_deref(), Some("https://10.1.2.3:4"));
    }

    #[test]
    fn no_engine_is_reported_by_path() {
        // Only meaningful where there is no engine, as on the build machines.
        if std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists() {
            return;
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let rootless = home.iter().any(|h| {
            h.join(".docker/run/docker.sock").exists()
                || h.join(".docker/desktop/docker.sock").exists()
        });
        if rootless {
            return;
        }
        if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR")
            && Path::new(&x).join(".docker/run/docker.sock").exists()
        {
            return;
        }
        assert_eq!(
            docker_engine().unwrap_err(),
            "DOCKER_HOST unset, /var/run/docker.sock absent"
        );
    }

    #[test]
    fn a_unix_socket_nobody_listens_on_is_unreachable() {
        let dir = std::env::temp_dir().join(format!("stsmend-k3s-unit-{}", random_token()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("docker.sock");
        // A socket file whose listener is gone: connect is refused.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let err = probe(&format!("unix://{}", sock.display())).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.to_lowercase().contains("refused"), "{err}");
    }

    #[test]
    fn a_unix_socket_answering_ping_is_reachable() {
        let dir = std::env::temp_dir().join(format!("stsmend-k3s-unit-{}", random_token()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let engine = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 256];
            let n = s.read(&mut req).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                .unwrap();
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        let res = probe(&format!("unix://{}", sock.display()));
        let req = engine.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(res, Ok(()));
        assert!(req.starts_with("GET /_ping HTTP/1.1\r\n"), "{req}");
    }

    #[test]
    fn a_tcp_port_nobody_listens_on_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = probe(&format!("tcp://127.0.0.1:{port}")).unwrap_err();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    }
}
