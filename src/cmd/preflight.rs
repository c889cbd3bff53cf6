//! `stsmend preflight`: read-only; live, its only writes are dry runs.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::cli::PreflightArgs;
use stsmend::preflight::{self, Known, Proposed};
use stsmend::report::preflight::{PreflightReport, SCHEMA};

/// The StatefulSets of the change, each in the namespace it will land in,
/// with where its manifest declares it; and a count of the other objects.
fn proposed(args: &PreflightArgs) -> Result<(Vec<Proposed>, BTreeMap<String, usize>), Error> {
    let (manifests, locations) = source::files::load_with_locations(&args.manifests)?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for sts in &manifests.stateful_sets {
        let declared_ns = sts.metadata.namespace.clone().unwrap_or_default();
        let name = sts.metadata.name.clone().unwrap_or_default();
        let mut object = sts.clone();
        if declared_ns.is_empty() {
            object.metadata.namespace = Some(args.namespace.clone());
        }
        let ns = object.metadata.namespace.clone().unwrap_or_default();
        let at = locations.get(&declared_ns, &name);
        if !seen.insert((ns.clone(), name.clone())) {
            let file = at.map_or_else(|| "<stdin>".to_string(), |l| l.path.display().to_string());
            return Err(Error::invalid(
                "manifests",
                file,
                format!("StatefulSet {ns}/{name} is declared twice in the change"),
            ));
        }
        out.push(Proposed {
            object,
            file: at.map(|l| l.path.display().to_string()),
            line: at.and_then(|l| l.line),
        });
    }
    // Every object that is not a StatefulSet, whichever kind: the ones
    // the inventory does not hold are counted as skipped already.
    let mut others = manifests.skipped.clone();
    let list = manifests.to_list()?;
    for item in list["items"].as_array().into_iter().flatten() {
        let kind = item["kind"].as_str().unwrap_or_default();
        if kind != "StatefulSet" {
            let version = item["apiVersion"].as_str().unwrap_or_default();
            *others.entry(format!("{version}/{kind}")).or_default() += 1;
        }
    }
    Ok((out, others))
}

pub(crate) async fn preflight(args: PreflightArgs) -> stsmend::Result<u8> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let policies = load_policies(args.policy.policies.as_deref(), &config)?;
    let stdin = std::path::Path::new(source::files::STDIN);
    if args.manifests.iter().any(|m| m == stdin) && args.source.from.iter().any(|f| f == stdin) {
        return Err(Error::invalid(
            "preflight",
            "-",
            "standard input can be the manifests or the snapshot, not both",
        ));
    }
    let (sets, other_objects) = proposed(&args)?;
    let objects: Vec<_> = sets.iter().map(|p| p.object.clone()).collect();
    let counter = cluster::metrics::Counter::default();
    let (mut inv, known, against, client) = if args.source.from.is_empty() {
        let target = Target {
            kubeconfig: args.source.kubeconfig.clone(),
            context: args.source.context.clone(),
        };
        let (client, label) = target.client(&counter).await?;
        let (inv, known) =
            cluster::preflight::read(&client, &cluster::preflight::wanted(&objects)).await?;
        (inv, known, label, Some(client))
    } else {
        let inv = source::files::load(&args.source.from)?;
        let known = Known::from_inventory(&inv);
        let label = args
            .source
            .from
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        (inv, known, format!("files {label}"), None)
    };
    stsmend::caps::inventory(&mut inv);
    let at = match client {
        Some(_) => jiff::Timestamp::now(),
        None => stsmend::snapshot::taken_at(&inv)?.unwrap_or_else(jiff::Timestamp::now),
    };
    let settings = Settings::new(&config, Scope::default(), at)?;
    let input = preflight::Input {
        inventory: &inv,
        known: &known,
        settings: &settings,
        policies: &policies,
        at,
    };
    let mut predictions = Vec::new();
    for p in &sets {
        let server = match &client {
            Some(c) => {
                let live = preflight::live(&inv, &p.object);
                let existing: BTreeSet<String> = inv
                    .pods
                    .iter()
                    .filter(|x| x.metadata.namespace == p.object.metadata.namespace)
                    .filter_map(|x| x.metadata.name.clone())
                    .collect();
                let pods = preflight::first_pods(p, &inv);
                Some(cluster::preflight::dry_run(c, &p.object, live, &pods, &existing).await?)
            }
            None => None,
        };
        predictions.push(preflight::predict(p, &input, server.as_ref()));
    }
    let cli_policy_failed = policies.origin() == Some(Origin::CommandLine)
        && predictions
            .iter()
            .any(|p| p.plan.as_ref().is_some_and(|d| d.error.is_some()));
    let report = PreflightReport {
        schema: SCHEMA,
        version: stsmend::VERSION,
        generated_at: at,
        against,
        server: client.is_some(),
        failing: predictions.iter().filter(|p| p.fails).count(),
        sets: predictions,
        other_objects,
    };
    let text = report.render(args.output)?;
    if let Some(path) = &args.report {
        std::fs::write(path, &text).map_err(|e| Error::write(path, e))?;
    }
    print!("{text}");
    Ok(if cli_policy_failed {
        EXIT_BAD_INPUT
    } else {
        report.exit_code()
    })
}
