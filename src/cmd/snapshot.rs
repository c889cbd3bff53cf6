//! `stsmend snapshot`: the objects a run reads, as a file `plan --from` replays.

use super::*;

pub(crate) async fn take_snapshot(args: SnapshotArgs) -> stsmend::Result<u8> {
    let config = load_config(&args.scope)?;
    let scope = resolve_scope(&args.scope, &config)?;
    let target = Target {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    let counter = cluster::metrics::Counter::default();
    let (client, _) = target.client(&counter).await?;
    let mut inv = cluster::read::read(
        &client,
        &scope,
        (&config.state_namespace, state::CONFIG_MAP),
        cluster::read::Keep::Whole,
    )
    .await?;
    if args.preflight {
        // Every namespace with a StatefulSet, and those named: where a
        // change may land.
        let mut wanted = cluster::preflight::Wanted::new();
        for ns in inv
            .stateful_sets
            .iter()
            .filter_map(|s| s.metadata.namespace.clone())
            .chain(scope.namespaces.iter().cloned())
        {
            wanted.insert(ns, None);
        }
        let (more, _) = cluster::preflight::read(&client, &wanted).await?;
        merge(&mut inv, more);
    }
    stsmend::snapshot::mark(&mut inv, &config.state_namespace, jiff::Timestamp::now());
    let yaml = stsmend::snapshot::to_yaml(&inv)?;
    tracing::info!(requests = counter.snapshot().total, "snapshot taken");
    match &args.output {
        Some(path) => std::fs::write(path, yaml).map_err(|e| Error::write(path, e))?,
        None => print!("{yaml}"),
    }
    Ok(0)
}

/// Adds what a preflight reads to what a run read, each object once.
fn merge(inv: &mut Inventory, more: Inventory) {
    fn add<K: kube::Resource>(to: &mut Vec<K>, from: Vec<K>) {
        let key = |o: &K| (o.meta().namespace.clone(), o.meta().name.clone());
        let have: std::collections::BTreeSet<_> = to.iter().map(key).collect();
        to.extend(from.into_iter().filter(|o| !have.contains(&key(o))));
    }
    add(&mut inv.stateful_sets, more.stateful_sets);
    add(&mut inv.pods, more.pods);
    add(&mut inv.controller_revisions, more.controller_revisions);
    add(&mut inv.pvcs, more.pvcs);
    add(&mut inv.nodes, more.nodes);
    add(&mut inv.storage_classes, more.storage_classes);
    add(&mut inv.limit_ranges, more.limit_ranges);
    add(&mut inv.resource_quotas, more.resource_quotas);
    add(&mut inv.pdbs, more.pdbs);
    add(&mut inv.namespaces, more.namespaces);
    add(&mut inv.service_accounts, more.service_accounts);
    add(&mut inv.priority_classes, more.priority_classes);
    add(&mut inv.config_maps, more.config_maps);
    add(&mut inv.validating_webhooks, more.validating_webhooks);
    add(&mut inv.mutating_webhooks, more.mutating_webhooks);
}
