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
    stsmend::snapshot::mark(&mut inv, &config.state_namespace, jiff::Timestamp::now());
    let yaml = stsmend::snapshot::to_yaml(&inv)?;
    tracing::info!(requests = counter.snapshot().total, "snapshot taken");
    match &args.output {
        Some(path) => std::fs::write(path, yaml).map_err(|e| Error::write(path, e))?,
        None => print!("{yaml}"),
    }
    Ok(0)
}
