//! The local backend: etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler as child processes on free loopback ports.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use crate::assets::Assets;
use crate::error::{Error, Result, io};
use crate::kubeconfig;
use crate::logs::LogDir;
use crate::pki::Pki;
use crate::process::{Launch, Process};
use crate::wait::wait_until;

/// The components of the local control plane, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Etcd,
    ApiServer,
    ControllerManager,
    Scheduler,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Etcd,
        Component::ApiServer,
        Component::ControllerManager,
        Component::Scheduler,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
        }
    }
}

/// A user of the API server's static token file.
#[derive(Debug, Clone)]
pub struct StaticUser {
    pub name: String,
    pub token: String,
    pub groups: Vec<String>,
}

impl StaticUser {
    /// A user with a fresh random token. Without groups it is only
    /// `system:authenticated`, so it can do what RBAC bindings grant it.
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        Self {
            name: name.into(),
            token: random_token(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

/// The user name of the extra static user every local control plane has, for
/// running the agent bound to deploy/ RBAC without a ServiceAccount.
pub const AGENT_USER: &str = "stsmend-agent";

/// Leader-election timing of kube-controller-manager. Short, so that a stopped
/// controller-manager leaves a visibly stale Lease soon and a restarted one
/// takes over quickly; the defaults of a real cluster are 15s/10s/2s.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(8),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// Names the log directory (`e2e/logs/<name>/`); defaults to the name of
    /// the current thread, which libtest and nextest set to the test's name.
    pub name: Option<String>,
    /// Static token users besides the admin; [`AGENT_USER`] is always added.
    pub users: Vec<StaticUser>,
    pub controller_manager_lease: LeaseTiming,
    pub extra_apiserver_args: Vec<String>,
    pub extra_controller_manager_args: Vec<String>,
    pub extra_scheduler_args: Vec<String>,
    /// Restart a component that exits while it is meant to run, as the kubelet
    /// restarts a static pod. kube-controller-manager exits by design when it
    /// loses its lease, which a busy 2-core machine can cause.
    pub supervise: bool,
    /// An address of this machine that node containers reach it by (the
    /// Docker bridge's gateway): the API server then also listens there, its
    /// certificate names it, and it is the `kubernetes` Service's endpoint.
    pub node_address: Option<IpAddr>,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            name: None,
            users: Vec::new(),
            controller_manager_lease: LeaseTiming::default(),
            extra_apiserver_args: Vec::new(),
            extra_controller_manager_args: Vec::new(),
            extra_scheduler_args: Vec::new(),
            supervise: true,
            node_address: None,
        }
    }
}

impl ControlPlaneOptions {
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn user(mut self, user: StaticUser) -> Self {
        self.users.push(user);
        self
    }

    /// Serve node containers too, at `ip` (see [`ControlPlaneOptions::node_address`]).
    pub fn node_address(mut self, ip: IpAddr) -> Self {
        self.node_address = Some(ip);
        self
    }

    pub async fn start(self) -> Result<ControlPlane> {
        ControlPlane::start_with(self).await
    }
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
    controller_manager: u16,
    scheduler: u16,
}

#[derive(Debug, Default)]
struct Components {
    running: BTreeMap<Component, Process>,
    /// Components that were stopped on purpose; the supervisor leaves them be.
    stopped: Vec<Component>,
    launches: BTreeMap<Component, Launch>,
    restarts: BTreeMap<Component, u32>,
}

/// A running local control plane. Dropping it kills every component (also
/// when a test panics); see [`ControlPlane::shutdown`] for what happens to
/// the logs.
pub struct ControlPlane {
    assets: Assets,
    work: WorkDir,
    logs: LogDir,
    pki: Pki,
    ports: Ports,
    lease: LeaseTiming,
    components: Arc<Mutex<Components>>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    admin: StaticUser,
    users: Vec<StaticUser>,
    admin_kubeconfig: PathBuf,
    client: kube::Client,
    node_address: Option<IpAddr>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server_url())
            .field("work", &self.work.path)
            .field("logs", &self.logs.path())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Starts a control plane with default options and waits until it serves
    /// requests and the controller-manager holds its lease.
    pub async fn start() -> Result<Self> {
        Self::start_with(ControlPlaneOptions::default()).await
    }

    pub fn builder() -> ControlPlaneOptions {
        ControlPlaneOptions::default()
    }

    pub async fn start_with(opts: ControlPlaneOptions) -> Result<Self> {
        let started = std::time::Instant::now();
        let assets = Assets::locate()?;
        let name = opts.name.clone().unwrap_or_else(default_name);
        let logs = LogDir::create(&name)?;
        let work = WorkDir::create(&name)?;
        let pki = Pki::generate(&work.path.join("pki"), opts.node_address)?;
        let ports = allocate_ports()?;

        let admin = StaticUser::new("admin", &["system:masters"]);
        let mut users = opts.users.clone();
        if !users.iter().any(|u| u.name == AGENT_USER) {
            users.push(StaticUser::new(AGENT_USER, &[]));
        }
        write_token_file(&work.path.join("tokens.csv"), &admin, &users)?;

        let server = format!("https://127.0.0.1:{}", ports.apiserver);
        let ca_pem = std::fs::read(&pki.ca_cert).map_err(io("read CA"))?;
        let admin_kubeconfig = work.path.join("admin.kubeconfig");
        kubeconfig::write(
            &admin_kubeconfig,
            &server,
            &ca_pem,
            &admin.name,
            &admin.token,
        )?;
        let client = kubeconfig::client(&admin_kubeconfig).await?;

        let launches = launches(&assets, &work, &logs, &pki, ports, &admin_kubeconfig, &opts);
        let components = Arc::new(Mutex::new(Components {
            launches,
            ..Components::default()
        }));
        let mut cp = Self {
            assets,
            work,
            logs,
            pki,
            ports,
            lease: opts.controller_manager_lease,
            components,
            supervisor: None,
            admin,
            users,
            admin_kubeconfig,
            client,
            node_address: opts.node_address,
        };
        for c in Component::ALL {
            cp.spawn(c)?;
            cp.wait_ready(c).await?;
        }
        if opts.supervise {
            cp.supervisor = Some(tokio::spawn(supervise(cp.components.clone())));
        }
        tracing::info!(
            server = %cp.server_url(),
            logs = %cp.logs.path().display(),
            "control plane ready in {:.1?}",
            started.elapsed()
        );
        Ok(cp)
    }

    /// The API server's URL as node containers reach it, where the control
    /// plane was started with [`ControlPlaneOptions::node_address`].
    pub fn node_server_url(&self) -> Option<String> {
        self.node_address
            .map(|ip| format!("https://{ip}:{}", self.ports.apiserver))
    }

    /// The PKI: node credentials are signed by its CA.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// An admin client (group `system:masters`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.apiserver)
    }

    pub fn ca_cert(&self) -> &Path {
        &self.pki.ca_cert
    }

    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    pub fn assets(&self) -> &Assets {
        &self.assets
    }

    /// Where component logs go (`e2e/logs/<name>/`).
    pub fn log_dir(&self) -> &Path {
        self.logs.path()
    }

    /// Scratch space that lives as long as the control plane.
    pub fn work_dir(&self) -> &Path {
        &self.work.path
    }

    /// The admin's bearer token, e.g. for curl while debugging a kept run.
    pub fn admin_token(&self) -> &str {
        &self.admin.token
    }

    pub fn controller_manager_lease(&self) -> LeaseTiming {
        self.lease
    }

    /// A static token user, e.g. [`AGENT_USER`].
    pub fn static_user(&self, name: &str) -> Option<&StaticUser> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Writes a kubeconfig for `token` (a static user's or a ServiceAccount's)
    /// into the work directory and returns its path; `name` names the file
    /// and the kubeconfig user.
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> Result<PathBuf> {
        let path = self
            .work
            .path
            .join(format!("{}.kubeconfig", sanitize(name)));
        let ca = std::fs::read(&self.pki.ca_cert).map_err(io("read CA"))?;
        kubeconfig::write(&path, &self.server_url(), &ca, name, token)?;
        Ok(path)
    }

    /// How often the supervisor has restarted a component that died.
    pub fn restarts(&self, c: Component) -> u32 {
        lock(&self.components)
            .restarts
            .get(&c)
            .copied()
            .unwrap_or(0)
    }

    /// Runs the v1.20 kubectl from the assets with the admin kubeconfig.
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
            &self.assets.bin("kubectl"),
            &self.admin_kubeconfig,
            &self.work.path.join("kubectl-cache"),
            args,
            stdin,
        )
        .await
    }

    pub async fn stop_controller_manager(&self) -> Result<()> {
        self.stop(Component::ControllerManager).await
    }

    /// Starts kube-controller-manager again and waits until it holds the
    /// leader lease (a new identity must wait for the old lease to expire).
    pub async fn start_controller_manager(&self) -> Result<()> {
        self.restart_component(Component::ControllerManager).await
    }

    pub async fn stop_scheduler(&self) -> Result<()> {
        self.stop(Component::Scheduler).await
    }

    pub async fn start_scheduler(&self) -> Result<()> {
        self.restart_component(Component::Scheduler).await
    }

    pub async fn stop_apiserver(&self) -> Result<()> {
        self.stop(Component::ApiServer).await
    }

    pub async fn start_apiserver(&self) -> Result<()> {
        self.restart_component(Component::ApiServer).await
    }

    /// Stops and starts kube-apiserver on the same port and etcd data, and
    /// waits until it is ready again.
    pub async fn restart_apiserver(&self) -> Result<()> {
        self.stop(Component::ApiServer).await?;
        self.restart_component(Component::ApiServer).await
    }

    /// Stops a component on purpose; the supervisor leaves it stopped until
    /// it is started again.
    pub async fn stop(&self, c: Component) -> Result<()> {
        let proc = {
            let mut comps = lock(&self.components);
            if !comps.stopped.contains(&c) {
                comps.stopped.push(c);
            }
            comps.running.remove(&c)
        };
        if let Some(mut p) = proc {
            // Graceful first, as a rolling control-plane restart would do.
            p.stop(Duration::from_secs(15)).await;
        }
        tracing::info!(component = c.name(), "stopped");
        Ok(())
    }

    pub async fn restart_component(&self, c: Component) -> Result<()> {
        let running = lock(&self.components).running.contains_key(&c);
        if running {
            self.stop(c).await?;
        }
        self.spawn(c)?;
        self.wait_ready(c).await?;
        tracing::info!(component = c.name(), "started");
        Ok(())
    }

    pub fn is_running(&self, c: Component) -> bool {
        let mut comps = lock(&self.components);
        match comps.running.get_mut(&c) {
            Some(p) => p.check_alive().is_ok(),
            None => false,
        }
    }

    fn spawn(&self, c: Component) -> Result<()> {
        let mut comps = lock(&self.components);
        let launch = comps.launches[&c].clone();
        let p = Process::spawn(launch)?;
        comps.running.insert(c, p);
        comps.stopped.retain(|s| *s != c);
        Ok(())
    }

    fn check_alive(&self, c: Component) -> Result<()> {
        let mut comps = lock(&self.components);
        match comps.running.get_mut(&c) {
            Some(p) => p.check_alive(),
            None => Err(Error::Other(format!("{} is not running", c.name()))),
        }
    }

    async fn wait_ready(&self, c: Component) -> Result<()> {
        let timeout = Duration::from_secs(90);
        match c {
            Component::Etcd => {
                let port = self.ports.etcd_client;
                wait_until("etcd to accept connections", timeout, || async move {
                    self.check_alive(c).map_err(|e| e.to_string())?;
                    port_open(port)
                })
                .await
            }
            Component::ApiServer => {
                wait_until("kube-apiserver /readyz", timeout, || async move {
                    self.check_alive(c).map_err(|e| e.to_string())?;
                    let req = http::Request::get("/readyz")
                        .body(Vec::new())
                        .map_err(|e| e.to_string())?;
                    match self.client.request_text(req).await {
                        Ok(body) if body.trim() == "ok" => Ok(()),
                        Ok(body) => Err(body),
                        Err(e) => Err(e.to_string()),
                    }
                })
                .await
            }
            Component::ControllerManager => {
                // Ready means leading: only the leader runs controllers.
                let since = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
                let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-system");
                wait_until(
                    "kube-controller-manager to acquire its lease",
                    timeout,
                    || {
                        let leases = leases.clone();
                        async move {
                            self.check_alive(c).map_err(|e| e.to_string())?;
                            let lease = leases
                                .get_opt("kube-controller-manager")
                                .await
                                .map_err(|e| e.to_string())?
                                .ok_or("no lease yet")?;
                            let spec = lease.spec.unwrap_or_default();
                            match spec.acquire_time {
                                Some(t) if t.0 >= since => Ok(()),
                                _ => Err(format!("lease held by {:?}", spec.holder_identity)),
                            }
                        }
                    },
                )
                .await
            }
            Component::Scheduler => {
                let port = self.ports.scheduler;
                wait_until("kube-scheduler to serve", timeout, || async move {
                    self.check_alive(c).map_err(|e| e.to_string())?;
                    port_open(port)
                })
                .await
            }
        }
    }

    /// Stops everything gracefully and removes the logs, unless
    /// STSMEND_E2E_KEEP_LOGS is set. Call it at the end of a passing test: a
    /// control plane dropped without it (a panic, an early `?` return, a
    /// timeout) keeps its logs and prints where they are.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.supervisor.take() {
            s.abort();
        }
        for c in Component::ALL.into_iter().rev() {
            let proc = lock(&self.components).running.remove(&c);
            if let Some(mut p) = proc {
                p.stop(Duration::from_secs(10)).await;
            }
        }
        self.logs.mark_passed();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(s) = self.supervisor.take() {
            s.abort();
        }
        let mut comps = lock(&self.components);
        for c in Component::ALL.into_iter().rev() {
            if let Some(mut p) = comps.running.remove(&c) {
                p.kill_now();
            }
        }
        // `self.logs` and `self.work` clean up in their own Drop.
    }
}

async fn supervise(components: Arc<Mutex<Components>>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut comps = lock(&components);
        let died: Vec<Component> = comps
            .running
            .iter_mut()
            .filter_map(|(c, p)| p.check_alive().err().map(|e| (*c, e)))
            .map(|(c, e)| {
                tracing::warn!(component = c.name(), "exited, restarting it: {e}");
                c
            })
            .collect();
        for c in died {
            comps.running.remove(&c);
            let launch = comps.launches[&c].clone();
            match Process::spawn(launch) {
                Ok(p) => {
                    comps.running.insert(c, p);
                    *comps.restarts.entry(c).or_default() += 1;
                }
                Err(e) => tracing::error!(component = c.name(), "restart failed: {e}"),
            }
        }
    }
}

fn lock(m: &Mutex<Components>) -> std::sync::MutexGuard<'_, Components> {
    // A panic while holding the lock must not stop the teardown in Drop.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn launches(
    assets: &Assets,
    work: &WorkDir,
    logs: &LogDir,
    pki: &Pki,
    ports: Ports,
    admin_kubeconfig: &Path,
    opts: &ControlPlaneOptions,
) -> BTreeMap<Component, Launch> {
    let kubeconfig = display(admin_kubeconfig);
    [
        (Component::Etcd, etcd_args(work, ports)),
        (Component::ApiServer, apiserver_args(work, pki, ports, opts)),
        (
            Component::ControllerManager,
            controller_manager_args(work, pki, ports, &kubeconfig, opts),
        ),
        (
            Component::Scheduler,
            scheduler_args(work, ports, &kubeconfig, opts),
        ),
    ]
    .into_iter()
    .map(|(c, args)| {
        let launch = Launch {
            name: c.name(),
            program: assets.bin(c.name()),
            args,
            log: logs.path().join(format!("{}.log", c.name())),
        };
        (c, launch)
    })
    .collect()
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// A lease flag's value: whole seconds, at least one.
fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

fn etcd_args(work: &WorkDir, ports: Ports) -> Vec<String> {
    vec![
        "--name=default".to_string(),
        format!("--data-dir={}", display(&work.etcd_data)),
        format!(
            "--listen-client-urls=http://127.0.0.1:{}",
            ports.etcd_client
        ),
        format!(
            "--advertise-client-urls=http://127.0.0.1:{}",
            ports.etcd_client
        ),
        format!("--listen-peer-urls=http://127.0.0.1:{}", ports.etcd_peer),
        format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{}",
            ports.etcd_peer
        ),
        format!(
            "--initial-cluster=default=http://127.0.0.1:{}",
            ports.etcd_peer
        ),
        "--logger=zap".to_string(),
        "--log-level=warn".to_string(),
    ]
}

fn apiserver_args(
    work: &WorkDir,
    pki: &Pki,
    ports: Ports,
    opts: &ControlPlaneOptions,
) -> Vec<String> {
    let mut api = vec![
        format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
        // Node containers reach the API server through the Docker bridge's
        // gateway; without nodes it stays on loopback.
        match opts.node_address {
            Some(_) => "--bind-address=0.0.0.0".to_string(),
            None => "--bind-address=127.0.0.1".to_string(),
        },
        format!("--secure-port={}", ports.apiserver),
        // Kubelets in containers register a Hostname this machine cannot
        // resolve; logs and exec go to their InternalIP.
        "--kubelet-preferred-address-types=InternalIP,Hostname".to_string(),
        "--insecure-port=0".to_string(),
        format!("--tls-cert-file={}", display(&pki.serving_cert)),
        format!("--tls-private-key-file={}", display(&pki.serving_key)),
        format!("--client-ca-file={}", display(&pki.ca_cert)),
        format!(
            "--token-auth-file={}",
            display(&work.path.join("tokens.csv"))
        ),
        "--authorization-mode=Node,RBAC".to_string(),
        format!("--service-account-key-file={}", display(&pki.sa_pub)),
        format!(
            "--service-account-signing-key-file={}",
            display(&pki.sa_key)
        ),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
        "--service-cluster-ip-range=10.96.0.0/16".to_string(),
        "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,\
         DefaultStorageClass,ResourceQuota,Priority"
            .to_string(),
        "--allow-privileged=true".to_string(),
        "--profiling=false".to_string(),
        "--v=1".to_string(),
    ];
    if let Some(ip) = opts.node_address {
        api.push(format!("--advertise-address={ip}"));
    }
    api.extend(opts.extra_apiserver_args.iter().cloned());
    api
}

fn controller_manager_args(
    work: &WorkDir,
    pki: &Pki,
    ports: Ports,
    kubeconfig: &str,
    opts: &ControlPlaneOptions,
) -> Vec<String> {
    let lease = opts.controller_manager_lease;
    let mut kcm = vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".to_string(),
        format!("--secure-port={}", ports.controller_manager),
        "--port=0".to_string(),
        format!("--cert-dir={}", display(&work.path.join("kcm-certs"))),
        "--leader-elect=true".to_string(),
        format!("--leader-elect-lease-duration={}", secs(lease.duration)),
        format!(
            "--leader-elect-renew-deadline={}",
            secs(lease.renew_deadline)
        ),
        format!("--leader-elect-retry-period={}", secs(lease.retry_period)),
        format!(
            "--service-account-private-key-file={}",
            display(&pki.sa_key)
        ),
        format!("--root-ca-file={}", display(&pki.ca_cert)),
        "--use-service-account-credentials=true".to_string(),
        "--profiling=false".to_string(),
        "--v=1".to_string(),
    ];
    kcm.extend(opts.extra_controller_manager_args.iter().cloned());
    kcm
}

fn scheduler_args(
    work: &WorkDir,
    ports: Ports,
    kubeconfig: &str,
    opts: &ControlPlaneOptions,
) -> Vec<String> {
    let mut sched = vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".to_string(),
        format!("--secure-port={}", ports.scheduler),
        "--port=0".to_string(),
        format!("--cert-dir={}", display(&work.path.join("scheduler-certs"))),
        // One scheduler, and a restarted one must not wait out a lease.
        "--leader-elect=false".to_string(),
        "--profiling=false".to_string(),
        "--v=1".to_string(),
    ];
    sched.extend(opts.extra_scheduler_args.iter().cloned());
    sched
}

fn write_token_file(path: &Path, admin: &StaticUser, users: &[StaticUser]) -> Result<()> {
    let mut text = String::new();
    for u in std::iter::once(admin).chain(users) {
        // token,user,uid,"group1,group2"
        text.push_str(&format!(
            "{},{},{},\"{}\"\n",
            u.token,
            u.name,
            u.name,
            u.groups.join(",")
        ));
    }
    std::fs::write(path, text).map_err(io("write token file"))
}

/// Binds all ports at once before releasing them, so the five are distinct.
fn allocate_ports() -> Result<Ports> {
    let listeners = (0..5)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io("find free loopback ports"))?;
    let p: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()
        .map_err(io("read local port"))?;
    Ok(Ports {
        etcd_client: p[0],
        etcd_peer: p[1],
        apiserver: p[2],
        controller_manager: p[3],
        scheduler: p[4],
    })
}

fn port_open(port: u16) -> std::result::Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map(|_| ())
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))
}

pub(crate) fn random_token() -> String {
    let mut buf = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .is_ok();
    if !ok {
        // Tokens only guard a loopback-only throwaway cluster; uniqueness is
        // what matters here.
        let n = jiff::Timestamp::now().as_nanosecond() ^ i128::from(std::process::id());
        buf.copy_from_slice(&n.to_le_bytes());
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn default_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string)
        .unwrap_or_else(|| format!("run-{}", std::process::id()))
}

pub(crate) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The control plane's scratch space: certificates, token file, kubeconfigs,
/// and etcd's data (in /dev/shm when it exists: etcd fsyncs on every write).
struct WorkDir {
    path: PathBuf,
    etcd_data: PathBuf,
}

impl WorkDir {
    fn create(name: &str) -> Result<Self> {
        let unique = format!(
            "stsmend-e2e-{}-{}-{}",
            sanitize(name),
            std::process::id(),
            jiff::Timestamp::now().as_millisecond()
        );
        let path = std::env::temp_dir().join(&unique);
        std::fs::create_dir_all(&path).map_err(io(format!("create {}", path.display())))?;
        let shm = Path::new("/dev/shm");
        let etcd_data = if shm.is_dir() && std::fs::create_dir(shm.join(&unique)).is_ok() {
            shm.join(unique)
        } else {
            path.join("etcd")
        };
        Ok(Self { path, etcd_data })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_dir_all(&self.etcd_data);
    }
}
