//! docs/chaos.md, checked against the real thing: its Chaos Mesh and
//! Litmus manifests against those tools' published CRDs (server-side dry
//! run on the v1.20 control plane), and its probe script against real
//! faults (a pod killed, kube-controller-manager stopped under a template
//! change, kube-apiserver stopped, a broken kubeconfig). Everything is read
//! from the page itself, so the page cannot drift from what is tested.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use serde_json::Value;
use stsmend_e2e::{ControlPlane, wait_until};

use crate::ROLLOUT;
use crate::world::World;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn chaos_md() -> String {
    std::fs::read_to_string(repo("docs/chaos.md")).unwrap()
}

/// The fenced blocks of `lang` in a Markdown text, in order.
fn blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == format!("```{lang}") => current = Some(String::new()),
            Some(_) if line.trim_end() == "```" => found.push(current.take().unwrap()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    found
}

/// What docs/chaos.md tells a v1.20 user to do to Chaos Mesh's CRDs:
/// `sed '/^ *default: ""$/d'`.
fn without_empty_defaults(crd: &str) -> String {
    crd.lines()
        .filter(|l| l.trim_start_matches(' ') != "default: \"\"")
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Every field of `sent` that the server's answer lacks: a field the CRD's
/// schema does not know is pruned silently by a v1.20 server.
fn pruned(sent: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, got) {
        (Value::Object(s), Value::Object(g)) => {
            for (k, v) in s {
                match g.get(k) {
                    Some(gv) => pruned(v, gv, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(s), Value::Array(g)) => {
            for (i, (sv, gv)) in s.iter().zip(g).enumerate() {
                pruned(sv, gv, &format!("{path}[{i}]"), out);
            }
            if s.len() != g.len() {
                out.push(format!("{path} (length)"));
            }
        }
        (s, g) if s != g => out.push(format!("{path} ({s} became {g})")),
        _ => {}
    }
}

/// What Chaos Mesh's validating webhook (api/v1alpha1/workflow_webhook.go)
/// checks besides the schema, which no webhook checks here: the entry and
/// every child and branch target name a template, a Suspend has a deadline,
/// an embedded fault leaves its duration to the template's deadline.
fn workflow_mistakes(workflow: &Value) -> Vec<String> {
    let templates = workflow["spec"]["templates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = templates
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let mut references = vec![("spec.entry".to_string(), &workflow["spec"]["entry"])];
    let mut mistakes = Vec::new();
    for t in &templates {
        let name = t["name"].as_str().unwrap_or_default();
        for child in t["children"].as_array().into_iter().flatten() {
            references.push((format!("{name}: child"), child));
        }
        for branch in t["conditionalBranches"].as_array().into_iter().flatten() {
            references.push((format!("{name}: branch target"), &branch["target"]));
        }
        let kind = t["templateType"].as_str().unwrap_or_default();
        if kind == "Suspend" && t["deadline"].as_str().is_none_or(str::is_empty) {
            mistakes.push(format!("{name}: a Suspend needs a deadline"));
        }
        if let Some(first) = kind.chars().next()
            && kind.ends_with("Chaos")
        {
            let field = format!("{}{}", first.to_ascii_lowercase(), &kind[1..]);
            if t[&field].is_null() {
                mistakes.push(format!("{name}: a {kind} template needs `{field}`"));
            }
            if !t[&field]["duration"].is_null() {
                mistakes.push(format!(
                    "{name}: a fault in a Workflow takes the template's deadline, not a duration"
                ));
            }
        }
    }
    for (what, target) in references {
        if !target.as_str().is_some_and(|t| names.contains(&t)) {
            mistakes.push(format!("{what} {target} names no template"));
        }
    }
    mistakes
}

/// docs/chaos.md's `yaml` blocks, each `kubectl apply --dry-run=server`
/// (with kubectl's schema validation) on a v1.20 API server that has the
/// upstream CRDs, and nothing sent dropped on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_manifests_pass_server_dry_run_against_the_upstream_crds() {
    let cp = ControlPlane::start().await.expect("control plane");
    let fixtures = repo("tests/fixtures/chaos-crds");
    let workflows = std::fs::read_to_string(fixtures.join("chaos-mesh-workflows.yaml")).unwrap();

    // As published, Chaos Mesh's Workflow CRD does not load on v1.20, for
    // the reason docs/chaos.md gives.
    let refused = cp
        .kubectl_with_stdin(&["create", "-f", "-"], Some(&workflows))
        .await
        .expect_err("the published Workflow CRD is refused by v1.20")
        .to_string();
    assert!(
        refused.contains("workflows.chaos-mesh.org")
            && refused.contains(".default: Invalid value: \"null\"")
            && refused.contains("must be of type string"),
        "{refused}"
    );
    // The workaround docs/chaos.md gives loads it.
    let docs = chaos_md();
    assert!(
        docs.contains("sed '/^ *default: \"\"$/d' crd.yaml | kubectl create -f -"),
        "docs/chaos.md gives the v1.20 workaround this test applies"
    );
    let stripped = without_empty_defaults(&workflows);
    assert!(stripped.len() < workflows.len());
    cp.kubectl_with_stdin(&["create", "-f", "-"], Some(&stripped))
        .await
        .expect("the Workflow CRD without its empty-string defaults loads");
    let litmus = std::fs::read_to_string(fixtures.join("litmus-chaos-crds.yaml")).unwrap();
    cp.kubectl_with_stdin(&["create", "-f", "-"], Some(&litmus))
        .await
        .expect("Litmus's CRDs load as published");
    cp.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/workflows.chaos-mesh.org",
        "crd/chaosengines.litmuschaos.io",
    ])
    .await
    .unwrap();

    let manifests = blocks(&docs, "yaml");
    let mut kinds = Vec::new();
    for (i, manifest) in manifests.iter().enumerate() {
        let sent: Value = serde_saphyr::from_str(manifest)
            .unwrap_or_else(|e| panic!("docs/chaos.md yaml block {}: {e}", i + 1));
        let kind = sent["kind"].as_str().unwrap_or_default().to_string();
        if let Some(ns) = sent["metadata"]["namespace"].as_str() {
            // Already there from an earlier manifest is fine.
            let _ = cp.kubectl(&["create", "namespace", ns]).await;
        }
        let out = cp
            .kubectl_with_stdin(
                &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
                Some(manifest),
            )
            .await
            .unwrap_or_else(|e| panic!("docs/chaos.md yaml block {} ({kind}): {e}", i + 1));
        let got: Value = serde_json::from_str(&out).unwrap();
        let mut lost = Vec::new();
        pruned(&sent, &got, "", &mut lost);
        assert!(
            lost.is_empty(),
            "docs/chaos.md yaml block {} ({kind}): the server dropped or changed {lost:?}",
            i + 1
        );
        if kind == "Workflow" {
            assert_eq!(
                workflow_mistakes(&sent),
                Vec::<String>::new(),
                "block {}",
                i + 1
            );
        }
        kinds.push(kind);
    }
    assert_eq!(kinds, ["Workflow", "ChaosEngine"], "the manifests checked");
    cp.shutdown().await;
}

/// One run of the probe script.
struct Probe {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs docs/chaos.md's probe script, as printed, with `stsmend` on the
/// PATH and `kubeconfig` as the cluster.
async fn probe(script: &Path, kubeconfig: &Path, attempts: u32, interval: u32) -> Probe {
    let bin = Path::new(env!("CARGO_BIN_EXE_stsmend")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new("bash")
        .arg(script)
        .current_dir(script.parent().unwrap())
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .env("ATTEMPTS", attempts.to_string())
        .env("INTERVAL", interval.to_string())
        .env("STSMEND_LOG", "warn")
        .output()
        .await
        .expect("bash runs");
    let p = Probe {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "probe: exit {}\nstdout: {}\nstderr: {}",
        p.code, p.stdout, p.stderr
    );
    p
}

/// The token of a ServiceAccount (v1.20 fills in a token Secret).
async fn token(client: &kube::Client, ns: &str, name: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    wait_until(
        format!("token of {ns}/{name}"),
        Duration::from_secs(60),
        || {
            let (accounts, secrets) = (accounts.clone(), secrets.clone());
            async move {
                let account = accounts.get(name).await.map_err(|e| e.to_string())?;
                let secret = account
                    .secrets
                    .unwrap_or_default()
                    .into_iter()
                    .find_map(|r| r.name)
                    .ok_or("no token secret yet")?;
                let secret = secrets.get(&secret).await.map_err(|e| e.to_string())?;
                secret
                    .data
                    .and_then(|d| d.get("token").cloned())
                    .map(|t| String::from_utf8_lossy(&t.0).into_owned())
                    .ok_or_else(|| "token not filled in yet".to_string())
            }
        },
    )
    .await
    .unwrap()
}

/// The probe script of docs/chaos.md under real faults, under the
/// permissions the page gives it (`stsmend-read` bound to
/// chaos-testing:default): 0 after a killed pod comes back; 1 naming the
/// StatefulSet while kube-controller-manager is stopped under a template
/// change; 3 while kube-apiserver is stopped; 0 once the controller is back
/// and the rollout done; 2 with a kubeconfig that cannot be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_probe_script_exits_as_documented_under_real_faults() {
    let w = World::start().await;
    w.healthy_set("db", 2, "OrderedReady").await;

    // docs/chaos.md's Permissions: the binding, as printed there.
    let docs = chaos_md();
    let binding = blocks(&docs, "sh")
        .into_iter()
        .find(|b| b.contains("create clusterrolebinding stsmend-probe"))
        .expect("the Permissions section's command");
    let args: Vec<&str> = binding
        .split_whitespace()
        .filter(|a| *a != "\\" && *a != "kubectl")
        .collect();
    w.cp.kubectl(&["create", "namespace", "chaos-testing"])
        .await
        .unwrap();
    w.cp.kubectl(&args).await.unwrap();
    let token = token(&w.client, "chaos-testing", "default").await;
    let kubeconfig =
        w.cp.kubeconfig_for_token("system:serviceaccount:chaos-testing:default", &token)
            .unwrap();

    let script = blocks(&docs, "sh")
        .into_iter()
        .find(|b| b.contains("probe.json") && b.contains("for attempt in"))
        .expect("the probe script in docs/chaos.md");
    let dir = w.cp.work_dir().join("probe");
    std::fs::create_dir_all(&dir).unwrap();
    let script_path = dir.join("probe.sh");
    std::fs::write(&script_path, script).unwrap();

    // Steady.
    let p = probe(&script_path, &kubeconfig, 3, 1).await;
    assert_eq!(p.code, 0, "{}", p.stderr);
    assert!(p.stdout.contains("steady after"), "{}", p.stdout);

    // A pod killed: back within the budget, the probe passes.
    w.cp.kubectl(&["-n", "shop", "delete", "pod", "db-0"])
        .await
        .unwrap();
    let p = probe(&script_path, &kubeconfig, 90, 2).await;
    assert_eq!(p.code, 0, "{}", p.stderr);
    assert!(p.stdout.contains("steady after"), "{}", p.stdout);
    w.healthy("db", ROLLOUT).await;

    // kube-controller-manager stopped, then a template change: the
    // generation is never observed; the probe fails naming the set.
    w.cp.stop_controller_manager().await.unwrap();
    w.set_image("db", &w.image("db", "2")).await;
    let p = probe(&script_path, &kubeconfig, 2, 1).await;
    assert_eq!(p.code, 1, "{}", p.stderr);
    assert!(p.stderr.contains("shop/db: "), "{}", p.stderr);

    // kube-apiserver stopped: the probe cannot read, and says so.
    w.cp.stop_apiserver().await.unwrap();
    let p = probe(&script_path, &kubeconfig, 2, 1).await;
    w.cp.start_apiserver().await.unwrap();
    assert_eq!(p.code, 3, "{}", p.stderr);
    assert!(
        p.stderr
            .contains("the API server could not be read (exit 3)"),
        "{}",
        p.stderr
    );

    // The controller back: the rollout completes within the budget.
    w.cp.start_controller_manager().await.unwrap();
    let p = probe(&script_path, &kubeconfig, 100, 3).await;
    assert_eq!(p.code, 0, "{}", p.stderr);
    assert!(p.stdout.contains("steady after"), "{}", p.stdout);

    // A kubeconfig that cannot be read: the probe is broken, not the
    // system.
    let p = probe(&script_path, &dir.join("missing-kubeconfig"), 3, 1).await;
    assert_eq!(p.code, 2, "{}", p.stderr);
    assert!(p.stderr.contains("probe misconfigured"), "{}", p.stderr);
}
