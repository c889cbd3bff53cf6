//! The sandboxed Rhai engine and the policy API registered in it.
//!
//! Rhai's defaults are not a sandbox (`Engine::new()` imports files, prints
//! to stdout, sleeps, reads the clock and runs forever), so the engine starts
//! raw and gets only the pure packages, explicit limits, no module resolver
//! and no `eval`.
//!
//! Rhai hands a native function no per-evaluation state when an AST is
//! evaluated (its `tag` is engine-wide there), so the StatefulSet under
//! evaluation, and the trace being recorded, live in a thread-local stack of
//! frames, pushed and popped around each evaluation by a guard. Evaluations
//! are synchronous and never interleave on a thread; `ladder()` pushes a
//! frame of its own.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage, BasicMapPackage,
    BasicMathPackage, BasicStringPackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{
    AST, Array, Dynamic, Engine, EvalAltResult, FLOAT, INT, ImmutableString, Map,
    NativeCallContext, Scope,
};

use super::action::{Action, PatchType};
use super::error::{ApiError, PolicyError};
use super::returns::{self, Known, ReturnSite};
use super::select::Header;
use super::trace::{Status, Step};
use super::view::{
    DataView, FINDING_FIELDS, FindingView, POD_FIELDS, PodView, STS_FIELDS, StatefulSetView, View,
    str_value, to_json,
};
use crate::diagnose::Kind;
use crate::duration::Span;

/// The sandbox's limits. Generous for a policy that looks at one
/// StatefulSet (the default ladder runs in a few thousand operations), and
/// small enough that a runaway policy stops within milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    pub operations: u64,
    /// Wall time of one evaluation (a StatefulSet's, its `ladder()` calls
    /// included): copies of large values cost time no operation counts.
    pub time: std::time::Duration,
    /// Bytes a policy may print (`print`, `debug`) in one evaluation.
    pub printed: usize,
    /// When the run must have decided (its `deadline`, less the time to
    /// act and save): past it, every evaluation stops at once, so a slow
    /// policy cannot hold the run past its deadline.
    pub deadline: Option<std::time::Instant>,
    pub call_depth: usize,
    pub expr_depth: usize,
    pub fn_expr_depth: usize,
    pub string_size: usize,
    pub array_size: usize,
    pub map_size: usize,
    pub variables: usize,
    pub functions: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            operations: 200_000,
            time: std::time::Duration::from_secs(1),
            printed: 16 * 1024,
            deadline: None,
            call_depth: 32,
            expr_depth: 64,
            fn_expr_depth: 32,
            string_size: 64 * 1024,
            array_size: 10_000,
            map_size: 10_000,
            variables: 512,
            functions: 256,
        }
    }
}

/// A policy, parsed and checked once per run; its AST is reused for every
/// StatefulSet.
#[derive(Debug)]
pub struct Compiled {
    pub name: String,
    /// The file as given, or the built-in ladder's name.
    pub file: String,
    pub header: Header,
    pub(crate) ast: AST,
    pub(crate) sites: Vec<ReturnSite>,
}

pub fn new_engine(limits: &SandboxLimits) -> Engine {
    let mut engine = Engine::new_raw();
    // Everything a policy needs to compute, and nothing that reaches out:
    // no LanguageCorePackage (sleep, exit), no BasicTimePackage (the clock),
    // no blobs or debugging. One module rather than nine: each call
    // searches every global module.
    let mut lib = rhai::Module::new();
    for package in [
        ArithmeticPackage::new().as_shared_module(),
        LogicPackage::new().as_shared_module(),
        BasicStringPackage::new().as_shared_module(),
        MoreStringPackage::new().as_shared_module(),
        BasicIteratorPackage::new().as_shared_module(),
        BasicFnPackage::new().as_shared_module(),
        BasicMathPackage::new().as_shared_module(),
        BasicArrayPackage::new().as_shared_module(),
        BasicMapPackage::new().as_shared_module(),
    ] {
        lib.fill_with(&package);
    }
    engine.register_global_module(lib.into());

    engine
        .set_max_operations(limits.operations)
        .set_max_call_levels(limits.call_depth)
        .set_max_expr_depths(limits.expr_depth, limits.fn_expr_depth)
        .set_max_string_size(limits.string_size)
        .set_max_array_size(limits.array_size)
        .set_max_map_size(limits.map_size)
        .set_max_variables(limits.variables)
        .set_max_functions(limits.functions)
        .set_max_modules(0)
        .set_strict_variables(true)
        .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    for symbol in ["eval", "import", "export"] {
        engine.disable_symbol(symbol);
    }
    engine.on_print(|text| {
        if may_print(text.len()) {
            tracing::debug!(target: "stsmend::policy", "{text}");
        }
    });
    engine.on_debug(|text, source, pos| {
        if may_print(text.len()) {
            tracing::debug!(target: "stsmend::policy", source = source.unwrap_or_default(), line = pos.line().unwrap_or(0), "{text}");
        }
    });
    // Checked every few hundred operations: the clock is not free, and a
    // policy over its time is stopped within a fraction of it.
    engine.on_progress(|ops| {
        if ops % 256 != 0 {
            return None;
        }
        let outermost = FRAMES.with(|f| f.borrow().first().cloned())?;
        if outermost
            .limits
            .deadline
            .is_some_and(|d| std::time::Instant::now() > d)
        {
            return Some(Dynamic::from(PastDeadline));
        }
        (outermost.started.elapsed() > outermost.limits.time).then(|| Dynamic::from(OverTime))
    });
    register_api(&mut engine);
    engine
}

/// Compiles one policy. Scope names are known up front, so a misspelt
/// variable is a syntax error at load time, not a surprise at run time.
pub fn compile(
    engine: &Engine,
    name: &str,
    file: &str,
    text: &str,
    header: Header,
) -> Result<Compiled, PolicyError> {
    let mut scope = Scope::new();
    // Variables, not constants: the optimiser would fold placeholder
    // constants into the AST.
    for name in super::view::SCOPE_NAMES {
        scope.push_dynamic(*name, Dynamic::UNIT);
    }
    let mut ast = engine.compile_with_scope(&scope, text).map_err(|e| {
        let mut err = PolicyError::syntax(file, &e);
        let text = e.err_type().to_string();
        if let Some(word) = ["eval", "import", "export"]
            .into_iter()
            .find(|w| text.contains(&format!("'{w}'")))
        {
            err.message = format!(
                "`{word}` is disabled in the policy sandbox{}",
                if word == "eval" {
                    ""
                } else {
                    "; policies cannot load modules (call ladder() to reuse the default ladder)"
                }
            );
        }
        err
    })?;
    ast.set_source(file);
    let sites = returns::sites(&ast);
    Ok(Compiled {
        name: name.to_string(),
        file: file.to_string(),
        header,
        ast,
        sites,
    })
}

/// What `ladder()` runs from a team policy: the default ladder, or why it
/// cannot.
pub(crate) type LadderRef = Result<Arc<Compiled>, PolicyError>;

struct Frame {
    view: Arc<View>,
    policy: String,
    /// `None` while the ladder itself runs: it cannot call itself.
    ladder: Option<LadderRef>,
    limits: SandboxLimits,
    steps: RefCell<Vec<Step>>,
    declared: RefCell<Option<Vec<String>>>,
    chosen: RefCell<Option<String>>,
    /// The rung the ladder chose when this policy called `ladder()`.
    delegated: RefCell<Option<String>>,
    started: std::time::Instant,
    printed: std::cell::Cell<usize>,
}

thread_local! {
    static FRAMES: RefCell<Vec<Rc<Frame>>> = const { RefCell::new(Vec::new()) };
}

/// What stops a policy over its time budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverTime;

/// What stops a policy still running when the run must have decided.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PastDeadline;

/// Whether `len` more bytes of a policy's prints fit in its evaluation's
/// budget; past it, one line says the rest is dropped.
fn may_print(len: usize) -> bool {
    let Some(frame) = FRAMES.with(|f| f.borrow().first().cloned()) else {
        return false;
    };
    let before = frame.printed.get();
    let after = before.saturating_add(len);
    frame.printed.set(after);
    if after <= frame.limits.printed {
        return true;
    }
    if before <= frame.limits.printed {
        tracing::debug!(target: "stsmend::policy", policy = %frame.policy, "more than {} bytes printed: the rest of this evaluation's prints are dropped", frame.limits.printed);
    }
    false
}

struct FrameGuard;

impl FrameGuard {
    fn push(frame: Rc<Frame>) -> Self {
        FRAMES.with(|f| f.borrow_mut().push(frame));
        FrameGuard
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        FRAMES.with(|f| {
            f.borrow_mut().pop();
        });
    }
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

fn with_frame<T>(f: impl FnOnce(&Frame) -> RhaiResult<T>) -> RhaiResult<T> {
    // The Rc is cloned out so the stack is not borrowed while `f` runs:
    // `ladder()` pushes onto it.
    let frame = FRAMES.with(|frames| frames.borrow().last().cloned());
    match frame {
        Some(frame) => f(&frame),
        None => ApiError::raise("the policy API is only available while a policy is evaluated"),
    }
}

/// One policy's run on one StatefulSet.
#[derive(Debug)]
pub(crate) struct Evaluation {
    pub result: Result<Vec<Action>, PolicyError>,
    pub steps: Vec<Step>,
    pub rung: Option<String>,
}

pub(crate) fn evaluate(
    engine: &Engine,
    limits: &SandboxLimits,
    policy: &Compiled,
    view: &Arc<View>,
    ladder: Option<LadderRef>,
) -> Evaluation {
    let frame = Rc::new(Frame {
        view: view.clone(),
        policy: policy.name.clone(),
        ladder,
        limits: *limits,
        steps: RefCell::new(Vec::new()),
        declared: RefCell::new(None),
        chosen: RefCell::new(None),
        delegated: RefCell::new(None),
        started: std::time::Instant::now(),
        printed: std::cell::Cell::new(0),
    });
    let mut scope = Scope::new();
    for (name, value) in &view.values {
        scope.push_constant_dynamic(*name, value.clone());
    }
    let outcome = {
        let _guard = FrameGuard::push(frame.clone());
        engine.eval_ast_with_scope::<Dynamic>(&mut scope, &policy.ast)
    };
    let result = match outcome {
        Ok(value) => actions_of(engine, policy, value),
        Err(err) => Err(PolicyError::from_eval(&policy.file, &err, limits)),
    };
    let mut steps = frame.steps.take();
    let chosen = frame.chosen.take();
    let delegated = frame.delegated.take();
    if let Some(declared) = frame.declared.take() {
        for rung in declared {
            let seen = steps
                .iter()
                .any(|s| s.policy == policy.name && s.rung == rung);
            if !seen {
                let why = match (&chosen, &result) {
                    (_, Err(_)) => "the policy stopped with an error before this rung".to_string(),
                    (Some(c), _) => {
                        format!("rung {c} was chosen first (one rung per object per run)")
                    }
                    (None, _) => "the policy returned before this rung".to_string(),
                };
                steps.push(Step {
                    policy: policy.name.clone(),
                    rung,
                    status: Status::NotReached,
                    why,
                });
            }
        }
    }
    let mut rung = chosen.or(delegated);
    if let Ok(actions) = &result
        && steps.is_empty()
    {
        // A policy without rungs is one rung, named after itself.
        steps.push(Step {
            policy: policy.name.clone(),
            rung: policy.name.clone(),
            status: Status::Chosen,
            why: if actions.is_empty() {
                "returned no action".into()
            } else {
                whys(actions.iter())
            },
        });
        rung = Some(policy.name.clone());
    }
    Evaluation {
        result,
        steps,
        rung,
    }
}

fn whys<'a>(actions: impl Iterator<Item = &'a Action>) -> String {
    actions
        .map(|a| format!("{}: {}", a.name(), a.why()))
        .collect::<Vec<_>>()
        .join("; ")
}

fn preview(engine: &Engine, v: &Dynamic) -> String {
    let type_name = engine.map_type_name(v.type_name());
    let mut text = v.to_string();
    if text.chars().count() > 60 {
        text = text.chars().take(57).collect::<String>() + "...";
    }
    if v.is_unit() {
        "nothing (`()`)".to_string()
    } else if v.is_string() {
        format!("a string {text:?}")
    } else {
        format!("{type_name} `{text}`")
    }
}

/// Strict: an array whose every element is an action made by a
/// constructor. Anything else names the return statement that gave it.
fn actions_of(
    engine: &Engine,
    policy: &Compiled,
    value: Dynamic,
) -> Result<Vec<Action>, PolicyError> {
    const HOW: &str =
        "a policy returns an array of actions, e.g. `[escalate(\"why\")]` or `[]` for none";
    if !value.is_array() {
        let actual = Known::of_type_name(engine.map_type_name(value.type_name()));
        let hint = if actual == Known::Action {
            "; put the action in brackets".to_string()
        } else {
            String::new()
        };
        return Err(PolicyError::return_type(
            &policy.file,
            format!("{HOW}; it returned {}{hint}", preview(engine, &value)),
            &returns::candidates(&policy.sites, actual),
        ));
    }
    let array = value.cast::<Array>();
    let mut actions = Vec::with_capacity(array.len());
    for (i, item) in array.into_iter().enumerate() {
        if item.is::<Action>() {
            actions.push(item.cast::<Action>());
        } else {
            return Err(PolicyError::return_type(
                &policy.file,
                format!(
                    "{HOW}; element {} of the returned array is {}, not an action made by wait(), scale_nodes(), patch_spec(), rollback(), delete_pods() or escalate()",
                    i + 1,
                    preview(engine, &item)
                ),
                &returns::candidates(&policy.sites, Known::Array),
            ));
        }
    }
    Ok(actions)
}

fn why_of(action: &str, why: &str) -> RhaiResult<String> {
    let why = why.trim();
    if why.is_empty() {
        return ApiError::raise(format!(
            "{action}: every action needs a why (a non-empty reason)"
        ));
    }
    Ok(why.to_string())
}

fn span_of(action: &str, recheck: Span) -> RhaiResult<Span> {
    if recheck.as_secs() == 0 {
        return ApiError::raise(format!("{action}: recheck_after must be longer than 0s"));
    }
    Ok(recheck)
}

fn make_wait(why: &str, recheck: Span) -> RhaiResult<Action> {
    Ok(Action::Wait {
        recheck_after: span_of("wait", recheck)?,
        why: why_of("wait", why)?,
    })
}

fn make_scale(group: &str, delta: INT, why: &str) -> RhaiResult<Action> {
    let why = why_of("scale_nodes", why)?;
    with_frame(|f| {
        let Some((_, max)) = f.view.node_groups.iter().find(|(n, _)| n == group) else {
            let known: Vec<&str> = f.view.node_groups.iter().map(|(n, _)| n.as_str()).collect();
            return ApiError::raise(format!(
                "scale_nodes: no configured node group {group:?} (configured: {})",
                if known.is_empty() {
                    "none; see nodeGroups in the config".to_string()
                } else {
                    known.join(", ")
                }
            ));
        };
        if delta < 1 || delta > INT::from(*max) {
            return ApiError::raise(format!(
                "scale_nodes: delta {delta} for group {group:?} must be between 1 and its max {max}"
            ));
        }
        Ok(Action::ScaleNodes {
            group: group.to_string(),
            delta: delta as i32,
            why,
        })
    })
}

const PATCH_MAX_DEPTH: usize = 32;
const PATCH_MAX_BYTES: usize = 128 * 1024;

/// How deeply `v` nests, counted without recursion (the value may be deep
/// enough to overflow the stack).
fn depth(v: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 1)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            serde_json::Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            serde_json::Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
}

fn make_patch(patch: Dynamic, why: &str) -> RhaiResult<Action> {
    let why = why_of("patch_spec", why)?;
    let json = match to_json(&patch, "patch") {
        Ok(j) => j,
        Err(e) => return ApiError::raise(format!("patch_spec: {e}")),
    };
    // What a report quotes and the API server is sent: a StatefulSet is
    // nowhere near this deep, nor its spec this large.
    if depth(&json) > PATCH_MAX_DEPTH {
        return ApiError::raise(format!(
            "patch_spec: the patch is nested deeper than {PATCH_MAX_DEPTH} levels"
        ));
    }
    let size = serde_json::to_vec(&json).map_or(usize::MAX, |b| b.len());
    if size > PATCH_MAX_BYTES {
        return ApiError::raise(format!(
            "patch_spec: the patch is {size} bytes as JSON, more than {PATCH_MAX_BYTES}"
        ));
    }
    let patch_type = match &json {
        serde_json::Value::Object(o) => {
            if o.is_empty() || o.keys().any(|k| k != "spec") {
                return ApiError::raise(format!(
                    "patch_spec: a merge patch is relative to the StatefulSet and may only hold `spec`, e.g. #{{spec: #{{replicas: 3}}}}; got keys {:?}",
                    o.keys().collect::<Vec<_>>()
                ));
            }
            PatchType::Merge
        }
        serde_json::Value::Array(_) => {
            let ops: json_patch::Patch = match serde_json::from_value(json.clone()) {
                Ok(p) => p,
                Err(e) => {
                    return ApiError::raise(format!(
                        "patch_spec: not a JSON patch (RFC 6902): {e}"
                    ));
                }
            };
            if ops.0.is_empty() {
                return ApiError::raise("patch_spec: the JSON patch has no operation");
            }
            for op in &ops.0 {
                let mut paths = vec![op_path(op)];
                if let json_patch::PatchOperation::Move(m) = op {
                    paths.push(m.from.to_string());
                }
                if let json_patch::PatchOperation::Copy(c) = op {
                    paths.push(c.from.to_string());
                }
                if let Some(p) = paths.iter().find(|p| !p.starts_with("/spec/")) {
                    return ApiError::raise(format!(
                        "patch_spec: JSON patch path {p:?} is outside /spec/"
                    ));
                }
            }
            PatchType::Json
        }
        _ => {
            return ApiError::raise(format!(
                "patch_spec: the patch must be a map (merge patch) or an array (JSON patch), not {}",
                patch.type_name()
            ));
        }
    };
    with_frame(|f| {
        // The patch must apply to the object the decision was made on and
        // leave a spec the API would accept the shape of.
        let mut object = serde_json::json!({ "spec": f.view.spec_json() });
        match patch_type {
            PatchType::Merge => json_patch::merge(&mut object, &json),
            PatchType::Json => {
                let ops: json_patch::Patch = serde_json::from_value(json.clone())
                    .map_err(|e| ApiError(format!("patch_spec: {e}")))
                    .or_else(|e| ApiError::raise(e.0))?;
                if let Err(e) = json_patch::patch(&mut object, &ops) {
                    return ApiError::raise(format!(
                        "patch_spec: the JSON patch does not apply to {}: {e}",
                        f.view.id()
                    ));
                }
            }
        }
        if let Err(e) = serde_json::from_value::<k8s_openapi::api::apps::v1::StatefulSetSpec>(
            object["spec"].clone(),
        ) {
            return ApiError::raise(format!(
                "patch_spec: the patched spec is not a valid StatefulSet spec: {e}"
            ));
        }
        Ok(())
    })?;
    Ok(Action::PatchSpec {
        patch_type,
        patch: json,
        why,
    })
}

fn op_path(op: &json_patch::PatchOperation) -> String {
    use json_patch::PatchOperation as P;
    match op {
        P::Add(o) => o.path.to_string(),
        P::Remove(o) => o.path.to_string(),
        P::Replace(o) => o.path.to_string(),
        P::Move(o) => o.path.to_string(),
        P::Copy(o) => o.path.to_string(),
        P::Test(o) => o.path.to_string(),
    }
}

fn make_rollback(to: Dynamic, why: &str, options: Map) -> RhaiResult<Action> {
    let why = why_of("rollback", why)?;
    let (evict, suspend_sync) = rollback_options(&options)?;
    with_frame(|f| {
        let v = &f.view;
        let (found, asked) = if let Ok(n) = to.as_int() {
            (v.revision_by_number(n), format!("numbered {n}"))
        } else if to.is_string() {
            let name = to.to_string();
            (v.revision_by_name(&name), format!("named {name:?}"))
        } else if to.is_map() {
            let m = to.read_lock::<Map>().map(|m| m.clone()).unwrap_or_default();
            match (
                m.get("revision").and_then(|r| r.as_int().ok()),
                m.get("name").filter(|n| n.is_string()),
            ) {
                (Some(n), _) => (v.revision_by_number(n), format!("numbered {n}")),
                (None, Some(name)) => {
                    let name = name.to_string();
                    (v.revision_by_name(&name), format!("named {name:?}"))
                }
                _ => {
                    return ApiError::raise(
                        "rollback: a map target needs `revision` (a number) or `name`",
                    );
                }
            }
        } else if to.is_unit() {
            return ApiError::raise(
                "rollback: no revision given (last_good_revision() returns () when there is none; check it first)",
            );
        } else {
            return ApiError::raise(format!(
                "rollback: the target must be a revision number, a ControllerRevision name or a map from last_good_revision(), not {}",
                to.type_name()
            ));
        };
        let Some(rev) = found else {
            return ApiError::raise(format!(
                "rollback: {} has no ControllerRevision {asked} (known: {})",
                v.id(),
                v.known_revisions()
            ));
        };
        if !rev.has_template {
            return ApiError::raise(format!(
                "rollback: revision {} ({}) records no pod template",
                rev.revision, rev.name
            ));
        }
        if rev.matches_template {
            return ApiError::raise(format!(
                "rollback: rolling back to revision {} ({}) changes nothing: the StatefulSet's template already equals it",
                rev.revision, rev.name
            ));
        }
        // The forced rollback: each pod to evict once the revert is
        // observed must be one the controller would wait on forever, not
        // Ready, and not on the revision being restored.
        for name in &evict {
            let Some(pod) = v.pod(name) else {
                return ApiError::raise(format!(
                    "rollback: evict: {name} is not a pod of {}",
                    v.id()
                ));
            };
            if pod.terminating {
                return ApiError::raise(format!("rollback: evict: {name} is already terminating"));
            }
            if pod.ready {
                return ApiError::raise(format!(
                    "rollback: evict: {name} is Ready; only pods stuck not Ready are evicted after a rollback"
                ));
            }
            if pod.revision.as_deref() == Some(rev.name.as_str()) {
                return ApiError::raise(format!(
                    "rollback: evict: {name} already runs revision {} ({}), the one rolled back to",
                    rev.revision, rev.name
                ));
            }
        }
        // The object to suspend comes from the spec_owner finding, never
        // from the policy: a policy cannot point the agent at another.
        let suspend = if suspend_sync {
            let Some(sync) = &v.sync else {
                return ApiError::raise(format!(
                    "rollback: suspend_sync: {} is not applied by a Flux Kustomization or HelmRelease or an Argo CD Application the agent can name (see the spec_owner finding)",
                    v.id()
                ));
            };
            Some(sync.clone())
        } else {
            None
        };
        Ok(Action::Rollback {
            revision: rev.revision,
            name: rev.name.clone(),
            evict,
            suspend,
            why,
        })
    })
}

/// `rollback()`'s options: the pods to evict, and whether to suspend the
/// GitOps sync first.
fn rollback_options(options: &Map) -> RhaiResult<(Vec<String>, bool)> {
    let mut evict = Vec::new();
    let mut suspend_sync = false;
    for (key, value) in options {
        match key.as_str() {
            "evict" => evict = names_of("rollback: evict", value)?,
            "suspend_sync" => {
                let Ok(on) = value.as_bool() else {
                    return ApiError::raise(format!(
                        "rollback: suspend_sync must be true or false, not {}",
                        value.type_name()
                    ));
                };
                suspend_sync = on;
            }
            other => {
                return ApiError::raise(format!(
                    "rollback: unknown option {other:?} (known: evict, suspend_sync)"
                ));
            }
        }
    }
    Ok((evict, suspend_sync))
}

fn names_of(api: &str, names: &Dynamic) -> RhaiResult<Vec<String>> {
    let one = |d: &Dynamic| -> RhaiResult<String> {
        if d.is_string() {
            return Ok(d.to_string());
        }
        if let Some(p) = d.clone().try_cast::<PodView>()
            && let Some(n) = p.0.get("name")
        {
            return Ok(n.to_string());
        }
        if d.is_map()
            && let Some(n) = d.read_lock::<Map>().and_then(|m| {
                m.get("name")
                    .filter(|n| n.is_string())
                    .map(|n| n.to_string())
            })
        {
            return Ok(n);
        }
        ApiError::raise(format!(
            "{api}: expected pod names or pods, got {}",
            d.type_name()
        ))
    };
    if names.is_array() {
        let list = names
            .read_lock::<Array>()
            .map(|a| a.clone())
            .unwrap_or_default();
        list.iter().map(one).collect()
    } else {
        one(names).map(|n| vec![n])
    }
}

fn make_delete(names: Dynamic, why: &str, options: Map) -> RhaiResult<Action> {
    let why = why_of("delete_pods", why)?;
    let mut any_pod = false;
    for (key, value) in &options {
        match key.as_str() {
            "any_pod" => {
                any_pod = value.as_bool().or_else(|_| {
                    ApiError::raise("delete_pods: option any_pod must be true or false")
                })?
            }
            other => {
                return ApiError::raise(format!(
                    "delete_pods: unknown option {other:?} (known: any_pod)"
                ));
            }
        }
    }
    let pods = names_of("delete_pods", &names)?;
    if pods.is_empty() {
        return ApiError::raise("delete_pods: no pod named");
    }
    with_frame(|f| {
        let v = &f.view;
        for name in &pods {
            let Some(pod) = v.pod(name) else {
                return ApiError::raise(format!("delete_pods: {name} is not a pod of {}", v.id()));
            };
            if pod.terminating {
                return ApiError::raise(format!("delete_pods: {name} is already terminating"));
            }
            if any_pod {
                continue;
            }
            if pod.ready {
                return ApiError::raise(format!(
                    "delete_pods: {name} is Ready; only pods not Ready and not on the update revision are deleted unless the policy passes #{{any_pod: true}}"
                ));
            }
            if pod.revision.is_some() && pod.revision == v.update_revision {
                return ApiError::raise(format!(
                    "delete_pods: {name} is on the update revision, so the controller would re-create it the same; pass #{{any_pod: true}} to delete it anyway"
                ));
            }
        }
        Ok(())
    })?;
    Ok(Action::DeletePods { pods, any_pod, why })
}

fn check_rung(f: &Frame, api: &str, rung: &str) -> RhaiResult<()> {
    if rung.trim().is_empty() {
        return ApiError::raise(format!("{api}: the rung needs a name"));
    }
    if let Some(declared) = f.declared.borrow().as_ref()
        && !declared.iter().any(|d| d == rung)
    {
        return ApiError::raise(format!(
            "{api}: rung {rung:?} is not among the declared rungs ({})",
            declared.join(", ")
        ));
    }
    let repeated = f
        .steps
        .borrow()
        .iter()
        .any(|s| s.policy == f.policy && s.rung == rung);
    if repeated {
        return ApiError::raise(format!("{api}: rung {rung:?} is already in the trace"));
    }
    Ok(())
}

fn declare_rungs(list: Array) -> RhaiResult<()> {
    with_frame(|f| {
        if f.declared.borrow().is_some() {
            return ApiError::raise("rungs: the rungs are already declared");
        }
        if f.steps.borrow().iter().any(|s| s.policy == f.policy) {
            return ApiError::raise("rungs: declare the rungs before skip() or choose()");
        }
        let mut names = Vec::with_capacity(list.len());
        for item in list {
            if !item.is_string() {
                return ApiError::raise("rungs: rung names are strings");
            }
            let name = item.to_string();
            if name.trim().is_empty() || names.contains(&name) {
                return ApiError::raise(format!("rungs: {name:?} is empty or repeated"));
            }
            names.push(name);
        }
        *f.declared.borrow_mut() = Some(names);
        Ok(())
    })
}

fn skip(rung: &str, why: &str) -> RhaiResult<()> {
    with_frame(|f| {
        check_rung(f, "skip", rung)?;
        let why = why_of("skip", why)?;
        f.steps.borrow_mut().push(Step {
            policy: f.policy.clone(),
            rung: rung.to_string(),
            status: Status::Skipped,
            why,
        });
        Ok(())
    })
}

fn choose(rung: &str, actions: Array) -> RhaiResult<Array> {
    with_frame(|f| {
        if let Some(c) = f.chosen.borrow().as_ref() {
            return ApiError::raise(format!(
                "choose: rung {c:?} was already chosen; one rung per object per run"
            ));
        }
        check_rung(f, "choose", rung)?;
        let mut list = Vec::with_capacity(actions.len());
        for (i, a) in actions.iter().enumerate() {
            match a.clone().try_cast::<Action>() {
                Some(a) => list.push(a),
                None => {
                    return ApiError::raise(format!(
                        "choose: element {} is a {}, not an action",
                        i + 1,
                        a.type_name()
                    ));
                }
            }
        }
        if let Some(delegated) = f.delegated.borrow().as_ref() {
            for s in f.steps.borrow_mut().iter_mut() {
                if s.policy != f.policy && s.rung == *delegated && s.status == Status::Chosen {
                    s.status = Status::Overridden;
                    s.why = format!("{} (replaced by {} rung {rung})", s.why, f.policy);
                }
            }
        }
        f.steps.borrow_mut().push(Step {
            policy: f.policy.clone(),
            rung: rung.to_string(),
            status: Status::Chosen,
            why: if list.is_empty() {
                "no action".into()
            } else {
                whys(list.iter())
            },
        });
        *f.chosen.borrow_mut() = Some(rung.to_string());
        Ok(actions)
    })
}

fn run_ladder(ctx: NativeCallContext) -> RhaiResult<Array> {
    let (view, ladder, limits) = with_frame(|f| {
        let Some(ladder) = f.ladder.clone() else {
            return ApiError::raise("ladder: the default ladder cannot call itself");
        };
        if f.delegated.borrow().is_some() {
            return ApiError::raise("ladder: already called once in this policy");
        }
        Ok((f.view.clone(), ladder, f.limits))
    })?;
    let ladder = match ladder {
        Ok(l) => l,
        Err(e) => return ApiError::raise(format!("ladder: the default ladder is broken: {e}")),
    };
    let evaluation = evaluate(ctx.engine(), &limits, &ladder, &view, None);
    with_frame(|f| {
        f.steps.borrow_mut().extend(evaluation.steps);
        *f.delegated.borrow_mut() = evaluation.rung.clone();
        Ok(())
    })?;
    match evaluation.result {
        Ok(actions) => Ok(actions.into_iter().map(Dynamic::from).collect()),
        Err(e) => ApiError::raise(format!("ladder: the default ladder failed: {e}")),
    }
}

fn kind_checked(kind: &str) -> RhaiResult<&str> {
    if Kind::from_name(kind).is_some() {
        Ok(kind)
    } else {
        let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::raise(format!(
            "unknown finding kind {kind:?} (kinds: {})",
            kinds.join(", ")
        ))
    }
}

fn pod_values<'a>(pods: impl Iterator<Item = &'a super::view::PodFacts>) -> Array {
    pods.map(|p| p.value.clone()).collect()
}

macro_rules! register_record {
    ($engine:expr, $ty:ty, $fields:expr) => {{
        $engine.register_type_with_name::<$ty>(<$ty>::TYPE_NAME);
        for field in $fields {
            $engine.register_get(*field, move |r: &mut $ty| {
                r.0.get(*field).cloned().unwrap_or(Dynamic::UNIT)
            });
        }
        $engine.register_indexer_get(|r: &mut $ty, key: &str| -> RhaiResult<Dynamic> {
            match r.0.get(key) {
                Some(v) => Ok(v.clone()),
                None => Err(Box::new(EvalAltResult::ErrorPropertyNotFound(
                    format!("{key} ({} has: {})", <$ty>::TYPE_NAME, $fields.join(", ")),
                    rhai::Position::NONE,
                ))),
            }
        });
        $engine.register_fn("to_map", |r: &mut $ty| (*r.0).clone());
        $engine.register_fn("to_string", |r: &mut $ty| printable(&r.0).to_string());
        $engine.register_fn("to_debug", |r: &mut $ty| {
            format!("{}{}", <$ty>::TYPE_NAME, printable(&r.0))
        });
    }};
}

/// A record as a map to print: a finding's data printed as its map, not
/// as the name of its Rust type.
fn printable(record: &Map) -> Dynamic {
    Dynamic::from_map(
        record
            .iter()
            .map(|(k, v)| match v.read_lock::<DataView>() {
                Some(d) => (k.clone(), Dynamic::from_map((*d.map).clone())),
                None => (k.clone(), v.clone()),
            })
            .collect(),
    )
}

/// `f.data`: read like a map (`f.data.key`, `f.data["key"]`, `"key" in
/// f.data`), but only the keys of the finding's kind.
fn register_data(engine: &mut Engine) {
    engine.register_type_with_name::<DataView>(DataView::TYPE_NAME);
    engine.register_indexer_get(|d: &mut DataView, key: &str| -> RhaiResult<Dynamic> {
        match d.map.get(key) {
            Some(v) => Ok(v.clone()),
            None => Err(Box::new(EvalAltResult::ErrorPropertyNotFound(
                d.unknown(key),
                rhai::Position::NONE,
            ))),
        }
    });
    engine.register_fn("contains", |d: &mut DataView, key: &str| {
        d.map.contains_key(key)
    });
    engine.register_fn("keys", |d: &mut DataView| -> Array {
        d.map.keys().map(|k| Dynamic::from(k.clone())).collect()
    });
    engine.register_fn("to_map", |d: &mut DataView| (*d.map).clone());
    engine.register_fn("to_string", |d: &mut DataView| {
        Dynamic::from_map((*d.map).clone()).to_string()
    });
    engine.register_fn("to_debug", |d: &mut DataView| {
        format!(
            "{}{}",
            DataView::TYPE_NAME,
            Dynamic::from_map((*d.map).clone())
        )
    });
}

fn register_api(engine: &mut Engine) {
    register_record!(engine, StatefulSetView, STS_FIELDS);
    register_record!(engine, PodView, POD_FIELDS);
    register_record!(engine, FindingView, FINDING_FIELDS);
    register_data(engine);
    register_actions(engine);
    engine.register_fn("join", |list: &mut Array, separator: &str| -> String {
        list.iter()
            .map(|item| item.to_string())
            .collect::<Vec<_>>()
            .join(separator)
    });
    register_vocabulary(engine);
    // The trace.
    engine.register_fn("rungs", declare_rungs);
    engine.register_fn("skip", skip);
    engine.register_fn("choose", choose);
    engine.register_fn("ladder", run_ladder);

    register_finding_helpers(engine);
    register_pod_helpers(engine);
    register_revision_helpers(engine);
    register_value_helpers(engine);
}

/// What a policy can read of an action it built.
fn register_actions(engine: &mut Engine) {
    engine.register_type_with_name::<Action>("Action");
    engine.register_type_with_name::<ApiError>("PolicyApiError");
    engine.register_fn("to_string", |e: &mut ApiError| e.0.clone());
    engine.register_fn("to_debug", |e: &mut ApiError| e.0.clone());
    engine.register_fn("to_string", |a: &mut Action| a.describe());
    engine.register_fn("to_debug", |a: &mut Action| a.describe());
    engine.register_get("action", |a: &mut Action| a.name().to_string());
    engine.register_get("why", |a: &mut Action| a.why().to_string());
    engine.register_get("is_mutating", |a: &mut Action| a.is_mutating());
    engine.register_get("pods", |a: &mut Action| match a {
        Action::DeletePods { pods, .. } => {
            Dynamic::from_array(pods.iter().map(|p| str_value(p)).collect())
        }
        _ => Dynamic::UNIT,
    });
    engine.register_get("any_pod", |a: &mut Action| match a {
        Action::DeletePods { any_pod, .. } => Dynamic::from_bool(*any_pod),
        _ => Dynamic::UNIT,
    });
    engine.register_get("group", |a: &mut Action| match a {
        Action::ScaleNodes { group, .. } => str_value(group),
        _ => Dynamic::UNIT,
    });
    engine.register_get("delta", |a: &mut Action| match a {
        Action::ScaleNodes { delta, .. } => Dynamic::from_int(INT::from(*delta)),
        _ => Dynamic::UNIT,
    });
    engine.register_get("revision", |a: &mut Action| match a {
        Action::Rollback { revision, .. } => Dynamic::from_int(*revision),
        _ => Dynamic::UNIT,
    });
    engine.register_get("name", |a: &mut Action| match a {
        Action::Rollback { name, .. } => str_value(name),
        _ => Dynamic::UNIT,
    });
    engine.register_get("evict", |a: &mut Action| match a {
        Action::Rollback { evict, .. } => {
            Dynamic::from_array(evict.iter().map(|p| str_value(p)).collect())
        }
        _ => Dynamic::UNIT,
    });
    engine.register_get("suspend", |a: &mut Action| match a {
        Action::Rollback {
            suspend: Some(s), ..
        } => str_value(&s.describe()),
        _ => Dynamic::UNIT,
    });
    engine.register_get("patch", |a: &mut Action| match a {
        Action::PatchSpec { patch, .. } => super::view::from_json(patch),
        _ => Dynamic::UNIT,
    });
    engine.register_get("patch_type", |a: &mut Action| match a {
        Action::PatchSpec { patch_type, .. } => str_value(match patch_type {
            PatchType::Merge => "merge",
            PatchType::Json => "json",
        }),
        _ => Dynamic::UNIT,
    });
    engine.register_get("recheck_after", |a: &mut Action| match a {
        Action::Wait { recheck_after, .. } => Dynamic::from_int(recheck_after.as_secs() as INT),
        _ => Dynamic::UNIT,
    });
}

/// The actions a policy returns.
fn register_vocabulary(engine: &mut Engine) {
    engine.register_fn("wait", |why: &str, after: &str| -> RhaiResult<Action> {
        let span: Span = after
            .parse()
            .or_else(|e: crate::Error| ApiError::raise(format!("wait: recheck_after: {e}")))?;
        make_wait(why, span)
    });
    engine.register_fn("wait", |why: &str, seconds: INT| -> RhaiResult<Action> {
        if seconds < 0 {
            return ApiError::raise("wait: recheck_after must not be negative");
        }
        make_wait(why, Span(seconds as u64))
    });
    engine.register_fn("scale_nodes", |group: &str, delta: INT, why: &str| {
        make_scale(group, delta, why)
    });
    engine.register_fn("patch_spec", |patch: Dynamic, why: &str| {
        make_patch(patch, why)
    });
    engine.register_fn("rollback", |to: Dynamic, why: &str| {
        make_rollback(to, why, Map::new())
    });
    engine.register_fn("rollback", |to: Dynamic, why: &str, options: Map| {
        make_rollback(to, why, options)
    });
    engine.register_fn("delete_pods", |names: Dynamic, why: &str| {
        make_delete(names, why, Map::new())
    });
    engine.register_fn("delete_pods", |names: Dynamic, why: &str, options: Map| {
        make_delete(names, why, options)
    });
    engine.register_fn("escalate", |why: &str| -> RhaiResult<Action> {
        Ok(Action::Escalate {
            why: why_of("escalate", why)?,
        })
    });
}

/// Helpers over the StatefulSet under evaluation; they work inside the
/// policy's own functions too, where the scope constants are not visible.
fn register_finding_helpers(engine: &mut Engine) {
    engine.register_fn("has", |kind: &str| -> RhaiResult<bool> {
        let kind = kind_checked(kind)?;
        with_frame(|f| Ok(f.view.findings_of(kind).next().is_some()))
    });
    engine.register_fn("findings_of", |kind: &str| -> RhaiResult<Array> {
        let kind = kind_checked(kind)?;
        with_frame(|f| Ok(f.view.findings_of(kind).map(|x| x.value.clone()).collect()))
    });
    engine.register_fn("finding", |kind: &str| -> RhaiResult<Dynamic> {
        let kind = kind_checked(kind)?;
        with_frame(|f| {
            Ok(f.view
                .findings_of(kind)
                .next()
                .map_or(Dynamic::UNIT, |x| x.value.clone()))
        })
    });
}

fn register_pod_helpers(engine: &mut Engine) {
    engine.register_fn("pods_not_ready_on_update", || -> RhaiResult<Array> {
        with_frame(|f| Ok(pod_values(f.view.not_ready_on_update())))
    });
    engine.register_fn("pod_failures_on_update", || -> RhaiResult<Array> {
        with_frame(|f| {
            Ok(f.view
                .failures_on_update()
                .map(|x| x.value.clone())
                .collect())
        })
    });
    engine.register_fn("migration_pods", || -> RhaiResult<Array> {
        with_frame(|f| Ok(pod_values(f.view.migration_pods())))
    });
    engine.register_fn("causes", || -> RhaiResult<Array> {
        with_frame(|f| Ok(f.view.causes().map(|x| str_value(&x.summary)).collect()))
    });
    engine.register_fn("template_changed", |fragment: &str| -> RhaiResult<bool> {
        with_frame(|f| Ok(f.view.changed_paths.iter().any(|p| p.contains(fragment))))
    });
    engine.register_fn("on_update_revision", |names: Dynamic| -> RhaiResult<bool> {
        let names = names_of("on_update_revision", &names)?;
        with_frame(|f| {
            Ok(!names.is_empty()
                && names.iter().all(|n| {
                    f.view.pod(n).is_some_and(|p| {
                        p.revision.is_some() && p.revision == f.view.update_revision
                    })
                }))
        })
    });
}

fn register_revision_helpers(engine: &mut Engine) {
    engine.register_fn("pods_stuck_after_rollback", || -> RhaiResult<Array> {
        with_frame(|f| Ok(pod_values(f.view.stuck_after_rollback().into_iter())))
    });
    engine.register_fn("last_good_revision", || -> RhaiResult<Dynamic> {
        with_frame(|f| {
            Ok(f.view
                .last_good_revision()
                .map_or(Dynamic::UNIT, |r| r.to_dynamic()))
        })
    });
    engine.register_fn("update_revision", || -> RhaiResult<Dynamic> {
        with_frame(|f| {
            Ok(f.view
                .update_revision
                .as_deref()
                .and_then(|u| f.view.revision_by_name(u))
                .map_or(Dynamic::UNIT, |r| r.to_dynamic()))
        })
    });
    engine.register_fn("revision", |n: INT| -> RhaiResult<Dynamic> {
        with_frame(|f| {
            Ok(f.view
                .revision_by_number(n)
                .map_or(Dynamic::UNIT, |r| r.to_dynamic()))
        })
    });
    engine.register_fn("revision", |name: &str| -> RhaiResult<Dynamic> {
        with_frame(|f| {
            Ok(f.view
                .revision_by_name(name)
                .map_or(Dynamic::UNIT, |r| r.to_dynamic()))
        })
    });
}

fn register_value_helpers(engine: &mut Engine) {
    engine.register_fn("spec", || -> RhaiResult<Dynamic> {
        with_frame(|f| Ok(super::view::from_json(f.view.spec_json())))
    });
    engine.register_fn("seconds_since", |time: &str| -> RhaiResult<INT> {
        let t: jiff::Timestamp = time.parse().or_else(|e| {
            ApiError::raise(format!(
                "seconds_since: {time:?} is not an RFC 3339 time: {e}"
            ))
        })?;
        with_frame(|f| Ok(f.view.now.as_second() - t.as_second()))
    });
    engine.register_fn("duration", |text: &str| -> RhaiResult<INT> {
        text.parse::<Span>()
            .map(|s| s.as_secs() as INT)
            .or_else(|e| ApiError::raise(format!("duration: {e}")))
    });
    engine.register_fn("quantity", |text: &str| -> Dynamic {
        crate::quantity::parse(text).map_or(Dynamic::UNIT, |q| Dynamic::from_float(q as FLOAT))
    });
    engine.register_fn("kinds", || -> RhaiResult<Array> {
        with_frame(|f| {
            Ok(f.view
                .kinds()
                .into_iter()
                .map(|k| Dynamic::from(ImmutableString::from(k)))
                .collect())
        })
    });
}
