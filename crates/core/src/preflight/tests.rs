//! Predictions on a small healthy cluster, one per failure class a template
//! change can cause; the e2e suite checks each against the real control
//! plane (tests/e2e/preflight.rs).

use serde_json::{Value, json};

use super::*;
use crate::config::Config;
use crate::kinds::Data;
use crate::scope::Scope;

const AT: &str = "2026-12-03T10:00:00Z";

fn template(memory: &str, extra: Value) -> Value {
    let mut t = json!({"metadata": {"labels": {"app": "db"}}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "app", "image": "app:1",
            "resources": {"requests": {"cpu": "100m", "memory": memory}}}]}});
    for (k, v) in extra.as_object().unwrap() {
        if k == "container" {
            for (ck, cv) in v.as_object().unwrap() {
                t["spec"]["containers"][0][ck] = cv.clone();
            }
        } else {
            t["spec"][k] = v.clone();
        }
    }
    t
}

fn manifest(template: Value, extra: Value) -> Value {
    let mut m = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "shop", "labels": {"stsmend.io/remediate": "true"}},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": template}});
    for (k, v) in extra.as_object().unwrap() {
        m["spec"][k] = v.clone();
    }
    m
}

/// A healthy `shop/db` of three pods on one node, with its one revision,
/// in a namespace with its `default` ServiceAccount and a ConfigMap.
fn cluster(extra: Vec<Value>) -> Inventory {
    let old = template("128Mi", json!({}));
    let mut live = manifest(old.clone(), json!({}));
    live["metadata"]["uid"] = json!("uid-db");
    live["metadata"]["generation"] = json!(1);
    live["metadata"]["creationTimestamp"] = json!("2026-12-01T00:00:00Z");
    live["status"] = json!({"observedGeneration": 1, "replicas": 3, "readyReplicas": 3,
        "currentReplicas": 3, "updatedReplicas": 3, "currentRevision": "db-1", "updateRevision": "db-1"});
    let owner = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "uid-db", "controller": true}]);
    let mut objects = vec![
        live,
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 1,
            "metadata": {"name": "db-1", "namespace": "shop", "ownerReferences": owner,
                         "creationTimestamp": "2026-12-01T00:00:00Z"},
            "data": {"spec": {"template": old}}}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"zone": "a"}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "shop"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
            "data": {"mode": "fast"}}),
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "system-cluster-critical"}, "value": 2000000000}),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "standard"},
            "provisioner": "x"}),
    ];
    for i in 0..3 {
        objects.push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("db-{i}"), "namespace": "shop", "ownerReferences": owner,
                "labels": {"app": "db", "controller-revision-hash": "db-1"},
                "creationTimestamp": "2026-12-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "app:1",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
                "lastTransitionTime": "2026-12-01T00:01:00Z"}]}}));
    }
    objects.extend(extra);
    let mut inv = Inventory::default();
    let origin = |m: &str| crate::Error::invalid("test", "cluster", m);
    for o in objects {
        inv.add_value(o, &origin).unwrap();
    }
    inv
}

fn run(inv: &Inventory, manifest: Value) -> Prediction {
    predict_with(inv, manifest, None)
}

fn with_server(inv: &Inventory, manifest: Value, server: &Server) -> Prediction {
    predict_with(inv, manifest, Some(server))
}

fn predict_with(inv: &Inventory, manifest: Value, server: Option<&Server>) -> Prediction {
    let object: StatefulSet = serde_json::from_value(manifest).unwrap();
    let known = Known::from_inventory(inv);
    let settings =
        Settings::new(&Config::default(), Scope::default(), AT.parse().unwrap()).unwrap();
    let policies = Policies::builtin();
    let input = Input {
        inventory: inv,
        known: &known,
        settings: &settings,
        policies: &policies,
        at: AT.parse().unwrap(),
    };
    predict(
        &Proposed {
            object,
            file: None,
            line: None,
        },
        &input,
        server,
    )
}

fn kinds(p: &Prediction) -> Vec<&'static str> {
    p.causes.iter().map(|k| k.as_str()).collect()
}

#[test]
fn a_harmless_change_predicts_nothing_and_names_the_pods_it_replaces() {
    let p = run(
        &cluster(vec![]),
        manifest(template("256Mi", json!({})), json!({})),
    );
    assert!(!p.fails, "{:#?}", p.obstacles);
    assert!(p.findings.is_empty() && p.plan.is_none());
    assert_eq!(
        p.change.template,
        [
            json!({"path": "spec.containers[0].resources.requests.memory", "old": "128Mi", "new": "256Mi"})
        ]
    );
    assert_eq!(p.rollout.unwrap().replaced, ["db-2", "db-1", "db-0"]);
}

fn limit_range(item: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits", "namespace": "shop"},
        "spec": {"limits": [item]}})
}

#[test]
fn a_limit_above_the_limit_ranges_max_is_denied_and_rolled_back() {
    let inv = cluster(vec![limit_range(
        json!({"type": "Container", "max": {"memory": "1Gi"}}),
    )]);
    let m = manifest(
        template(
            "2Gi",
            json!({"container": {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "2Gi"}}}}),
        ),
        json!({}),
    );
    let p = run(&inv, m);
    assert!(p.fails);
    assert_eq!(
        p.obstacles[0].message,
        "pods \"db-2\" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi"
    );
    assert_eq!(kinds(&p), ["admission_denied"]);
    let f = &p
        .findings
        .iter()
        .find(|f| f.finding.kind == Kind::AdmissionDenied)
        .unwrap()
        .finding;
    assert_eq!(f.data.admission().unwrap().admission, "limit_range");
    assert!(
        f.change.as_ref().is_some_and(|c| c.explains),
        "{:?}",
        f.change
    );
    let plan = p.plan.unwrap();
    assert_eq!(plan.rung.as_deref(), Some("rollback"), "{plan:?}");
    assert!(
        serde_json::to_string(&plan.actions)
            .unwrap()
            .contains("db-1"),
        "rolls back to db-1"
    );
}

#[test]
fn a_default_limit_below_the_request_makes_the_pod_invalid_naming_the_limit_range() {
    // `max` and no `default`: the server defaults the limit to the max.
    let inv = cluster(vec![limit_range(
        json!({"type": "Container", "max": {"memory": "1Gi"}}),
    )]);
    let p = run(&inv, manifest(template("2Gi", json!({})), json!({})));
    let o = &p.obstacles[0];
    assert_eq!(
        o.message,
        "Pod \"db-2\" is invalid: spec.containers[0].resources.requests[memory]: Invalid value: \"2Gi\": must be less than or equal to memory limit"
    );
    assert!(
        o.evidence
            .iter()
            .any(|e| e.object == "LimitRange shop/limits"
                && e.message.as_deref().unwrap().starts_with("1Gi")),
        "{:?}",
        o.evidence
    );
    assert_eq!(kinds(&p), ["admission_denied"]);
}

#[test]
fn a_scale_up_past_a_quota_names_the_quota_and_what_is_left() {
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute", "namespace": "shop"},
        "spec": {"hard": {"pods": "3"}}, "status": {"hard": {"pods": "3"}, "used": {"pods": "3"}}});
    let p = run(
        &cluster(vec![quota]),
        manifest(template("128Mi", json!({})), json!({"replicas": 4})),
    );
    assert_eq!(p.change.replicas, Some([3, 4]));
    assert_eq!(
        p.obstacles[0].message,
        "pods \"db-3\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=3, limited: pods=3"
    );
    assert!(kinds(&p).contains(&"admission_denied"), "{:?}", kinds(&p));
}

#[test]
fn a_gpu_no_node_has_is_unschedulable() {
    let t = template(
        "128Mi",
        json!({"container": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}),
    );
    let p = run(&cluster(vec![]), manifest(t, json!({})));
    assert_eq!(
        p.obstacles[0].message,
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    );
    assert_eq!(kinds(&p), ["unschedulable"]);
    assert_eq!(p.plan.unwrap().rung.as_deref(), Some("rollback"));
}

#[test]
fn a_missing_config_map_key_and_volume_are_what_the_kubelet_says() {
    let env = template(
        "128Mi",
        json!({"container": {"env": [{"name": "MODE",
        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope"}}}]}}),
    );
    let p = run(&cluster(vec![]), manifest(env, json!({})));
    assert_eq!(
        p.obstacles[0].message,
        "couldn't find key nope in ConfigMap shop/settings"
    );
    assert_eq!(kinds(&p), ["container_config"]);
    let unused = template(
        "128Mi",
        json!({"volumes": [{"name": "cfg", "configMap": {"name": "absent"}}]}),
    );
    let p = run(&cluster(vec![]), manifest(unused, json!({})));
    assert!(
        !p.fails,
        "the kubelet mounts no volume a container does not use"
    );
    let vol = template(
        "128Mi",
        json!({"volumes": [{"name": "cfg", "configMap": {"name": "absent"}}],
            "container": {"volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}]}}),
    );
    let p = run(&cluster(vec![]), manifest(vol, json!({})));
    assert_eq!(
        p.obstacles[0].message,
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"absent\" not found"
    );
    assert_eq!(kinds(&p), ["volume_mount"]);
}

#[test]
fn missing_priority_classes_and_service_accounts_are_refused() {
    let p = run(
        &cluster(vec![]),
        manifest(
            template("128Mi", json!({"priorityClassName": "gold"})),
            json!({}),
        ),
    );
    assert_eq!(kinds(&p), ["priority_class_missing"]);
    let p = run(
        &cluster(vec![]),
        manifest(
            template("128Mi", json!({"serviceAccountName": "db"})),
            json!({}),
        ),
    );
    assert_eq!(kinds(&p), ["service_account_missing"]);
}

#[test]
fn a_field_no_update_may_change_is_refused_in_the_apis_words() {
    let p = run(
        &cluster(vec![]),
        manifest(
            template("128Mi", json!({})),
            json!({"serviceName": "db-headless"}),
        ),
    );
    assert_eq!(kinds(&p), ["update_forbidden"]);
    let Data::UpdateForbidden(d) = &p.findings[0].finding.data else {
        panic!()
    };
    assert_eq!(d.fields, ["spec.serviceName"]);
    assert!(
        d.message.contains("Forbidden: updates to statefulset spec"),
        "{}",
        d.message
    );
    assert!(p.rollout.is_none());
}

#[test]
fn a_new_set_whose_storage_class_is_missing_waits_for_its_claim() {
    let mut m = manifest(
        template("128Mi", json!({})),
        json!({"volumeClaimTemplates": [
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
            "resources": {"requests": {"storage": "1Gi"}}}}]}),
    );
    m["metadata"]["name"] = json!("store");
    m["spec"]["selector"] = json!({"matchLabels": {"app": "store"}});
    m["spec"]["template"]["metadata"]["labels"] = json!({"app": "store"});
    let p = run(&cluster(vec![]), m);
    assert!(p.change.new_set);
    assert_eq!(
        p.obstacles[0].message,
        "storageclass.storage.k8s.io \"fast\" not found"
    );
    assert!(
        kinds(&p).contains(&"storage_class_missing"),
        "{:?}",
        kinds(&p)
    );
}

#[test]
fn the_servers_answers_replace_the_agents_reading() {
    let inv = cluster(vec![]);
    let m = manifest(template("256Mi", json!({})), json!({}));
    let object: StatefulSet = serde_json::from_value(m.clone()).unwrap();
    let proposed = Proposed {
        object: object.clone(),
        file: None,
        line: None,
    };
    let mut server = Server {
        stateful_set: Some(Ok(object)),
        ..Server::default()
    };
    let webhook = "admission webhook \"deny.example.com\" denied the request: no";
    for pod in first_pods(&proposed, &inv) {
        server
            .pods
            .insert(pod.metadata.name.clone().unwrap(), Err(webhook.into()));
    }
    let p = with_server(&inv, m, &server);
    assert_eq!(p.obstacles[0].source, Source::Server);
    let f = p
        .findings
        .iter()
        .find(|f| f.finding.kind == Kind::AdmissionDenied)
        .unwrap();
    assert_eq!(f.source, Source::Server);
    assert_eq!(f.finding.data.admission().unwrap().admission, "webhook");
}

#[test]
fn the_servers_refusal_of_the_update_is_reported_in_its_words() {
    let inv = cluster(vec![]);
    let forbidden = "StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'template', and 'updateStrategy' are forbidden";
    let server = Server {
        stateful_set: Some(Err(forbidden.into())),
        ..Server::default()
    };
    let p = with_server(
        &inv,
        manifest(template("256Mi", json!({})), json!({})),
        &server,
    );
    assert_eq!(kinds(&p), ["update_forbidden"]);
    assert_eq!(p.findings[0].source, Source::Server);
    let Data::UpdateForbidden(d) = &p.findings[0].finding.data else {
        panic!()
    };
    assert_eq!(d.message, forbidden, "the v1.20 server's own words");
    let quota = "statefulsets.apps \"db\" is forbidden: exceeded quota: sets, requested: count/statefulsets.apps=1";
    let server = Server {
        stateful_set: Some(Err(quota.into())),
        ..Server::default()
    };
    let p = with_server(
        &inv,
        manifest(template("256Mi", json!({})), json!({})),
        &server,
    );
    assert!(p.fails && p.rollout.is_none());
    assert_eq!(
        (p.obstacles[0].stage, p.obstacles[0].source),
        (Stage::Update, Source::Server)
    );
    assert_eq!(
        p.server_said,
        [format!("the StatefulSet's update: refused: {quota}")]
    );
}

#[test]
fn a_parallel_new_set_meets_one_obstacle_with_all_its_pods() {
    let mut m = manifest(
        template("128Mi", json!({"priorityClassName": "gold"})),
        json!({"podManagementPolicy": "Parallel"}),
    );
    m["metadata"]["name"] = json!("batch");
    m["spec"]["selector"] = json!({"matchLabels": {"app": "batch"}});
    m["spec"]["template"]["metadata"]["labels"] = json!({"app": "batch"});
    let p = run(&cluster(vec![]), m);
    assert_eq!(p.obstacles.len(), 1, "{:#?}", p.obstacles);
    assert_eq!(p.obstacles[0].pods, ["batch-0", "batch-1", "batch-2"]);
    assert_eq!(kinds(&p), ["priority_class_missing"]);
}

#[test]
fn a_full_quota_on_revisions_stops_the_rollout_before_any_pod() {
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "revisions", "namespace": "shop"},
        "spec": {"hard": {"count/controllerrevisions.apps": "1"}},
        "status": {"hard": {"count/controllerrevisions.apps": "1"}, "used": {"count/controllerrevisions.apps": "1"}}});
    let p = run(
        &cluster(vec![quota]),
        manifest(template("256Mi", json!({})), json!({})),
    );
    assert_eq!(p.obstacles.len(), 1);
    assert_eq!(p.obstacles[0].stage, Stage::Revision);
    assert!(
        p.obstacles[0].message.contains("exceeded quota: revisions"),
        "{}",
        p.obstacles[0].message
    );
    assert_eq!(kinds(&p), ["quota_exhausted"]);
    assert_eq!(
        p.plan.unwrap().rung.as_deref(),
        Some("rollback"),
        "rolling back reuses the recorded revision"
    );
}
