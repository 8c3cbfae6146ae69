//! Checking a Service before the kernel stores it: is the graph something a process can run?
//!
//! A service is *prepared* the way a DataItem is: its name is derived from `label.zh` when
//! absent, then every problem is collected (not just the first) and located by a JSON pointer
//! into the document the analyst posted (`/steps/3/service`, `/transitions/1/condition`), so a
//! designer can highlight each one. The checks are structural (steps and transitions agree,
//! every step is reachable, gateways are well formed), textual (Rhai conditions parse, ISO 8601
//! durations parse) and referential (the subject DataItem and called services exist).
//!
//! This module must never run a script or touch storage: conditions are only parsed, and what
//! exists outside the service is asked of the caller (`catalog`, and the [`Directory`] of
//! roles, skills, departments, users, resource types, calendars, services and signals):
//! every name a service uses is looked up there, and an unknown one is refused at its
//! pointer with "did you mean" for a slip, so that nothing published waits forever for an
//! operator nobody is. The record fields its conditions read (`record.yue`) are checked
//! against the subject DataItem the same way.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::catalog::Catalog;
use crate::directory::{Directory, Kind};
use crate::error::{DesignError, Issue};
pub use crate::expression::{
    DISABLED_SYMBOLS, MAX_EXPR_DEPTH, MAX_FN_EXPR_DEPTH, parse_iso_duration, parsing_engine,
};
use crate::expression::{Record, check_condition, check_expression, condition_engine};
use crate::naming::{MAX_IDENTIFIER_LEN, derive_identifier, is_identifier};
use crate::service::{OperatorPolicy, OperatorRule, Service, Step, StepKind};
use crate::shape::{Reading, Shape, stand_in_label};

/// Derives the service's name when absent and checks the whole definition.
///
/// `catalog` is the active DataItems (for `subject`); `directory` says which roles, skills,
/// users, resource types, calendars, services and signals exist, so that this pure
/// function need not know where they are stored. Returns the service as it will be stored (name filled in), or
/// [`DesignError::InvalidDefinition`] listing every problem at its JSON pointer.
pub fn prepare_service(
    input: Service,
    catalog: &Catalog,
    directory: &Directory,
) -> Result<Service, DesignError> {
    prepare(input, catalog, directory, &Unread::default())
}

/// Reads a service from JSON as far as it can be read (see [`crate::shape`]): each step, each
/// step's instructions and each transition on its own, every shape problem at its pointer.
pub fn read_service(json: &serde_json::Value) -> Reading<Service> {
    let mut shape = Shape::new();
    let mut top = json.clone();
    let steps: Vec<Step> = shape.take_list(&mut top, "steps", "/steps", read_step);
    let transitions = shape.take_list(&mut top, "transitions", "/transitions", |s, v, at| {
        s.read(v, at, &[])
    });
    let stand_ins = [
        ("label", stand_in_label()),
        ("steps", serde_json::json!([])),
    ];
    let value = shape
        .read::<Service>(&top, "", &stand_ins)
        .map(|mut service| {
            service.steps = steps;
            service.transitions = transitions;
            service
        });
    Reading { value, shape }
}

/// Reads one step, its instructions one by one.
fn read_step(shape: &mut Shape, json: &serde_json::Value, at: &str) -> Option<Step> {
    let mut step = json.clone();
    let instructions = shape.take_list(
        &mut step,
        "instructions",
        &format!("{at}/instructions"),
        |s, v, at| s.read(v, at, &[]),
    );
    shape.read::<Step>(&step, at, &[]).map(|mut step| {
        step.instructions = instructions;
        step
    })
}

/// [`prepare_service`] over a service read from `body`: every shape problem and every
/// problem of the checks over what could be read, in one answer. Checks that need what could
/// not be read wait for it: the graph (reachability, gateways, the end step) when a step or
/// a transition could not be read whole, a step's field access when the subject could not.
pub fn prepare_service_reading(
    reading: Reading<Service>,
    body: &serde_json::Value,
    catalog: &Catalog,
    directory: &Directory,
) -> Result<Service, DesignError> {
    reading.check(body, |service, shape| {
        let unread = Unread {
            steps: shape
                .unread("/steps")
                .into_iter()
                .filter_map(|i| body["steps"][i]["name"].as_str())
                .map(str::to_owned)
                .collect(),
            graph: !shape.list_whole("/steps") || !shape.whole_under("/transitions"),
            subject: shape.set_aside_at("/subject"),
        };
        prepare(service, catalog, directory, &unread)
    })
}

/// What of a service could not be read, so that the checks depending on it wait for it
/// rather than report what is only a consequence (a transition "to no step" whose step
/// had a misspelled kind).
#[derive(Debug, Default)]
struct Unread {
    /// The names of the steps that could not be read.
    steps: BTreeSet<String>,
    /// Whether some step or transition could not be read whole.
    graph: bool,
    /// Whether the subject could not be read.
    subject: bool,
}

/// [`prepare_service`]'s checks, leaving out those that depend on what could not be read.
fn prepare(
    mut input: Service,
    catalog: &Catalog,
    directory: &Directory,
    unread: &Unread,
) -> Result<Service, DesignError> {
    let mut issues = Vec::new();
    if input.label.zh.trim().is_empty() {
        issues.push(Issue::new("/label/zh", "a Chinese label is required"));
    }
    if input.name.is_empty() {
        input.name = derive_identifier(&input.label.zh);
    } else if !is_identifier(&input.name) {
        issues.push(Issue::new("/name", identifier_rule(&input.name)));
    }
    if let Some(subject) = &input.subject
        && catalog.get(subject).is_none()
    {
        issues.push(Issue::new(
            "/subject",
            format!("no DataItem named '{subject}'"),
        ));
    }
    if let Some(serial) = &input.serial {
        issues.extend(serial.problems("/serial"));
    }
    // The service may name itself (a rule instruction starting another of its processes)
    // and signal its own wait steps.
    let mut directory = directory.clone();
    directory.add_service(&input.name, input.subject.as_deref());
    directory.also(Kind::Signal, own_signals(&input));
    let directory = &directory;
    for u in input.uses() {
        directory.check(u.kind, &u.name, u.at, &mut issues);
    }
    // What the record its conditions read carries; None when there is no subject to check
    // against (no subject, an unknown one, or one that could not be read).
    let record = input
        .subject
        .as_deref()
        .filter(|s| !unread.subject && catalog.get(s).is_some())
        .map(|s| (s.to_owned(), catalog.record_keys(s)));
    let record = record.as_ref().map(|(item, keys)| Record { item, keys });
    if input.steps.is_empty() && !unread.graph {
        issues.push(Issue::new("/steps", "a service needs at least one step"));
    }
    let engine = condition_engine();
    let index = check_step_names(&input, &mut issues);
    for (i, step) in input.steps.iter().enumerate() {
        check_step(&input.name, step, i, &engine, record, &mut issues);
        // An unreadable subject leaves the fields nothing to be checked against.
        let subject = (!unread.subject).then_some(input.subject.as_deref());
        check_human_step(step, i, subject, catalog, &mut issues);
    }
    check_columns(&input, catalog, unread.subject, &mut issues);
    if let Some(expression) = &input.may_start {
        check_expression(&engine, expression, "/may_start".to_owned(), &mut issues);
    }
    if !unread.graph
        && !input.steps.is_empty()
        && !input.steps.iter().any(|s| s.kind == StepKind::End)
    {
        issues.push(Issue::new(
            "/steps",
            "a service needs an 'end' step, where its processes complete",
        ));
    }
    for (i, step) in input.steps.iter().enumerate() {
        check_step_instructions(step, i, catalog, directory, record, &mut issues);
        check_escalation(&input, step, i, unread.graph, &mut issues);
    }
    let edges = check_transitions(&input, &index, &engine, &unread.steps, record, &mut issues);
    if !unread.graph {
        check_graph(&input, &index, &edges, &mut issues);
    }
    if issues.is_empty() {
        Ok(input)
    } else {
        Err(DesignError::InvalidDefinition(issues))
    }
}

fn identifier_rule(name: &str) -> String {
    format!(
        "'{name}' is not a valid identifier: use lowercase letters, digits and single underscores, \
         start with a letter, at most {MAX_IDENTIFIER_LEN} characters"
    )
}

/// The signals a service's own wait steps wait for.
fn own_signals(service: &Service) -> Vec<String> {
    service
        .steps
        .iter()
        .filter_map(|s| s.wait.as_ref()?.event.clone())
        .collect()
}

/// Refuses invalid and duplicate step names; returns each name's index (the first step of a
/// duplicated name wins). Invalid names are indexed too, so that the transitions using them
/// are not also reported as naming no step: the name's own issue says what to fix.
fn check_step_names<'a>(service: &'a Service, issues: &mut Vec<Issue>) -> BTreeMap<&'a str, usize> {
    let mut index = BTreeMap::new();
    for (i, step) in service.steps.iter().enumerate() {
        let path = format!("/steps/{i}/name");
        if index.contains_key(step.name.as_str()) {
            issues.push(Issue::new(
                path,
                format!("duplicate step name '{}'", step.name),
            ));
            continue;
        }
        if !is_identifier(&step.name) {
            issues.push(Issue::new(path, identifier_rule(&step.name)));
        }
        index.insert(step.name.as_str(), i);
    }
    index
}

/// Checks what a single step carries against its kind.
fn check_step(
    service_name: &str,
    step: &Step,
    i: usize,
    engine: &rhai::Engine,
    record: Option<Record<'_>>,
    issues: &mut Vec<Issue>,
) {
    let at = |key: &str| format!("/steps/{i}/{key}");
    let kind = kind_name(step.kind);

    if !step.kind.is_dispatched() {
        if !step.resources.is_empty() {
            issues.push(Issue::new(
                at("resources"),
                format!("resources apply to human and automatic steps, not {kind}"),
            ));
        }
        if step.operators.is_some() {
            issues.push(Issue::new(
                at("operators"),
                format!("operators apply to human and automatic steps, not {kind}"),
            ));
        }
    }
    if step.booked && step.kind != StepKind::Human {
        issues.push(Issue::new(
            at("booked"),
            format!(
                "booked applies to human steps (the booked practitioner does them), not {kind}"
            ),
        ));
    }
    if step.returns && matches!(step.kind, StepKind::End | StepKind::Join) {
        issues.push(Issue::new(
            at("returns"),
            format!(
                "returns applies to the steps a process carries on after returning; {kind} is not one (an end returns anyway)"
            ),
        ));
    }
    for (k, resource) in step.resources.iter().enumerate() {
        if resource.quantity == 0 {
            issues.push(Issue::new(
                at(&format!("resources/{k}/quantity")),
                format!(
                    "the quantity of '{}' must be at least 1",
                    resource.resource_type
                ),
            ));
        }
    }
    if step.requires.len() > crate::service::MAX_REQUIREMENTS {
        issues.push(Issue::new(
            at("requires"),
            format!(
                "at most {} requirements a step",
                crate::service::MAX_REQUIREMENTS
            ),
        ));
    }
    for (k, requirement) in step.requires.iter().enumerate() {
        let here = at(&format!("requires/{k}/condition"));
        if !matches!(step.kind, StepKind::Human | StepKind::Automatic) {
            issues.push(Issue::new(
                here,
                format!("requires applies to human and automatic steps (those that start work), not {kind}"),
            ));
        } else {
            check_condition(engine, &requirement.condition, here, record, issues);
        }
    }
    if let Some(expression) = step.operators.as_ref().and_then(|o| o.expression.as_ref()) {
        check_condition(
            engine,
            expression,
            at("operators/expression"),
            record,
            issues,
        );
    }
    if let Some(deadline) = &step.deadline
        && parse_iso_duration(deadline).is_none()
    {
        issues.push(Issue::new(at("deadline"), duration_rule(deadline)));
    }
    match (step.kind, &step.service) {
        (StepKind::SubService, None) => issues.push(Issue::new(
            at("service"),
            "a sub_service step must name the service it starts",
        )),
        (StepKind::SubService, Some(called)) if called == service_name => issues.push(Issue::new(
            at("service"),
            format!("a service cannot call itself ('{called}') as a sub-service"),
        )),
        // Whether it exists is checked with every other name the service uses.
        (StepKind::SubService, Some(_)) => {}
        (_, Some(_)) => issues.push(Issue::new(
            at("service"),
            format!("service applies to sub_service steps, not {kind}"),
        )),
        (_, None) => {}
    }
    check_call(step, i, engine, record, issues);
    match (step.kind, &step.wait) {
        (StepKind::Wait, None) => issues.push(Issue::new(
            at("wait"),
            "a wait step must say what it waits for (event, after or until)",
        )),
        (StepKind::Wait, Some(wait)) => {
            if wait.event.is_none() && wait.after.is_none() && wait.until.is_none() {
                issues.push(Issue::new(
                    at("wait"),
                    "a wait step must say what it waits for (event, after or until)",
                ));
            }
            if let Some(event) = &wait.event
                && event.trim().is_empty()
            {
                issues.push(Issue::new(at("wait/event"), "the event name is empty"));
            }
            if let Some(after) = &wait.after
                && parse_iso_duration(after).is_none()
            {
                issues.push(Issue::new(at("wait/after"), duration_rule(after)));
            }
            if let Some(until) = &wait.until {
                check_condition(engine, until, at("wait/until"), record, issues);
            }
        }
        (_, Some(_)) => issues.push(Issue::new(
            at("wait"),
            format!("wait applies to wait steps, not {kind}"),
        )),
        (_, None) => {}
    }
}

/// A work-order view's columns: fields of the subject, each once.
fn check_columns(
    service: &Service,
    catalog: &Catalog,
    subject_unread: bool,
    issues: &mut Vec<Issue>,
) {
    if service.columns.is_empty() || subject_unread {
        return;
    }
    let Some(item) = service
        .subject
        .as_deref()
        .filter(|s| catalog.get(s).is_some())
    else {
        issues.push(Issue::new(
            "/columns",
            "work-order columns are fields of the service's subject DataItem: name one",
        ));
        return;
    };
    let keys = catalog.record_keys(item);
    let mut seen = BTreeSet::new();
    for (i, column) in service.columns.iter().enumerate() {
        if !keys.contains(column) {
            issues.push(Issue::new(
                format!("/columns/{i}"),
                crate::directory::unknown(&format!("field of '{item}'"), column, &keys),
            ));
        } else if !seen.insert(column) {
            issues.push(Issue::new(
                format!("/columns/{i}"),
                format!("'{column}' is listed twice"),
            ));
        }
    }
}

/// What a sub-service call gives back and how it iterates: only on `sub_service` steps;
/// output names are identifiers; an iteration is over a list or N times (not both, not
/// neither), its expressions parse.
fn check_call(
    step: &Step,
    i: usize,
    engine: &rhai::Engine,
    record: Option<Record<'_>>,
    issues: &mut Vec<Issue>,
) {
    let at = |key: &str| format!("/steps/{i}/{key}");
    let call = step.kind == StepKind::SubService;
    if !call && !step.outputs.is_empty() {
        issues.push(Issue::new(
            at("outputs"),
            "outputs apply to sub_service steps",
        ));
    }
    if !call && step.iterate.is_some() {
        issues.push(Issue::new(
            at("iterate"),
            "iterate applies to sub_service steps",
        ));
    }
    for (to, from) in &step.outputs {
        for (name, what) in [(to, "the caller's"), (from, "the child's")] {
            if !is_identifier(name) {
                issues.push(Issue::new(
                    at(&format!("outputs/{to}")),
                    format!("'{name}' is not an identifier ({what} context variable)"),
                ));
            }
        }
    }
    let Some(it) = &step.iterate else { return };
    match (&it.over, it.times) {
        (Some(_), Some(_)) | (None, None) => issues.push(Issue::new(
            at("iterate"),
            "say what to iterate: 'over' a list or a number of 'times' (one of them)",
        )),
        (Some(over), None) => check_condition(engine, over, at("iterate/over"), record, issues),
        (None, Some(n)) if n == 0 || n > crate::service::MAX_ITERATIONS => issues.push(Issue::new(
            at("iterate/times"),
            format!("1 to {} times", crate::service::MAX_ITERATIONS),
        )),
        (None, Some(_)) => {}
    }
    if let Some(done) = &it.complete_when {
        check_condition(engine, done, at("iterate/complete_when"), record, issues);
    }
    if let Some(bind) = &it.bind
        && (!is_identifier(bind) || bind == "index")
    {
        issues.push(Issue::new(
            at("iterate/as"),
            format!("'{bind}' is not an identifier other than 'index'"),
        ));
    }
}

/// What only a human step carries: per-field access (fields of the subject), notices, and
/// how a committee decides. `subject` is None when the service's subject could not be read
/// (the fields are then not checked against it).
fn check_human_step(
    step: &Step,
    i: usize,
    subject: Option<Option<&str>>,
    catalog: &Catalog,
    issues: &mut Vec<Issue>,
) {
    let at = |key: &str| format!("/steps/{i}/{key}");
    let human = step.kind == StepKind::Human;
    if !human && !step.fields.is_empty() {
        issues.push(Issue::new(at("fields"), "fields apply to human steps"));
    }
    if !human && step.notify.is_some() {
        issues.push(Issue::new(at("notify"), "notify applies to human steps"));
    }
    if let Some(subject) = subject
        && !step.fields.is_empty()
    {
        match subject.filter(|s| catalog.get(s).is_some()) {
            None => issues.push(Issue::new(
                at("fields"),
                "per-field access needs the service's subject DataItem",
            )),
            Some(name) => {
                let known = catalog.effective_fields(name);
                for field in step.fields.keys() {
                    if !known.iter().any(|f| f.field.name == *field) {
                        issues.push(Issue::new(
                            at(&format!("fields/{field}")),
                            format!("'{name}' has no field '{field}'"),
                        ));
                    }
                }
            }
        }
    }
    if let Some(rule) = &step.operators {
        check_operator_names(rule, i, subject, catalog, issues);
        match (rule.policy, rule.quorum) {
            (OperatorPolicy::All, Some(0)) => {
                issues.push(Issue::new(at("operators/quorum"), "a quorum is at least 1"))
            }
            (OperatorPolicy::All, _) | (_, None) => {}
            (_, Some(_)) => issues.push(Issue::new(
                at("operators/quorum"),
                "a quorum applies to the policy 'all'",
            )),
        }
        if rule.policy == OperatorPolicy::Claim && !human {
            issues.push(Issue::new(
                at("operators/policy"),
                "only a human step can be claimed",
            ));
        }
    }
}

/// The field an operator rule picks people by must be a field of the subject.
fn check_operator_names(
    rule: &OperatorRule,
    i: usize,
    subject: Option<Option<&str>>,
    catalog: &Catalog,
    issues: &mut Vec<Issue>,
) {
    let at = |key: &str| format!("/steps/{i}/operators/{key}");
    if let (Some(field), Some(subject)) = (&rule.field, subject) {
        match subject.filter(|s| catalog.get(s).is_some()) {
            None => issues.push(Issue::new(
                at("field"),
                "picking the operator by a field needs the service's subject DataItem",
            )),
            Some(item) => {
                let keys = catalog.record_keys(item);
                if !keys.contains(field) {
                    issues.push(Issue::new(
                        at("field"),
                        crate::directory::unknown(&format!("field of '{item}'"), field, &keys),
                    ));
                }
            }
        }
    }
}

/// A step's instructions: parsed and checked like a rule's. An automatic step runs them
/// when it is dispatched; a human step when a handling that is not a rejection leaves it
/// (in the handling's transaction: the clinic's payment step charges so), so a step whose
/// handlings decide it only together (a committee, policy `all`) cannot carry them.
fn check_step_instructions(
    step: &Step,
    i: usize,
    catalog: &Catalog,
    directory: &Directory,
    record: Option<Record<'_>>,
    issues: &mut Vec<Issue>,
) {
    if step.instructions.is_empty() {
        return;
    }
    let base = format!("/steps/{i}/instructions");
    let committee = step
        .operators
        .as_ref()
        .is_some_and(|o| o.policy == OperatorPolicy::All);
    match step.kind {
        StepKind::Automatic => {}
        StepKind::Human if !committee => {}
        StepKind::Human => {
            issues.push(Issue::new(
                base,
                "a committee's handlings (policy 'all') do not leave the step one by one: put the instructions on an automatic step after it",
            ));
            return;
        }
        kind => {
            issues.push(Issue::new(
                base,
                format!(
                    "instructions apply to automatic and human steps, not {}",
                    kind_name(kind)
                ),
            ));
            return;
        }
    }
    crate::rule::check_instructions(
        &step.instructions,
        &base,
        catalog,
        directory,
        record,
        issues,
    );
}

/// A step's escalation: it needs a deadline, its durations must parse and its transition
/// must leave this step (checked only when every transition could be read: `graph_unread`).
fn check_escalation(
    service: &Service,
    step: &Step,
    i: usize,
    graph_unread: bool,
    issues: &mut Vec<Issue>,
) {
    let Some(e) = &step.escalation else {
        return;
    };
    let at = |key: &str| format!("/steps/{i}/escalation/{key}");
    if step.deadline.is_none() {
        issues.push(Issue::new(
            format!("/steps/{i}/escalation"),
            "an escalation needs the step's 'deadline'",
        ));
    }
    if let Some(w) = &e.warn_before
        && parse_iso_duration(w).is_none()
    {
        issues.push(Issue::new(at("warn_before"), duration_rule(w)));
    }
    if let Some(t) = &e.transition
        && !graph_unread
        && !service
            .transitions
            .iter()
            .any(|tr| tr.from == step.name && tr.key() == t)
    {
        issues.push(Issue::new(
            at("transition"),
            format!("no transition named '{t}' leaves step '{}'", step.name),
        ));
    }
    if let Some(p) = e.raise_priority
        && !(0..=100).contains(&p)
    {
        issues.push(Issue::new(at("raise_priority"), "a priority is 0 to 100"));
    }
}

fn duration_rule(value: &str) -> String {
    format!(
        "'{value}' is not an ISO 8601 duration of days, hours, minutes and seconds \
         (PT30M, PT2H, P7D, P1DT2H30M)"
    )
}

/// The kind as analysts write it in JSON.
fn kind_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Human => "human",
        StepKind::Automatic => "automatic",
        StepKind::Wait => "wait",
        StepKind::SubService => "sub_service",
        StepKind::Exclusive => "exclusive",
        StepKind::Parallel => "parallel",
        StepKind::Join => "join",
        StepKind::End => "end",
    }
}

/// A transition whose two ends name steps: (from step, to step), as step indexes.
type Edge = (usize, usize);

/// Checks each transition on its own and against its siblings; returns the ones whose ends
/// both name steps, for the graph checks. A name in `unread_steps` is a step that could not
/// be read: naming it is not naming "no step".
fn check_transitions(
    service: &Service,
    index: &BTreeMap<&str, usize>,
    engine: &rhai::Engine,
    unread_steps: &BTreeSet<String>,
    record: Option<Record<'_>>,
    issues: &mut Vec<Issue>,
) -> Vec<Edge> {
    let mut edges = Vec::new();
    let mut keys: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (j, t) in service.transitions.iter().enumerate() {
        let at = |key: &str| format!("/transitions/{j}/{key}");
        let from = index.get(t.from.as_str()).copied();
        let to = index.get(t.to.as_str()).copied();
        if from.is_none() && !unread_steps.contains(&t.from) {
            issues.push(Issue::new(
                at("from"),
                format!("no step named '{}'", t.from),
            ));
        }
        if to.is_none() && !unread_steps.contains(&t.to) {
            issues.push(Issue::new(at("to"), format!("no step named '{}'", t.to)));
        }
        if let Some(condition) = &t.condition {
            check_condition(engine, condition, at("condition"), record, issues);
        }
        if !keys.insert((t.from.as_str(), t.key())) {
            issues.push(Issue::new(
                at("name"),
                format!(
                    "another transition from '{}' is already chosen by '{}': give this one a distinct name",
                    t.from,
                    t.key()
                ),
            ));
        }
        let Some(from) = from else { continue };
        let source = &service.steps[from];
        if source.kind == StepKind::End {
            issues.push(Issue::new(
                at("from"),
                format!(
                    "'{}' is an end step: no transition can leave it",
                    source.name
                ),
            ));
        }
        if t.default && source.kind != StepKind::Exclusive {
            issues.push(Issue::new(
                at("default"),
                format!(
                    "default applies to transitions leaving an exclusive gateway, and '{}' is {}",
                    source.name,
                    kind_name(source.kind)
                ),
            ));
        }
        if let Some(to) = to {
            edges.push((from, to));
        }
    }
    edges
}

/// Checks the shape of the graph: reachability, dead ends, gateways' fan-in and fan-out.
fn check_graph(
    service: &Service,
    index: &BTreeMap<&str, usize>,
    edges: &[Edge],
    issues: &mut Vec<Issue>,
) {
    let n = service.steps.len();
    let mut outgoing: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut incoming = vec![0usize; n];
    // Outgoing transitions are counted by name so that a transition whose target is
    // misspelled still counts as leaving its step (its own issue says what is wrong).
    let mut leaving = vec![Vec::new(); n];
    for (j, t) in service.transitions.iter().enumerate() {
        if let Some(&from) = index.get(t.from.as_str()) {
            leaving[from].push(j);
        }
    }
    for &(from, to) in edges {
        outgoing[from].push(to);
        incoming[to] += 1;
    }
    let reachable = reach(
        n,
        |u| outgoing[u].clone(),
        [0].into_iter().filter(|_| n > 0),
    );
    for (i, step) in service.steps.iter().enumerate() {
        if index.get(step.name.as_str()) != Some(&i) {
            continue; // a duplicate name, already refused
        }
        let at = format!("/steps/{i}");
        let fan_out = leaving[i].len();
        if !reachable[i] {
            issues.push(Issue::new(
                at.clone(),
                format!(
                    "step '{}' cannot be reached from the first step '{}'",
                    step.name, service.steps[0].name
                ),
            ));
        }
        if step.kind != StepKind::End && fan_out == 0 {
            issues.push(Issue::new(
                at.clone(),
                format!(
                    "step '{}' has no outgoing transition: only an end step may stop a process",
                    step.name
                ),
            ));
        }
        match step.kind {
            StepKind::Exclusive => check_exclusive(service, step, &at, &leaving[i], issues),
            StepKind::Parallel if fan_out < 2 => issues.push(Issue::new(
                at,
                format!(
                    "parallel split '{}' needs at least 2 outgoing transitions, it has {fan_out}",
                    step.name
                ),
            )),
            StepKind::Join if incoming[i] < 2 => issues.push(Issue::new(
                at,
                format!(
                    "join '{}' needs at least 2 incoming transitions, it has {}",
                    step.name, incoming[i]
                ),
            )),
            _ => {}
        }
    }
    check_end_reachable(service, index, edges, &reachable, &leaving, issues);
}

/// An exclusive gateway picks one of at least two ways: the conditional ones in order, and
/// exactly one default for when no condition holds.
fn check_exclusive(
    service: &Service,
    step: &Step,
    at: &str,
    leaving: &[usize],
    issues: &mut Vec<Issue>,
) {
    if leaving.len() < 2 {
        issues.push(Issue::new(
            at,
            format!(
                "exclusive gateway '{}' needs at least 2 outgoing transitions, it has {}",
                step.name,
                leaving.len()
            ),
        ));
    }
    let defaults: Vec<usize> = leaving
        .iter()
        .copied()
        .filter(|&j| service.transitions[j].default)
        .collect();
    if defaults.is_empty() && !leaving.is_empty() {
        issues.push(Issue::new(
            at,
            format!(
                "exclusive gateway '{}' needs one outgoing transition marked default, taken when no condition holds",
                step.name
            ),
        ));
    }
    for &j in defaults.iter().skip(1) {
        issues.push(Issue::new(
            format!("/transitions/{j}/default"),
            format!(
                "exclusive gateway '{}' already has a default transition (to '{}')",
                step.name,
                defaults
                    .first()
                    .map(|&d| service.transitions[d].to.as_str())
                    .unwrap_or_default()
            ),
        ));
    }
    for &j in leaving {
        let t = &service.transitions[j];
        if !t.default && t.condition.is_none() {
            issues.push(Issue::new(
                format!("/transitions/{j}/condition"),
                format!(
                    "a transition leaving exclusive gateway '{}' needs a condition (or default: true)",
                    step.name
                ),
            ));
        }
    }
}

/// A reachable step from which no end step can be reached traps its processes forever.
/// Reported only when no dead end (a step without outgoing transitions) explains it already.
fn check_end_reachable(
    service: &Service,
    index: &BTreeMap<&str, usize>,
    edges: &[Edge],
    reachable: &[bool],
    leaving: &[Vec<usize>],
    issues: &mut Vec<Issue>,
) {
    let n = service.steps.len();
    let dead_end = service
        .steps
        .iter()
        .enumerate()
        .any(|(i, s)| s.kind != StepKind::End && leaving[i].is_empty());
    if dead_end || !service.steps.iter().any(|s| s.kind == StepKind::End) {
        return;
    }
    let mut predecessors: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(from, to) in edges {
        predecessors[to].push(from);
    }
    let ends = (0..n).filter(|&i| service.steps[i].kind == StepKind::End);
    let finishing = reach(n, |u| predecessors[u].clone(), ends);
    for (i, step) in service.steps.iter().enumerate() {
        if reachable[i] && !finishing[i] && index.get(step.name.as_str()) == Some(&i) {
            issues.push(Issue::new(
                format!("/steps/{i}"),
                format!(
                    "no end step can be reached from step '{}': its processes could never complete",
                    step.name
                ),
            ));
        }
    }
}

/// Which of `n` nodes can be reached from `roots` following `next`.
fn reach(
    n: usize,
    next: impl Fn(usize) -> Vec<usize>,
    roots: impl IntoIterator<Item = usize>,
) -> Vec<bool> {
    let mut seen = vec![false; n];
    let mut queue: VecDeque<usize> = VecDeque::new();
    for r in roots {
        if r < n && !seen[r] {
            seen[r] = true;
            queue.push_back(r);
        }
    }
    while let Some(u) = queue.pop_front() {
        for v in next(u) {
            if v < n && !seen[v] {
                seen[v] = true;
                queue.push_back(v);
            }
        }
    }
    seen
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    use crate::service::fixtures::clinic_json as clinic;

    /// Only the consultation service is known; other kinds are not checked here (the
    /// kernel's tests check them against a real organisation).
    fn known() -> Directory {
        Directory::unchecked().with(Kind::Service, ["consultation".to_owned()])
    }

    fn catalog() -> Catalog {
        let item = crate::parse_data_item(&json!({
            "name": "appointment", "label": {"zh": "预约"},
            "fields": [{"name": "first_visit", "label": {"zh": "初诊"}, "type": "boolean"}]
        }))
        .unwrap();
        Catalog::from_items([item])
    }

    fn prepare(doc: Json) -> Result<Service, DesignError> {
        let service: Service = serde_json::from_value(doc).unwrap();
        prepare_service(service, &catalog(), &known())
    }

    fn issues(doc: Json) -> Vec<Issue> {
        match prepare(doc) {
            Err(DesignError::InvalidDefinition(issues)) => issues,
            other => panic!("expected the service to be refused, got {other:?}"),
        }
    }

    /// Asserts the service is refused with an issue at `path` (and returns its message).
    fn refused_at(doc: Json, path: &str) -> String {
        let found = issues(doc);
        found
            .iter()
            .find(|i| i.path == path)
            .map(|i| i.message.clone())
            .unwrap_or_else(|| panic!("no issue at {path}: {found:?}"))
    }

    /// The clinic service with `f` applied to its JSON.
    fn clinic_with(f: impl FnOnce(&mut Json)) -> Json {
        let mut doc = clinic();
        f(&mut doc);
        doc
    }

    #[test]
    fn human_task_settings_are_checked_where_they_apply() {
        // Fields must exist on the subject; only human steps carry fields and notices.
        let doc = clinic_with(|d| {
            d["steps"][0]["fields"] = json!({"riqi": "required"});
            d["steps"][4]["notify"] = json!({"todo": {"title": "x"}});
            d["steps"][3]["operators"]["quorum"] = json!(2);
            d["may_start"] = json!("started.this_month <");
        });
        assert!(refused_at(doc.clone(), "/steps/0/fields/riqi").contains("no field 'riqi'"));
        assert!(refused_at(doc.clone(), "/steps/4/notify").contains("human steps"));
        assert!(refused_at(doc.clone(), "/steps/3/operators/quorum").contains("'all'"));
        refused_at(doc, "/may_start");
        let doc = clinic_with(|d| {
            d["steps"][0]["operators"] =
                json!({"role": "front_desk", "policy": "all", "quorum": 0});
        });
        refused_at(doc, "/steps/0/operators/quorum");
        // A committee, a claim pool and a start limit as the leave request uses them.
        let fine = clinic_with(|d| {
            d["steps"][0]["operators"] = json!({"role": "front_desk", "policy": "claim"});
            d["steps"][3]["operators"] = json!({"role": "doctor", "policy": "all", "quorum": 2});
            d["may_start"] = json!("started.this_month < 2 && user.roles.contains(\"nurse\")");
        });
        assert!(prepare(fine).is_ok());
    }

    #[test]
    fn a_human_step_may_carry_instructions_but_not_a_committee_or_a_gateway() {
        // The payment step charges when the front desk handles it.
        let charge = json!([{"op": "charge", "charge_type": "context.charge_type"}]);
        let doc = clinic_with(|d| d["steps"][0]["instructions"] = charge.clone());
        assert!(prepare(doc).is_ok());
        let doc = clinic_with(|d| {
            d["steps"][0]["instructions"] = charge.clone();
            d["steps"][0]["operators"]["policy"] = json!("all");
        });
        assert!(refused_at(doc, "/steps/0/instructions").contains("committee"));
        let doc = clinic_with(|d| d["steps"][1]["instructions"] = charge.clone());
        assert!(refused_at(doc, "/steps/1/instructions").contains("not exclusive"));
        // Its expressions are checked as a rule's are.
        let doc = clinic_with(|d| {
            d["steps"][0]["instructions"] = json!([{"op": "charge", "account": "context.("}]);
        });
        refused_at(doc, "/steps/0/instructions/0/account");
    }

    #[test]
    fn the_clinic_service_is_accepted_as_is() {
        let prepared = prepare(clinic()).unwrap();
        assert_eq!(prepared.name, "treatment_visit");
        assert_eq!(prepared.steps.len(), 6);
    }

    #[test]
    fn a_missing_name_is_derived_from_the_chinese_label() {
        let doc = clinic_with(|d| {
            d.as_object_mut().unwrap().remove("name");
        });
        assert_eq!(prepare(doc).unwrap().name, "zhiliaojiuzhen");
    }

    #[test]
    fn an_invalid_name_is_refused() {
        refused_at(
            clinic_with(|d| d["name"] = json!("Treatment Visit")),
            "/name",
        );
    }

    #[test]
    fn an_empty_chinese_label_is_refused() {
        refused_at(clinic_with(|d| d["label"]["zh"] = json!(" ")), "/label/zh");
    }

    #[test]
    fn a_service_without_steps_is_refused() {
        let doc = clinic_with(|d| {
            d["steps"] = json!([]);
            d["transitions"] = json!([]);
        });
        let found = issues(doc);
        assert!(found.iter().any(|i| i.path == "/steps"), "{found:?}");
    }

    #[test]
    fn duplicate_and_invalid_step_names_are_refused() {
        let doc = clinic_with(|d| {
            d["steps"][2]["name"] = json!("checkin");
        });
        let found = issues(doc);
        assert!(
            found
                .iter()
                .any(|i| i.path == "/steps/2/name" && i.message.contains("duplicate")),
            "{found:?}"
        );
        // An invalid name is reported once, not again by every transition using it.
        let doc = clinic_with(|d| {
            d["steps"][3]["name"] = json!("Treat");
            d["transitions"][2]["to"] = json!("Treat");
            d["transitions"][3]["to"] = json!("Treat");
            d["transitions"][4]["from"] = json!("Treat");
        });
        let found = issues(doc);
        let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["/steps/3/name"]);
    }

    #[test]
    fn a_service_without_an_end_step_is_refused() {
        let doc = clinic_with(|d| {
            d["steps"][5] = json!({"name": "done", "kind": "automatic"});
            d["transitions"][5]["to"] = json!("done");
        });
        let message = refused_at(doc, "/steps");
        assert!(message.contains("end"), "{message}");
    }

    #[test]
    fn transitions_must_name_existing_steps() {
        let doc = clinic_with(|d| {
            d["transitions"][0]["from"] = json!("check_in");
            d["transitions"][4]["to"] = json!("billing");
        });
        let found = issues(doc);
        assert!(found.iter().any(|i| i.path == "/transitions/0/from"));
        assert!(found.iter().any(|i| i.path == "/transitions/4/to"));
    }

    #[test]
    fn unreachable_steps_are_refused_by_name() {
        let doc = clinic_with(|d| {
            d["steps"]
                .as_array_mut()
                .unwrap()
                .insert(5, json!({"name": "survey", "kind": "human"}));
            d["transitions"]
                .as_array_mut()
                .unwrap()
                .push(json!({"from": "survey", "to": "end"}));
        });
        let message = refused_at(doc, "/steps/5");
        assert!(message.contains("survey"), "{message}");
    }

    #[test]
    fn a_step_without_a_way_out_is_refused() {
        let doc = clinic_with(|d| {
            d["transitions"].as_array_mut().unwrap().remove(5);
        });
        let message = refused_at(doc, "/steps/4");
        assert!(message.contains("bill"), "{message}");
    }

    #[test]
    fn nothing_may_leave_an_end_step() {
        let doc = clinic_with(|d| {
            d["transitions"]
                .as_array_mut()
                .unwrap()
                .push(json!({"from": "end", "to": "checkin"}));
        });
        refused_at(doc, "/transitions/6/from");
    }

    #[test]
    fn an_exclusive_gateway_needs_two_ways_out() {
        let doc = clinic_with(|d| {
            let t = d["transitions"].as_array_mut().unwrap();
            t.remove(1);
            t.push(json!({"from": "checkin", "to": "consult"}));
        });
        let message = refused_at(doc, "/steps/1");
        assert!(message.contains("at least 2"), "{message}");
    }

    #[test]
    fn an_exclusive_gateway_needs_a_default() {
        let doc = clinic_with(|d| {
            d["transitions"][2] = json!({"from": "route", "to": "treat", "condition": "true"});
        });
        let message = refused_at(doc, "/steps/1");
        assert!(message.contains("default"), "{message}");
    }

    #[test]
    fn an_exclusive_gateway_has_only_one_default() {
        let doc = clinic_with(|d| {
            d["transitions"][1]["default"] = json!(true);
        });
        refused_at(doc, "/transitions/2/default");
    }

    #[test]
    fn a_conditional_way_out_of_an_exclusive_gateway_needs_a_condition() {
        let doc = clinic_with(|d| {
            d["transitions"][1]
                .as_object_mut()
                .unwrap()
                .remove("condition");
        });
        refused_at(doc, "/transitions/1/condition");
    }

    #[test]
    fn default_applies_only_to_exclusive_gateways() {
        let doc = clinic_with(|d| d["transitions"][0]["default"] = json!(true));
        refused_at(doc, "/transitions/0/default");
    }

    #[test]
    fn a_parallel_split_needs_two_branches() {
        let doc = clinic_with(|d| d["steps"][0]["kind"] = json!("parallel"));
        let found = issues(doc);
        assert!(
            found
                .iter()
                .any(|i| i.path == "/steps/0" && i.message.contains("parallel")),
            "{found:?}"
        );
        // The operator rule on a gateway is refused too.
        assert!(found.iter().any(|i| i.path == "/steps/0/operators"));
    }

    #[test]
    fn a_join_needs_two_incoming_branches() {
        let doc = clinic_with(|d| {
            d["steps"][4] = json!({"name": "bill", "kind": "join"});
        });
        let message = refused_at(doc, "/steps/4");
        assert!(message.contains("join"), "{message}");
    }

    #[test]
    fn parallel_split_and_join_are_accepted_when_well_formed() {
        let doc = json!({
            "label": {"zh": "术前准备"},
            "steps": [
                {"name": "split", "kind": "parallel"},
                {"name": "consent", "kind": "human"},
                {"name": "photos", "kind": "human"},
                {"name": "merge", "kind": "join"},
                {"name": "end", "kind": "end"}
            ],
            "transitions": [
                {"from": "split", "to": "consent"},
                {"from": "split", "to": "photos"},
                {"from": "consent", "to": "merge"},
                {"from": "photos", "to": "merge"},
                {"from": "merge", "to": "end"}
            ]
        });
        assert_eq!(prepare(doc).unwrap().name, "shuqianzhunbei");
    }

    #[test]
    fn a_condition_that_does_not_parse_is_refused_with_its_position() {
        let doc = clinic_with(|d| {
            d["transitions"][1]["condition"] = json!("record.first_visit == ");
        });
        let message = refused_at(doc, "/transitions/1/condition");
        assert!(message.contains("position"), "{message}");
    }

    #[test]
    fn a_condition_reading_a_field_the_subject_lacks_is_refused_with_a_suggestion() {
        let doc = clinic_with(|d| {
            d["transitions"][1]["condition"] = json!("record.first_vist == true");
            d["steps"][3]["operators"] = json!({"field": "doctr"});
        });
        let message = refused_at(doc.clone(), "/transitions/1/condition");
        assert!(
            message.contains("no field 'first_vist'")
                && message.contains("did you mean 'first_visit'"),
            "{message}"
        );
        assert!(refused_at(doc, "/steps/3/operators/field").contains("'doctr'"));
        // The system fields are there on every record.
        let fine = clinic_with(|d| {
            d["transitions"][1]["condition"] = json!("record.first_visit && record.version > 1");
        });
        assert!(prepare(fine).is_ok());
    }

    #[test]
    fn a_condition_may_use_record_without_a_subject() {
        let doc = clinic_with(|d| {
            d.as_object_mut().unwrap().remove("subject");
            d["transitions"][1]["condition"] = json!("record.age < 18 && context.vip");
        });
        assert!(prepare(doc).is_ok());
    }

    #[test]
    fn a_sub_service_step_must_name_a_service() {
        let doc = clinic_with(|d| {
            d["steps"][2].as_object_mut().unwrap().remove("service");
        });
        refused_at(doc, "/steps/2/service");
    }

    #[test]
    fn a_sub_service_step_must_name_a_known_service() {
        let doc = clinic_with(|d| d["steps"][2]["service"] = json!("consultaton"));
        let message = refused_at(doc, "/steps/2/service");
        assert!(message.contains("consultaton"), "{message}");
    }

    #[test]
    fn a_service_cannot_call_itself() {
        let doc = clinic_with(|d| d["steps"][2]["service"] = json!("treatment_visit"));
        let message = refused_at(doc, "/steps/2/service");
        assert!(message.contains("itself"), "{message}");
    }

    #[test]
    fn service_applies_only_to_sub_service_steps() {
        let doc = clinic_with(|d| d["steps"][0]["service"] = json!("consultation"));
        refused_at(doc, "/steps/0/service");
    }

    #[test]
    fn a_wait_step_must_say_what_it_waits_for() {
        let doc = clinic_with(|d| d["steps"][4] = json!({"name": "bill", "kind": "wait"}));
        refused_at(doc, "/steps/4/wait");
        let doc = clinic_with(|d| {
            d["steps"][4] = json!({"name": "bill", "kind": "wait", "wait": {}});
        });
        refused_at(doc, "/steps/4/wait");
        let doc = clinic_with(|d| {
            d["steps"][4] = json!({"name": "bill", "kind": "wait", "wait": {"event": "paid"}});
        });
        assert!(prepare(doc).is_ok());
    }

    #[test]
    fn wait_applies_only_to_wait_steps() {
        let doc = clinic_with(|d| d["steps"][4]["wait"] = json!({"event": "paid"}));
        refused_at(doc, "/steps/4/wait");
    }

    #[test]
    fn a_wait_delay_must_be_an_iso_duration() {
        let doc = clinic_with(|d| {
            d["steps"][4] =
                json!({"name": "bill", "kind": "wait", "wait": {"after": "10 minutes"}});
        });
        refused_at(doc, "/steps/4/wait/after");
    }

    #[test]
    fn a_wait_until_expression_must_parse() {
        let doc = clinic_with(|d| {
            d["steps"][4] = json!({"name": "bill", "kind": "wait", "wait": {"until": "record.("}});
        });
        refused_at(doc, "/steps/4/wait/until");
    }

    #[test]
    fn a_deadline_must_be_an_iso_duration() {
        let doc = clinic_with(|d| d["steps"][3]["deadline"] = json!("2h"));
        let message = refused_at(doc, "/steps/3/deadline");
        assert!(message.contains("2h"), "{message}");
        let doc = clinic_with(|d| d["steps"][3]["deadline"] = json!("P1M"));
        refused_at(doc, "/steps/3/deadline");
    }

    #[test]
    fn booked_applies_only_to_human_steps() {
        let doc = clinic_with(|d| d["steps"][1]["booked"] = json!(true));
        let message = refused_at(doc, "/steps/1/booked");
        assert!(message.contains("human"), "{message}");
        let fine = clinic_with(|d| d["steps"][3]["booked"] = json!(true));
        assert!(prepare(fine).is_ok());
    }

    #[test]
    fn resources_apply_only_to_dispatched_steps() {
        let doc = clinic_with(|d| {
            d["steps"][1]["resources"] = json!([{"type": "laser_room"}]);
        });
        refused_at(doc, "/steps/1/resources");
    }

    #[test]
    fn a_resource_quantity_of_zero_is_refused() {
        let doc = clinic_with(|d| d["steps"][3]["resources"][1]["quantity"] = json!(0));
        let message = refused_at(doc, "/steps/3/resources/1/quantity");
        assert!(message.contains("laser_device"), "{message}");
    }

    #[test]
    fn operators_apply_only_to_dispatched_steps() {
        let doc = clinic_with(|d| d["steps"][2]["operators"] = json!({"role": "doctor"}));
        refused_at(doc, "/steps/2/operators");
    }

    #[test]
    fn an_operator_expression_must_parse() {
        let doc = clinic_with(|d| {
            d["steps"][0]["operators"] = json!({"expression": "users_with(\"front_desk\""});
        });
        refused_at(doc, "/steps/0/operators/expression");
    }

    #[test]
    fn the_subject_must_be_a_known_data_item() {
        let doc = clinic_with(|d| d["subject"] = json!("appointmnet"));
        let message = refused_at(doc, "/subject");
        assert!(message.contains("appointmnet"), "{message}");
    }

    #[test]
    fn two_transitions_from_a_step_cannot_share_a_key() {
        let doc = clinic_with(|d| {
            d["transitions"]
                .as_array_mut()
                .unwrap()
                .push(json!({"from": "treat", "to": "bill", "attribute": "other"}));
        });
        refused_at(doc, "/transitions/6/name");
        // A distinct name makes it choosable, and so acceptable.
        let doc = clinic_with(|d| {
            d["transitions"].as_array_mut().unwrap().push(
                json!({"from": "treat", "to": "bill", "name": "skip_photos", "attribute": "other"}),
            );
        });
        assert!(prepare(doc).is_ok());
    }

    #[test]
    fn a_loop_without_a_way_to_the_end_is_refused() {
        let doc = clinic_with(|d| {
            d["steps"]
                .as_array_mut()
                .unwrap()
                .insert(5, json!({"name": "review", "kind": "human"}));
            let t = d["transitions"].as_array_mut().unwrap();
            t.push(json!({"from": "checkin", "to": "review", "name": "review"}));
            t.push(json!({"from": "review", "to": "checkin"}));
        });
        // checkin can still reach the end; review can too (through checkin). Now trap it:
        assert!(prepare(doc).is_ok());
        let doc = json!({
            "label": {"zh": "循环"},
            "steps": [
                {"name": "a", "kind": "human"},
                {"name": "b", "kind": "human"},
                {"name": "c", "kind": "human"},
                {"name": "end", "kind": "end"}
            ],
            "transitions": [
                {"from": "a", "to": "b"},
                {"from": "a", "to": "end"},
                {"from": "b", "to": "c"},
                {"from": "c", "to": "b"}
            ]
        });
        let found = issues(doc);
        let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["/steps/1", "/steps/2"], "{found:?}");
    }

    #[test]
    fn a_reject_loop_back_to_an_earlier_step_is_accepted() {
        let doc = clinic_with(|d| {
            d["transitions"].as_array_mut().unwrap().push(
                json!({"from": "treat", "to": "checkin", "name": "redo", "attribute": "reject"}),
            );
        });
        assert!(prepare(doc).is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let doc = clinic_with(|d| {
            d["subject"] = json!("nothing");
            d["steps"][3]["deadline"] = json!("soon");
            d["transitions"][1]["condition"] = json!("((");
        });
        let found = issues(doc);
        let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/subject", "/steps/3/deadline", "/transitions/1/condition"]
        );
    }

    #[test]
    fn iso_durations_parse_to_seconds() {
        assert_eq!(parse_iso_duration("PT10M"), Some(600));
        assert_eq!(parse_iso_duration("PT2H"), Some(7_200));
        assert_eq!(parse_iso_duration("PT30S"), Some(30));
        assert_eq!(parse_iso_duration("P7D"), Some(604_800));
        assert_eq!(parse_iso_duration("P1DT2H30M"), Some(95_400));
        assert_eq!(parse_iso_duration("PT1H0M5S"), Some(3_605));
        assert_eq!(parse_iso_duration("P2W"), Some(1_209_600));
        assert_eq!(parse_iso_duration("PT0S"), Some(0));
    }

    #[test]
    fn malformed_iso_durations_are_refused() {
        for bad in [
            "",
            "P",
            "PT",
            "P1DT",
            "T1H",
            "1H",
            "PT1.5H",
            "P1Y",
            "P1M",
            "PT-1H",
            "pt1h",
            "PTH",
            "PT1M2H",
            "PT1H1H",
            "P1W2D",
            "P1WT1H",
            "PT1H ",
            " PT1H",
            "P1D2D",
            "PT10",
            "PT1X",
            "P99999999999999999999D",
            "P999999999999999W",
        ] {
            assert_eq!(parse_iso_duration(bad), None, "{bad:?}");
        }
    }
}
