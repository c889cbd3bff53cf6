//! The agent's own reading of what the API server's admission will say to
//! a pod of the new template, in the order the server asks: the
//! ServiceAccount and Priority plugins and the LimitRanger's defaults
//! (mutating), the pod's validation, then the LimitRanger's bounds and the
//! ResourceQuotas (validating). Each refusal is worded as the server words
//! it, so the agent's diagnosis reads it as it reads the real one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, LimitRange, Pod, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{Known, Obstacle, Source, Stage};
use crate::diagnose::Evidence;
use crate::inventory::Inventory;
use crate::quantity;

/// The objects of namespace `ns`.
pub(super) fn named<
    'a,
    T: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
>(
    list: &'a [T],
    ns: &'a str,
) -> impl Iterator<Item = &'a T> {
    list.iter()
        .filter(move |o| o.metadata().namespace.as_deref() == Some(ns))
}

/// The first refusal a pod meets, if any; the pod gets the LimitRanger's
/// defaults on the way, as the stored pod would.
pub fn admit(
    pod: &mut Pod,
    inv: &Inventory,
    known: &Known,
    replaced: Option<&Pod>,
) -> Option<Obstacle> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let forbidden = |why: String, evidence: Vec<Evidence>| Obstacle {
        stage: Stage::Admission,
        pods: vec![name.clone()],
        message: format!("pods \"{name}\" is forbidden: {why}"),
        evidence,
        source: Source::Agent,
        detail: Default::default(),
    };
    // The LimitRanger's defaults come first among the mutating plugins.
    let ranges: Vec<&LimitRange> = named(&inv.limit_ranges, &ns).collect();
    let given = default_resources(pod, &ranges);
    let spec = pod.spec.as_ref()?;
    let account = spec
        .service_account_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    if known.service_accounts.contains(&ns)
        && !named(&inv.service_accounts, &ns).any(|s| s.metadata.name.as_deref() == Some(&account))
    {
        return Some(forbidden(
            format!(
                "error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found"
            ),
            vec![Evidence::field(
                format!("ServiceAccount {ns}/{account}"),
                "spec.serviceAccountName",
                format!(
                    "named by the template; the {} ServiceAccounts of {ns} do not include it",
                    named(&inv.service_accounts, &ns).count()
                ),
            )],
        ));
    }
    if let Some(class) = spec.priority_class_name.clone().filter(|c| !c.is_empty())
        && known.priority_classes
        && !inv
            .priority_classes
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(&class))
    {
        return Some(forbidden(
            format!("no PriorityClass with name {class} was found"),
            vec![Evidence::field(
                format!("PriorityClass {class}"),
                "spec.priorityClassName",
                format!(
                    "named by the template; the cluster's {} PriorityClasses do not include it",
                    inv.priority_classes.len()
                ),
            )],
        ));
    }
    if let Some(o) = invalid(pod, &name, &given) {
        return Some(o);
    }
    if let Some(o) = bounds(pod, &ranges).map(|(why, ev)| forbidden(why, ev)) {
        return Some(o);
    }
    let quotas: Vec<&ResourceQuota> = named(&inv.resource_quotas, &ns).collect();
    quota(pod, &quotas, replaced).map(|(why, ev)| forbidden(why, ev))
}

type Resources = BTreeMap<String, Quantity>;

fn resources(c: &mut Container) -> (&mut Resources, &mut Resources) {
    let r = c.resources.get_or_insert_with(Default::default);
    let (limits, requests) = (&mut r.limits, &mut r.requests);
    (
        limits.get_or_insert_with(Default::default),
        requests.get_or_insert_with(Default::default),
    )
}

/// A LimitRange's items about containers (not pods or claims).
fn container_items(
    range: &LimitRange,
) -> impl Iterator<Item = &k8s_openapi::api::core::v1::LimitRangeItem> {
    range
        .spec
        .iter()
        .flat_map(|s| &s.limits)
        .filter(|i| i.type_ == "Container")
}

/// A LimitRange item's defaults as the server stores them: a default limit
/// from `max` where none is given, a default request from the default
/// limit, else from `min`.
fn item_defaults(item: &k8s_openapi::api::core::v1::LimitRangeItem) -> (Resources, Resources) {
    let mut default = item.default.clone().unwrap_or_default();
    for (k, v) in item.max.iter().flatten() {
        default.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut request = item.default_request.clone().unwrap_or_default();
    for (k, v) in default.iter().chain(item.min.iter().flatten()) {
        request.entry(k.clone()).or_insert_with(|| v.clone());
    }
    (default, request)
}

/// Applies the LimitRanger's container defaults (and the pod defaulting
/// before it: a limit without a request requests the limit). Returns, per
/// container and resource it gave a limit, the evidence naming the
/// LimitRange.
fn default_resources(pod: &mut Pod, ranges: &[&LimitRange]) -> BTreeMap<(usize, String), Evidence> {
    let mut given = BTreeMap::new();
    let Some(spec) = pod.spec.as_mut() else {
        return given;
    };
    for (i, c) in spec.containers.iter_mut().enumerate() {
        let container = c.name.clone();
        let (limits, requests) = resources(c);
        for (k, v) in limits.iter() {
            requests.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for range in ranges {
            let name = range.metadata.name.clone().unwrap_or_default();
            let ns = range.metadata.namespace.clone().unwrap_or_default();
            for item in container_items(range) {
                let (default, default_request) = item_defaults(item);
                for (k, v) in default {
                    if let std::collections::btree_map::Entry::Vacant(e) = limits.entry(k.clone()) {
                        given.insert(
                            (i, k.clone()),
                            Evidence::field(
                                format!("LimitRange {ns}/{name}"),
                                format!("spec.limits[type=Container].default.{k}"),
                                format!(
                                    "{} (the limit it gives container {}, which sets none)",
                                    v.0, container
                                ),
                            ),
                        );
                        e.insert(v);
                    }
                }
                for (k, v) in default_request {
                    requests.entry(k).or_insert(v);
                }
            }
        }
    }
    given
}

/// The pod's own validation: a request above its limit (often a limit a
/// LimitRange gave) makes the pod invalid.
fn invalid(pod: &Pod, name: &str, given: &BTreeMap<(usize, String), Evidence>) -> Option<Obstacle> {
    let spec = pod.spec.as_ref()?;
    for (i, c) in spec.containers.iter().enumerate() {
        let r = c.resources.as_ref()?;
        for (k, req) in r.requests.iter().flatten() {
            let Some(limit) = r.limits.as_ref().and_then(|l| l.get(k)) else {
                continue;
            };
            if quantity::parse(&req.0)? > quantity::parse(&limit.0)? {
                let mut evidence = vec![Evidence::field(
                    format!(
                        "Pod {}/{name}",
                        pod.metadata.namespace.as_deref().unwrap_or_default()
                    ),
                    format!("spec.containers[{i}].resources.requests.{k}"),
                    format!("{} requested, above the limit of {}", req.0, limit.0),
                )];
                evidence.extend(given.get(&(i, k.clone())).cloned());
                return Some(Obstacle {
                    stage: Stage::Admission,
                    pods: vec![name.to_string()],
                    message: format!(
                        "Pod \"{name}\" is invalid: spec.containers[{i}].resources.requests[{k}]: Invalid value: \"{}\": must be less than or equal to {k} limit",
                        req.0
                    ),
                    evidence,
                    source: Source::Agent,
                    detail: Default::default(),
                });
            }
        }
    }
    None
}

/// The LimitRanger's bounds per container: `min` against requests, `max`
/// against limits.
fn bounds(pod: &Pod, ranges: &[&LimitRange]) -> Option<(String, Vec<Evidence>)> {
    let spec = pod.spec.as_ref()?;
    let (mut errors, mut evidence) = (Vec::new(), Vec::new());
    for range in ranges {
        let label = format!(
            "LimitRange {}/{}",
            range.metadata.namespace.as_deref().unwrap_or_default(),
            range.metadata.name.as_deref().unwrap_or_default()
        );
        for item in container_items(range) {
            for c in &spec.containers {
                let r = c.resources.clone().unwrap_or_default();
                let (limits, requests) =
                    (r.limits.unwrap_or_default(), r.requests.unwrap_or_default());
                for (k, min) in item.min.iter().flatten() {
                    match requests.get(k) {
                        Some(q) if quantity::parse(&q.0) >= quantity::parse(&min.0) => {}
                        got => {
                            errors.push(match got {
                                Some(q) => format!("minimum {k} usage per Container is {}, but request is {}", min.0, q.0),
                                None => format!("minimum {k} usage per Container is {}.  No request is specified", min.0),
                            });
                            evidence.push(Evidence::field(
                                &label,
                                format!("spec.limits[type=Container].min.{k}"),
                                format!(
                                    "{} (container {} requests {})",
                                    min.0,
                                    c.name,
                                    got.map_or("nothing", |q| &q.0)
                                ),
                            ));
                        }
                    }
                }
                for (k, max) in item.max.iter().flatten() {
                    match limits.get(k) {
                        Some(q) if quantity::parse(&q.0) <= quantity::parse(&max.0) => {}
                        got => {
                            errors.push(match got {
                                Some(q) => format!(
                                    "maximum {k} usage per Container is {}, but limit is {}",
                                    max.0, q.0
                                ),
                                None => format!(
                                    "maximum {k} usage per Container is {}.  No limit is specified",
                                    max.0
                                ),
                            });
                            evidence.push(Evidence::field(
                                &label,
                                format!("spec.limits[type=Container].max.{k}"),
                                format!(
                                    "{} (container {} limits {})",
                                    max.0,
                                    c.name,
                                    got.map_or("nothing", |q| &q.0)
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    match errors.len() {
        0 => None,
        1 => Some((errors.remove(0), evidence)),
        _ => Some((format!("[{}]", errors.join(", ")), evidence)),
    }
}

/// What a pod charges to quotas: a count, and its requests and limits.
pub fn usage(pod: &Pod) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::from([("pods".to_string(), 1.0), ("count/pods".to_string(), 1.0)]);
    for (k, v) in requests(pod) {
        *out.entry(format!("requests.{k}")).or_default() += v;
        if k == "cpu" || k == "memory" || k == "ephemeral-storage" {
            *out.entry(k.clone()).or_default() += v;
        }
    }
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        for (k, q) in c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .into_iter()
            .flatten()
        {
            *out.entry(format!("limits.{k}")).or_default() += quantity::parse(&q.0).unwrap_or(0.0);
        }
    }
    out
}

/// The pod's requests as the scheduler counts them: the containers' sum,
/// or the largest init container's where that is more.
pub fn requests(pod: &Pod) -> BTreeMap<String, f64> {
    let mut sum: BTreeMap<String, f64> = BTreeMap::new();
    let Some(spec) = pod.spec.as_ref() else {
        return sum;
    };
    let of = |c: &Container| -> Vec<(String, f64)> {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .into_iter()
            .flatten()
            .map(|(k, q)| (k.clone(), quantity::parse(&q.0).unwrap_or(0.0)))
            .collect()
    };
    for c in &spec.containers {
        for (k, v) in of(c) {
            *sum.entry(k).or_default() += v;
        }
    }
    for c in spec.init_containers.iter().flatten() {
        for (k, v) in of(c) {
            let e = sum.entry(k).or_default();
            *e = e.max(v);
        }
    }
    sum
}

fn quota(
    pod: &Pod,
    quotas: &[&ResourceQuota],
    replaced: Option<&Pod>,
) -> Option<(String, Vec<Evidence>)> {
    let wants = usage(pod);
    // The old pod is deleted before its successor is created: its charge
    // is given back first.
    let freed = replaced.map(usage).unwrap_or_default();
    for q in quotas {
        let spec = q.spec.clone().unwrap_or_default();
        if spec.scopes.as_ref().is_some_and(|s| !s.is_empty()) || spec.scope_selector.is_some() {
            continue;
        }
        let used = q
            .status
            .as_ref()
            .and_then(|s| s.used.clone())
            .unwrap_or_default();
        let name = q.metadata.name.clone().unwrap_or_default();
        let label = format!(
            "ResourceQuota {}/{name}",
            q.metadata.namespace.as_deref().unwrap_or_default()
        );
        let (mut requested, mut was, mut limited, mut evidence) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (k, hard) in spec.hard.iter().flatten() {
            let Some(want) = wants.get(k) else {
                if k.starts_with("limits.") || k.starts_with("requests.") {
                    // The quota constrains a resource the pod leaves unset.
                    return Some((
                        format!("failed quota: {name}: must specify {k}"),
                        vec![Evidence::field(
                            &label,
                            format!("spec.hard.{k}"),
                            format!("{} (the pod sets no {k})", hard.0),
                        )],
                    ));
                }
                continue;
            };
            let now = used
                .get(k)
                .and_then(|u| quantity::parse(&u.0))
                .unwrap_or(0.0)
                - freed.get(k).copied().unwrap_or(0.0);
            let now = now.max(0.0);
            let limit = quantity::parse(&hard.0).unwrap_or(f64::MAX);
            if now + want > limit + 1e-9 {
                requested.push(format!("{k}={}", quantity::format(*want)));
                was.push(format!("{k}={}", quantity::format(now)));
                limited.push(format!("{k}={}", hard.0));
                evidence.push(Evidence::field(
                    &label,
                    format!("status.used.{k}"),
                    format!(
                        "{} of {} used, {} left; the pod asks {}",
                        quantity::format(now),
                        hard.0,
                        quantity::format((limit - now).max(0.0)),
                        quantity::format(*want)
                    ),
                ));
            }
        }
        if !requested.is_empty() {
            return Some((
                format!(
                    "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                    requested.join(","),
                    was.join(","),
                    limited.join(",")
                ),
                evidence,
            ));
        }
    }
    None
}

/// The quota on ControllerRevisions that refuses the new template's
/// revision, worded as the API server refuses the controller's create.
pub fn revision_quota(
    sts: &k8s_openapi::api::apps::v1::StatefulSet,
    inv: &Inventory,
) -> Option<Obstacle> {
    const KEY: &str = "count/controllerrevisions.apps";
    let ns = sts.metadata.namespace.clone().unwrap_or_default();
    named(&inv.resource_quotas, &ns).find_map(|q| {
        let hard = q.spec.as_ref()?.hard.as_ref()?.get(KEY)?;
        let used = q
            .status
            .as_ref()
            .and_then(|s| s.used.as_ref())
            .and_then(|u| u.get(KEY))
            .and_then(|u| quantity::parse(&u.0))
            .unwrap_or(0.0);
        let limit = quantity::parse(&hard.0)?;
        if used + 1.0 <= limit {
            return None;
        }
        let name = q.metadata.name.clone().unwrap_or_default();
        let revision = super::proposed_revision(sts);
        Some(Obstacle {
            stage: Stage::Revision,
            pods: Vec::new(),
            message: format!(
                "controllerrevisions.apps \"{revision}\" is forbidden: exceeded quota: {name}, requested: {KEY}=1, used: {KEY}={}, limited: {KEY}={}",
                quantity::format(used),
                hard.0
            ),
            evidence: vec![Evidence::field(
                format!("ResourceQuota {ns}/{name}"),
                format!("status.used.{KEY}"),
                format!(
                    "{} of {} used: no room for the revision the new template needs",
                    quantity::format(used),
                    hard.0
                ),
            )],
            source: Source::Agent,
            detail: Default::default(),
        })
    })
}
