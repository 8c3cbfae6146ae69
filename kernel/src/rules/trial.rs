//! Trying a rule before it is saved (`POST /rules/dry-run`): the request's shape and its
//! checks, above the application layer because it runs the rules engine, which sits on it.

use serde_json::Value;

use crate::Kernel;
use crate::app::require;
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};

/// A stored record a dry run runs on.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleRecord {
    /// The DataItem.
    pub item: String,
    /// The record's id.
    pub id: String,
}

/// `POST /rules/dry-run`: a rule (as the editor holds it, or a stored one by name) and the
/// sample it runs on — a stored record, or a record's fields made up for the test — with
/// the process context it would see.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    /// The rule's definition, unsaved (as `POST /rules` takes it); or give `name`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub rule: Option<Value>,
    /// A stored rule's name.
    #[serde(default)]
    pub name: Option<String>,
    /// A stored record to run on (read with the caller's grants).
    #[serde(default)]
    pub record: Option<SampleRecord>,
    /// Or a sample record's fields (`{"xingming": "张三", "nianling": 28}`), of the rule's
    /// DataItem; it is not stored, so an instruction that changes "the record" fails.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub sample: Option<Value>,
    /// The process context the rule would see (`{"zhenduan": "色斑"}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
}

fn one_issue(path: &str, message: &str) -> KernelError {
    KernelError::Invalid(vec![erpos_design::Issue::new(path, message)])
}

/// Runs a rule once on a sample and rolls it all back (see
/// [`super::DryRun`]): needs `design`. An unsaved rule is checked as saving it
/// would check it (422 with every problem under `/rule`).
pub async fn dry_run_rule(k: &Kernel, caller: &Caller, body: &Value) -> Result<super::DryRun> {
    require(caller, Permission::Design, "trying rules")?;
    let request: DryRunRequest = crate::app::read_body(body)?;
    let rule = match (&request.rule, &request.name) {
        (Some(_), Some(_)) => {
            return Err(one_issue("/name", "give either 'rule' or 'name', not both"));
        }
        (None, None) => {
            return Err(one_issue(
                "/rule",
                "give the rule to try, or the 'name' of a stored one",
            ));
        }
        (None, Some(name)) => k
            .rules
            .all()
            .iter()
            .find(|r| &r.name == name)
            .cloned()
            .ok_or_else(|| KernelError::NotFound(format!("rule '{name}'")))?,
        (Some(definition), None) => {
            if !definition.is_object() {
                return Err(one_issue("/rule", "a rule is an object"));
            }
            let schema = k.definitions.schema();
            let directory =
                crate::app::directory::gather(k, crate::app::directory::Services::Published)
                    .await?;
            let reading = erpos_design::rule::read_rule(definition);
            erpos_design::rule::prepare_rule_reading(
                reading,
                definition,
                &schema.catalog,
                &directory,
                &super::time::check_cron,
            )
            .map_err(|e| match e {
                erpos_design::DesignError::InvalidDefinition(issues) => KernelError::Invalid(
                    issues
                        .into_iter()
                        .map(|i| erpos_design::Issue::new(format!("/rule{}", i.path), i.message))
                        .collect(),
                ),
                other => other.into(),
            })?
        }
    };
    let record = match (request.record, request.sample) {
        (Some(_), Some(_)) => {
            return Err(one_issue(
                "/sample",
                "give either 'record' or 'sample', not both",
            ));
        }
        (Some(r), None) => {
            let fields = crate::app::records::read(k, caller, &r.item, &r.id).await?;
            Some((r.item, r.id, fields))
        }
        (None, Some(fields)) => {
            if !fields.is_object() {
                return Err(one_issue("/sample", "a record's fields, as an object"));
            }
            let item = rule.event.item.clone().ok_or_else(|| {
                one_issue(
                    "/sample",
                    "this rule is not about a DataItem's records: give 'record' (a stored one) instead",
                )
            })?;
            Some((item, String::new(), fields))
        }
        (None, None) => None,
    };
    let context = match request.context {
        None | Some(Value::Null) => Value::Null,
        Some(c) if c.is_object() => c,
        Some(_) => return Err(one_issue("/context", "the context is an object")),
    };
    k.rules.dry_run(&rule, record, context).await
}
