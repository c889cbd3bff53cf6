//! What ships: the plain manifests in deploy/manifests/ (least-privilege
//! RBAC, a hardened CronJob whose config and flags the binary accepts), the
//! chart they are rendered from, and the CLI's polish (version, completions,
//! help, CI report formats).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn stsmend(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stsmend"))
        .args(args)
        .current_dir(ROOT)
        .env("STSMEND_LOG", "off")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run stsmend")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every document of a manifest file, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn manifests() -> Vec<(PathBuf, Value)> {
    let dir = Path::new(ROOT).join("deploy/manifests");
    let mut files = vec![];
    for sub in [dir.clone(), dir.join("v1.20")] {
        for entry in std::fs::read_dir(&sub).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .flat_map(|p| documents(&p).into_iter().map(move |d| (p.clone(), d)))
        .collect()
}

fn of_kind<'a>(docs: &'a [(PathBuf, Value)], kind: &str) -> Vec<&'a (PathBuf, Value)> {
    docs.iter().filter(|(_, d)| d["kind"] == kind).collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn every_manifest_is_a_kubernetes_object() {
    let docs = manifests();
    assert!(docs.len() >= 10, "{} documents", docs.len());
    for (path, d) in &docs {
        for key in ["apiVersion", "kind"] {
            assert!(d[key].is_string(), "{}: no {key}", path.display());
        }
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{}: bad name {name:?}",
            path.display()
        );
    }
}

#[test]
fn roles_grant_nothing_on_secrets_and_no_wildcards() {
    let docs = manifests();
    let roles: Vec<_> = of_kind(&docs, "ClusterRole")
        .into_iter()
        .chain(of_kind(&docs, "Role"))
        .collect();
    assert!(
        roles.len() >= 4,
        "the read, act, cluster-status and state roles"
    );
    for (path, role) in roles {
        let name = role["metadata"]["name"].as_str().unwrap();
        assert!(role.get("aggregationRule").is_none(), "{name}: aggregated");
        let rules = role["rules"].as_array().expect("rules");
        assert!(!rules.is_empty(), "{name}: no rules");
        for rule in rules {
            let at = format!("{}: {name}: {rule}", path.display());
            assert!(rule.get("nonResourceURLs").is_none(), "{at}");
            for key in ["apiGroups", "resources", "verbs"] {
                let values = strings(&rule[key]);
                assert!(!values.is_empty(), "{at}: no {key}");
                assert!(
                    !values.iter().any(|v| v.contains('*')),
                    "{at}: `*` in {key}"
                );
            }
            assert!(
                !strings(&rule["resources"])
                    .iter()
                    .any(|r| *r == "secrets" || r.starts_with("secrets/")),
                "{at}: grants on secrets"
            );
            // Writes that could take over the cluster are never needed.
            for verb in strings(&rule["verbs"]) {
                assert!(
                    !["escalate", "bind", "impersonate", "deletecollection"].contains(&verb),
                    "{at}: {verb}"
                );
            }
        }
    }
}

#[test]
fn every_role_is_bound_to_the_service_account_and_nothing_else() {
    let docs = manifests();
    let sa = &of_kind(&docs, "ServiceAccount")[0].1;
    let (sa_name, sa_ns) = (
        sa["metadata"]["name"].as_str().unwrap(),
        sa["metadata"]["namespace"].as_str().unwrap(),
    );
    let roles: Vec<(&str, &str, Option<&str>)> = ["ClusterRole", "Role"]
        .iter()
        .flat_map(|k| of_kind(&docs, k))
        .map(|(_, r)| {
            (
                r["kind"].as_str().unwrap(),
                r["metadata"]["name"].as_str().unwrap(),
                r["metadata"]["namespace"].as_str(),
            )
        })
        .collect();
    let mut bound = 0;
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        for (_, b) in of_kind(&docs, kind) {
            let role_ref = (
                b["roleRef"]["kind"].as_str().unwrap(),
                b["roleRef"]["name"].as_str().unwrap(),
                b["metadata"]["namespace"].as_str(),
            );
            assert!(
                roles.contains(&role_ref),
                "{kind} to a missing {role_ref:?}"
            );
            let subjects = b["subjects"].as_array().unwrap();
            assert_eq!(subjects.len(), 1, "{b}");
            assert_eq!(subjects[0]["kind"], "ServiceAccount");
            assert_eq!(subjects[0]["name"], sa_name);
            assert_eq!(subjects[0]["namespace"], sa_ns);
            bound += 1;
        }
    }
    assert_eq!(bound, roles.len(), "every role bound once");
}

/// The CronJobs: batch/v1, and batch/v1beta1 for Kubernetes 1.20.
fn cron_jobs() -> Vec<(PathBuf, Value)> {
    of_kind(&manifests(), "CronJob")
        .into_iter()
        .cloned()
        .collect()
}

#[test]
fn the_cron_job_runs_one_at_a_time_hardened() {
    let jobs = cron_jobs();
    let versions: Vec<&str> = jobs
        .iter()
        .map(|(_, j)| j["apiVersion"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(versions.contains(&"batch/v1") && versions.contains(&"batch/v1beta1"));
    let docs = manifests();
    let sa = of_kind(&docs, "ServiceAccount")[0].1["metadata"]["name"].clone();
    for (path, job) in &jobs {
        let at = path.display();
        let spec = &job["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Forbid", "{at}");
        assert!(spec["startingDeadlineSeconds"].as_u64().is_some(), "{at}");
        assert!(
            spec["successfulJobsHistoryLimit"].as_u64().is_some(),
            "{at}"
        );
        assert!(spec["failedJobsHistoryLimit"].as_u64().is_some(), "{at}");
        assert!(
            spec["schedule"]
                .as_str()
                .is_some_and(|s| s.split(' ').count() == 5)
        );
        let job_spec = &spec["jobTemplate"]["spec"];
        assert!(job_spec["activeDeadlineSeconds"].as_u64().is_some(), "{at}");
        let pod = &job_spec["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], sa, "{at}");
        assert_eq!(pod["restartPolicy"], "Never", "{at}");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{at}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{at}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{at}");
        assert_eq!(sc["runAsNonRoot"], true, "{at}");
        assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{at}");
        assert!(sc["capabilities"].get("add").is_none(), "{at}");
        assert!(c["resources"]["requests"]["memory"].is_string(), "{at}");
        assert!(c["resources"]["limits"]["memory"].is_string(), "{at}");
        let args = strings(&c["args"]);
        assert_eq!(args[..3], ["run", "--config", "/etc/stsmend/config.yaml"]);
        assert!(
            !args.contains(&"--apply"),
            "{at}: the plain manifests are a dry run"
        );
    }
    // The two differ in their API version only.
    let mut specs: Vec<Value> = jobs.iter().map(|(_, j)| j["spec"].clone()).collect();
    specs.dedup();
    assert_eq!(specs.len(), 1);
}

/// The config file the CronJob mounts, from its ConfigMap.
fn mounted_config() -> String {
    let docs = manifests();
    let (_, job) = &cron_jobs()[0];
    let pod = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/etc/stsmend/config.yaml")
        .expect("the config file is mounted");
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("its volume");
    let cm_name = volume["configMap"]["name"].as_str().unwrap();
    let cm = of_kind(&docs, "ConfigMap")
        .into_iter()
        .find(|(_, c)| c["metadata"]["name"] == cm_name)
        .unwrap_or_else(|| panic!("ConfigMap {cm_name} is in the manifests"));
    assert_eq!(cm.1["metadata"]["namespace"], job["metadata"]["namespace"]);
    cm.1["data"][mount["subPath"].as_str().unwrap()]
        .as_str()
        .expect("the key the subPath names")
        .to_string()
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("stsmend-ship-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_mounted_config_loads_and_keeps_state_where_the_role_allows() {
    let config = mounted_config();
    let path = temp("config.yaml", &config);
    let out = stsmend(&[
        "plan",
        "--from",
        "examples/failing-rollout.yaml",
        "--for",
        "0s",
        "--config",
        path.to_str().unwrap(),
    ]);
    // 1: findings; a config the agent rejects would be 2.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_saphyr::from_str(&config).unwrap();
    let docs = manifests();
    let state_role = of_kind(&docs, "Role")
        .into_iter()
        .find(|(_, r)| strings(&r["rules"][0]["resourceNames"]).contains(&"stsmend-state"))
        .expect("the state Role");
    assert_eq!(
        parsed["stateNamespace"],
        state_role.1["metadata"]["namespace"]
    );
}

#[test]
fn the_binary_accepts_the_cron_jobs_arguments() {
    let config = temp("args-config.yaml", &mounted_config());
    for (path, job) in cron_jobs() {
        let c = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
        let mut args: Vec<String> = strings(&c["args"])
            .iter()
            .map(|a| a.replace("/etc/stsmend/config.yaml", config.to_str().unwrap()))
            .collect();
        // clap reads arguments in order: an unknown flag or a bad value
        // before --help is an error, so this exits 0 only if all parse.
        args.push("--help".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = stsmend(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {args:?}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The rule lines of the chart's RBAC template are literal; each must be
/// in the rendered rbac.yaml and the other way round, so the chart and the
/// manifests the end-to-end suite proves cannot drift apart unnoticed
/// (scripts/render-manifests.sh --check compares whole renders where
/// helm-python-sdk installs).
#[test]
fn the_chart_rbac_template_has_the_manifests_rules() {
    let rule_lines = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| {
                [
                    "- apiGroups: [",
                    "resources: [",
                    "resourceNames: [",
                    "verbs: [",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .map(String::from)
            .collect()
    };
    let template =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/helm/stsmend/templates/rbac.yaml"))
            .unwrap();
    let rendered =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/manifests/rbac.yaml")).unwrap();
    let (t, r) = (rule_lines(&template), rule_lines(&rendered));
    assert!(t.len() >= 20, "{t:?}");
    assert_eq!(t, r);
}

#[test]
fn version_names_the_git_revision() {
    let out = stsmend(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let rev = text
        .trim()
        .strip_prefix(&format!("stsmend {} (git ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(!rev.is_empty());
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(ROOT)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| stdout(&o).trim().to_string());
    match head {
        _ if std::env::var_os("STSMEND_GIT_REVISION").is_some() => {}
        Some(head) => assert!(head.starts_with(rev), "{rev} is not HEAD {head}"),
        None => assert_eq!(rev, "unknown"),
    }
}

#[test]
fn completions_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = stsmend(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = stdout(&out);
        assert!(script.len() > 1000, "{shell}: {} bytes", script.len());
        for sub in [
            "plan",
            "snapshot",
            "explain",
            "run",
            "undo",
            "policy",
            "completions",
            "--from",
            "--apply",
        ] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    assert_eq!(stsmend(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn every_subcommand_help_has_examples() {
    for sub in [
        &["plan"][..],
        &["snapshot"],
        &["explain"],
        &["run"],
        &["undo"],
        &["policy", "test"],
        &["completions"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = stsmend(&args);
        let help = stdout(&out);
        assert!(help.contains("Example"), "{sub:?} --help has no example");
        assert!(help.contains("stsmend "), "{sub:?}");
    }
}

#[test]
fn plan_writes_junit_and_sarif_for_ci() {
    let out = stsmend(&[
        "plan",
        "--from",
        "examples/failing-rollout.yaml",
        "--for",
        "0s",
        "--output",
        "junit",
    ]);
    assert_eq!(out.status.code(), Some(1), "findings still exit 1");
    let xml = stdout(&out);
    assert!(xml.starts_with("<?xml version=\"1.0\""), "{xml}");
    assert!(xml.contains("<failure "), "{xml}");
    assert!(xml.trim_end().ends_with("</testsuites>"));

    let report = temp("report.sarif", "");
    let out = stsmend(&[
        "plan",
        "--from",
        "examples/failing-rollout.yaml",
        "--for",
        "0s",
        "-o",
        "sarif",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            == "examples/failing-rollout.yaml"
    }));
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(written, sarif);
}

#[test]
fn policy_test_writes_junit() {
    let out = stsmend(&["policy", "test", "policies/tests", "--output", "junit"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = stdout(&out);
    let cases = xml.matches("<testcase ").count();
    assert!(cases >= 10, "{cases} cases");
    assert!(!xml.contains("<failure"));
    assert!(xml.contains("failures=\"0\""));
}

/// The scenarios of tests/e2e/ as `module::name`: each `#[tokio::test]`
/// function of each module file.
fn scenarios() -> std::collections::BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut is_test = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("#[tokio::test") {
                is_test = true;
            } else if is_test && let Some(rest) = line.strip_prefix("async fn ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.insert(format!("{module}::{name}"));
                is_test = false;
            }
        }
    }
    found
}

/// tests/e2e/README.md is the scenario catalogue: it names every scenario,
/// and only scenarios that exist.
#[test]
fn the_scenario_catalogue_names_every_scenario() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/README.md"))
            .unwrap();
    let named: std::collections::BTreeSet<String> = readme
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.split_once("::").is_some_and(|(m, n)| {
                !m.is_empty()
                    && !n.is_empty()
                    && (m.chars().chain(n.chars()))
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
        })
        .map(str::to_string)
        .collect();
    let found = scenarios();
    assert!(found.len() > 40, "the scenarios were read: {found:?}");
    let missing: Vec<_> = found.difference(&named).collect();
    let unknown: Vec<_> = named.difference(&found).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "tests/e2e/README.md: scenarios not in the catalogue: {missing:?}; names that are no scenario: {unknown:?}"
    );
}
