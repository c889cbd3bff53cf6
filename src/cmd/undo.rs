//! `stsmend undo`.

use super::*;

/// Restores what the last action on one StatefulSet changed, under the same
/// guards as a run: opted in, not paused, and conditional on the object not
/// having moved on since.
pub(crate) async fn undo(args: UndoArgs) -> stsmend::Result<u8> {
    let (ns, name) = split_target(&args.target)?;
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let target = Target {
        kubeconfig: args.cluster.kubeconfig.clone(),
        context: args.cluster.context.clone(),
    };
    let counter = cluster::metrics::Counter::default();
    let (client, _) = target.client(&counter).await?;
    let outcome = cluster::undo::undo(
        &client,
        &config,
        ns,
        name,
        if args.apply {
            Mode::Apply
        } else {
            Mode::DryRun
        },
    )
    .await?;
    println!("{}", outcome.message);
    Ok(if outcome.refused { 1 } else { 0 })
}
