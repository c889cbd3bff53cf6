//! `stsmend undo`: puts back what the agent's last action on a StatefulSet
//! changed, from the record saved before that write.

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

use crate::cluster::write::{self, Writer};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::execution::Mode;
use crate::guard;
use crate::state::{self, LastAction, State};
use crate::undo::{self, Book, Prior};

pub struct Undone {
    /// The undo was not (or would not be) carried out.
    pub refused: bool,
    pub message: String,
}

fn refused(message: impl Into<String>) -> Result<Undone> {
    Ok(Undone {
        refused: true,
        message: message.into(),
    })
}

async fn get<K>(api: Api<K>, name: &str, what: &str) -> Result<Option<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| Error::api(format!("read {what}"), e))
}

pub async fn undo(
    client: &Client,
    config: &Config,
    ns: &str,
    name: &str,
    mode: Mode,
) -> Result<Undone> {
    let id = format!("{ns}/{name}");
    let own_ns = config.state_namespace.as_str();
    let cms = Api::<ConfigMap>::namespaced(client.clone(), own_ns);
    let book = match get(cms.clone(), undo::CONFIG_MAP, "undo records").await? {
        Some(cm) => Book::from_config_map(&cm)?,
        None => Book::default(),
    };
    let Some(record) = book.records.get(&id).cloned() else {
        return refused(format!("{id}: no action of stsmend is recorded to undo"));
    };
    let Some(sts) = get(
        Api::<StatefulSet>::namespaced(client.clone(), ns),
        name,
        &format!("StatefulSet {id}"),
    )
    .await?
    else {
        return refused(format!("{id}: the StatefulSet no longer exists"));
    };
    let namespace = get(Api::<Namespace>::all(client.clone()), ns, "namespace").await?;
    let ns_meta = namespace.as_ref().map(|n| &n.metadata);
    if let Some(by) = guard::paused(
        config.pause,
        sts.metadata.annotations.as_ref(),
        ns_meta.and_then(|m| m.annotations.as_ref()),
    ) {
        return refused(format!("{id}: paused by {by}"));
    }
    if !guard::opted_in(
        sts.metadata.labels.as_ref(),
        ns_meta.and_then(|m| m.labels.as_ref()),
        config.opt_in()?.as_ref(),
    ) {
        return refused(format!("{id}: {}", guard::Blocked::NotOptedIn.describe()));
    }
    let writer = Writer::new(
        client.clone(),
        if mode == Mode::ServerDryRun {
            write::Mode::ServerDryRun
        } else {
            write::Mode::Apply
        },
    );
    let now = jiff::Timestamp::now();
    let what = match &record.prior {
        Prior::Spec { .. } => {
            let templates = revision_templates(client, &sts).await?;
            restore_spec(&writer, &record, &sts, &templates, now, mode, &id).await?
        }
        Prior::NodeGroup { .. } => {
            restore_node_group(&writer, &record, &config.node_groups, now, mode, &id).await?
        }
    };
    // The sync suspended before a rollback is resumed whether or not the
    // spec can be put back: it is what a person waits on.
    let what = match &record.sync {
        Some(sync) => {
            let resumed = resume_sync(&writer, &record, sync, &sts, config, now, mode, &id).await?;
            both(what, resumed)
        }
        None => what,
    };
    let what = match what {
        Ok(what) => what,
        Err(Stop::Refused(message)) => return refused(message),
        Err(Stop::DryRun(message)) => {
            return Ok(Undone {
                refused: false,
                message,
            });
        }
    };
    if mode == Mode::Apply {
        record_undo(&writer, cms, book, &id, &sts, &what).await?;
    }
    Ok(Undone {
        refused: false,
        message: format!("{id}: {what}"),
    })
}

/// Why an undo stops before it writes: refused, or a dry run's account of
/// what it would do.
enum Stop {
    Refused(String),
    DryRun(String),
}

/// The templates of `sts`'s own ControllerRevisions (by owner uid): the
/// only templates an undo may write back.
async fn revision_templates(client: &Client, sts: &StatefulSet) -> Result<Vec<Value>> {
    let ns = sts.metadata.namespace.as_deref().unwrap_or_default();
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::api(format!("list ControllerRevisions in {ns}"), e))?;
    Ok(revisions
        .items
        .into_iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == sts.metadata.uid.as_ref())
        })
        .map(|r| r.data.0["spec"]["template"].clone())
        .collect())
}

/// Puts the spec back with the JSON patch the record allows.
async fn restore_spec(
    writer: &Writer,
    record: &undo::Record,
    sts: &StatefulSet,
    templates: &[Value],
    now: jiff::Timestamp,
    mode: Mode,
    id: &str,
) -> Result<std::result::Result<String, Stop>> {
    let restore = match undo::restore_patch(record, sts, templates, now) {
        Ok(r) if r.ops.as_array().is_some_and(Vec::is_empty) => {
            return Ok(Err(Stop::Refused(format!(
                "{id}: the spec is already as before the action"
            ))));
        }
        Ok(r) => r,
        Err(why) => return Ok(Err(Stop::Refused(format!("{id}: not undone: {why}")))),
    };
    if mode == Mode::DryRun {
        return Ok(Err(Stop::DryRun(format!(
            "{id}: would undo \"{}\": JSON patch of apps/v1 StatefulSet {id} ({}), conditional on resourceVersion {}: {}{}",
            record.what(),
            restore.fields.join(", "),
            sts.metadata.resource_version.as_deref().unwrap_or("?"),
            restore.ops,
            evicted_note(record)
        ))));
    }
    Ok(match writer.patch_spec(sts, &restore.ops).await?.0 {
        write::Outcome::Done => Ok(format!(
            "restored {} as before \"{}\"{}",
            restore.fields.join(", "),
            record.what(),
            evicted_note(record)
        )),
        write::Outcome::Conflict(m) | write::Outcome::Disallowed(m) => {
            Err(Stop::Refused(format!("{id}: not undone: {m}")))
        }
    })
}

/// What an undo of two writes did: one went through (or would) unless both
/// were refused.
fn both(
    spec: std::result::Result<String, Stop>,
    sync: std::result::Result<String, Stop>,
) -> std::result::Result<String, Stop> {
    match (spec, sync) {
        (Ok(a), Ok(b)) => Ok(format!("{a}; {b}")),
        (Ok(a), Err(Stop::Refused(b) | Stop::DryRun(b)))
        | (Err(Stop::Refused(b) | Stop::DryRun(b)), Ok(a)) => Ok(format!("{a}; {b}")),
        (Err(Stop::DryRun(a)), Err(Stop::DryRun(b) | Stop::Refused(b)))
        | (Err(Stop::Refused(b)), Err(Stop::DryRun(a))) => Err(Stop::DryRun(format!("{a}; {b}"))),
        (Err(Stop::Refused(a)), Err(Stop::Refused(b))) => Err(Stop::Refused(format!("{a}; {b}"))),
    }
}

/// Resumes the GitOps sync the record's action suspended: only the object
/// the StatefulSet still names as what applies it, only the field the
/// agent wrote, and only while it is still as the agent left it.
#[allow(clippy::too_many_arguments)]
async fn resume_sync(
    writer: &Writer,
    record: &undo::Record,
    sync: &crate::gitops::Suspended,
    sts: &StatefulSet,
    config: &Config,
    now: jiff::Timestamp,
    mode: Mode,
    id: &str,
) -> Result<std::result::Result<String, Stop>> {
    let what = sync.object.describe();
    let refuse = |why: String| {
        Ok(Err(Stop::Refused(format!(
            "{id}: the sync of {what} is not resumed: {why}"
        ))))
    };
    if let Err(why) = undo::dated_sanely(record.at, now) {
        return refuse(why);
    }
    if record.uid.is_none() || record.uid != sts.metadata.uid {
        return refuse("the record is not about this StatefulSet (uid)".into());
    }
    if !crate::gitops::named_by(&sts.metadata, &sync.object, &config.gitops.argocd_namespace) {
        return refuse(
            "the StatefulSet's labels and annotations no longer name it as what applies it".into(),
        );
    }
    let Some(object) = writer.read_sync(&sync.object).await? else {
        return refuse("it is not there".into());
    };
    let ops = match crate::gitops::resume_patch(sync, &object.value) {
        Ok(ops) => ops,
        Err(why) => return refuse(why),
    };
    if mode == Mode::DryRun {
        return Ok(Err(Stop::DryRun(format!(
            "{id}: would resume the sync of {what}: JSON patch of {} {what}, conditional on resourceVersion {}: {ops}",
            sync.api_version,
            object
                .value
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("?")
        ))));
    }
    Ok(
        match writer.patch_sync(&sync.object, &object, &ops).await? {
            write::Outcome::Done => Ok(format!(
                "resumed the sync of {what} ({} as before)",
                sync.path.trim_start_matches('/').replace('/', ".")
            )),
            write::Outcome::Conflict(m) | write::Outcome::Disallowed(m) => Err(Stop::Refused(
                format!("{id}: the sync of {what} is not resumed: {m}"),
            )),
        },
    )
}

/// Scales a node group back, only one configured now, through its
/// configured target, within its bounds, and only if nobody scaled it
/// since the agent did.
async fn restore_node_group(
    writer: &Writer,
    record: &undo::Record,
    configured: &[crate::config::NodeGroup],
    now: jiff::Timestamp,
    mode: Mode,
    id: &str,
) -> Result<std::result::Result<String, Stop>> {
    let (g, replicas, replicas_after) = match undo::node_group_restore(record, configured, now) {
        Ok(r) => r,
        Err(why) => return Ok(Err(Stop::Refused(format!("{id}: not undone: {why}")))),
    };
    let group = &g.name;
    let scale = writer.read_scale(&g.resource).await?;
    if scale.replicas != replicas_after {
        return Ok(Err(Stop::Refused(format!(
            "{id}: not undone: node group {group} has {} replicas, not the {replicas_after} stsmend set",
            scale.replicas
        ))));
    }
    if mode == Mode::DryRun {
        return Ok(Err(Stop::DryRun(format!(
            "{id}: would set spec.replicas of the /scale subresource of {} (node group {group}) from {} to {replicas}",
            g.resource.describe(),
            scale.replicas
        ))));
    }
    Ok(
        match writer.set_scale(&g.resource, &scale, replicas).await? {
            write::Outcome::Done => Ok(format!(
                "scaled node group {group} back from {} to {replicas}",
                scale.replicas
            )),
            write::Outcome::Conflict(m) | write::Outcome::Disallowed(m) => {
                Err(Stop::Refused(format!("{id}: not undone: {m}")))
            }
        },
    )
}

/// After an applied undo: the record is spent, the undo starts a cooldown
/// (so the next run does not redo at once what a person just undid), and
/// an Event says what was undone.
async fn record_undo(
    writer: &Writer,
    cms: Api<ConfigMap>,
    mut book: Book,
    id: &str,
    sts: &StatefulSet,
    what: &str,
) -> Result<()> {
    let own_ns = cms.namespace().unwrap_or_default().to_string();
    book.records.remove(id);
    writer
        .replace_config_map(&own_ns, undo::CONFIG_MAP, book.to_data()?)
        .await?;
    let mut st = match get(cms, state::CONFIG_MAP, "state").await? {
        Some(cm) => State::from_config_map(&cm)?,
        None => State::default(),
    };
    st.records.entry(id.to_string()).or_default().last_action = Some(LastAction {
        at: jiff::Timestamp::now(),
        action: "undo".into(),
        why: what.to_string(),
    });
    writer
        .save_config_map(&own_ns, state::CONFIG_MAP, st.to_data()?)
        .await?;
    if let Err(e) = writer
        .event(sts, "Normal", "StsmendUndone", &format!("undo: {what}"))
        .await
    {
        tracing::warn!(error = %e, "event not recorded");
    }
    Ok(())
}

/// Evicted pods are not brought back by an undo: the restored template
/// re-creates them as its rollout goes.
fn evicted_note(record: &undo::Record) -> &'static str {
    if record.steps.iter().any(|s| s.starts_with("evict done")) {
        "; the evicted pods are not restored: the controller re-creates them from the restored template"
    } else {
        ""
    }
}
