//! Rhai conditions: analysts' expressions over a process's `context` and bound `record`
//! (transition conditions, operator rules, start rules, deadlines), compiled once and
//! cached, run in the same sandboxed engine as rules (`rules::sandbox::limited_engine`:
//! every limit set explicitly, `eval` and closures off, no file, network or clock access)
//! and inside `rules::sandbox::contained` with the expression time limit: conditions run
//! inside the scheduler's core, so an expression must never hold it for longer than that.
//! This module must never run an expression without the limits, nor let a Rhai value
//! outlive the evaluation.

use std::sync::Arc;

use rhai::{AST, Dynamic, Engine, Scope};

use crate::sandbox::{Budget, contained, describe};
use crate::scheduler::{Conditions, Pcb};

/// The sandboxed Rhai engine with its AST cache.
pub struct RhaiConditions {
    engine: Engine,
    cache: crate::sandbox::Expressions,
    calendars: Option<Arc<crate::calendars::Calendars>>,
    /// The DataItems, for which fields of a bound record are exact numbers.
    definitions: Option<Arc<crate::definitions::Definitions>>,
}

impl Default for RhaiConditions {
    fn default() -> Self {
        Self::new()
    }
}

impl RhaiConditions {
    /// An engine with erpos's limits.
    pub fn new() -> Self {
        Self {
            engine: crate::sandbox::limited_engine(),
            cache: crate::sandbox::Expressions::default(),
            calendars: None,
            definitions: None,
        }
    }

    /// Shows the bound record's money and decimal fields (as these DataItems define them)
    /// as exact numbers (see `crate::numbers`); without, they are what is stored.
    pub fn with_definitions(mut self, definitions: Arc<crate::definitions::Definitions>) -> Self {
        self.definitions = Some(definitions);
        self
    }

    /// The bound record's fields that are exact numbers.
    fn exact_fields(&self, pcb: &Pcb) -> Arc<[String]> {
        match (&self.definitions, &pcb.record) {
            (Some(d), Some((item, _))) => d.schema().exact_fields(item),
            _ => Arc::from([]),
        }
    }

    /// Counts deadlines in these working calendars (else in wall time).
    pub fn with_calendars(mut self, calendars: Arc<crate::calendars::Calendars>) -> Self {
        self.calendars = Some(calendars);
        self
    }

    fn compile(&self, source: &str) -> Result<Arc<AST>, String> {
        self.cache.compile(&self.engine, source)
    }

    fn evaluate_over(
        &self,
        expression: &str,
        bindings: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, String> {
        contained(Budget::Expression, || {
            let ast = self.compile(expression)?;
            let mut scope = Scope::new();
            for (name, value) in bindings {
                let v = rhai::serde::to_dynamic(value).map_err(|e| e.to_string())?;
                scope.push_constant(name.as_str(), v);
            }
            self.engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
                .map_err(|e| describe(&e))?
                .as_bool()
                .map_err(|t| format!("the expression gave a {t}, not true or false"))
        })
    }

    /// Evaluates `source` over `pcb` and hands the value to `read`, all inside the sandbox.
    fn eval<T>(
        &self,
        source: &str,
        pcb: &Pcb,
        read: impl FnOnce(Dynamic) -> Result<T, String>,
    ) -> Result<T, String> {
        contained(Budget::Expression, || {
            let ast = self.compile(source)?;
            let mut scope = Scope::new();
            // The bound record lives in the context: convert the context once and take it
            // from there.
            let mut context = rhai::serde::to_dynamic(&*pcb.context).map_err(|e| e.to_string())?;
            let exact = self.exact_fields(pcb);
            let record = match context.write_lock::<rhai::Map>() {
                Some(mut map) => match map.get_mut("record") {
                    Some(record) => {
                        crate::numbers::make_exact(record, &exact);
                        record.clone()
                    }
                    None => Dynamic::UNIT,
                },
                None => Dynamic::UNIT,
            };
            scope.push_constant("context", context);
            scope.push_constant("record", record);
            scope.push_constant("priority", i64::from(pcb.priority));
            let value = self
                .engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
                .map_err(|e| describe(&e))?;
            read(value)
        })
    }
}

impl Conditions for RhaiConditions {
    fn due_ms(&self, calendar: Option<&str>, now_ms: i64, seconds: i64) -> i64 {
        match &self.calendars {
            Some(c) => c.due_ms(calendar, now_ms, seconds),
            None => now_ms.saturating_add(seconds.saturating_mul(1000)),
        }
    }

    fn operators(&self, expression: &str, pcb: &Pcb) -> Result<Vec<String>, String> {
        self.eval(expression, pcb, |v| {
            if v.is_string() {
                return Ok(vec![v.into_string().map_err(|t| t.to_owned())?]);
            }
            let list = v.into_array().map_err(|t| {
                format!("the operator rule gave a {t}, not a user id or a list of them")
            })?;
            list.into_iter()
                .map(|u| {
                    u.into_string()
                        .map_err(|t| format!("the operator rule listed a {t}, not a user id"))
                })
                .collect()
        })
        .map_err(|e| format!("operator rule: {e}"))
    }

    fn on_duty(&self, calendar: &str, at_ms: i64) -> (bool, Option<i64>) {
        match &self.calendars {
            Some(c) => c.on_duty(calendar, at_ms),
            None => (true, None),
        }
    }

    fn holds_over(
        &self,
        expression: &str,
        bindings: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, String> {
        self.evaluate_over(expression, bindings)
    }

    fn holds(&self, expression: &str, pcb: &Pcb) -> Result<bool, String> {
        self.eval(expression, pcb, |v| {
            v.as_bool()
                .map_err(|t| format!("the condition gave a {t}, not true or false"))
        })
    }

    fn instant(&self, expression: &str, pcb: &Pcb) -> Result<i64, String> {
        let text = self
            .eval(expression, pcb, |v| {
                if let Ok(ms) = v.as_int() {
                    return Ok(Err(ms));
                }
                v.into_string()
                    .map(Ok)
                    .map_err(|t| format!("the expression gave a {t}, not a time"))
            })
            .map_err(|e| format!("deadline: {e}"))?;
        let text = match text {
            Err(ms) => return Ok(ms),
            Ok(text) => text,
        };
        erpos_design::value::parse_datetime(&text)
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| format!("deadline: '{text}' is not an RFC 3339 time"))
    }

    fn list(&self, expression: &str, pcb: &Pcb) -> Result<Vec<serde_json::Value>, String> {
        self.eval(expression, pcb, |v| {
            let type_name = v.type_name();
            let list = v
                .into_array()
                .map_err(|_| format!("the expression gave a {type_name}, not a list"))?;
            list.iter()
                .map(|entry| {
                    rhai::serde::from_dynamic::<serde_json::Value>(entry).map_err(|e| e.to_string())
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::ProcessState;
    use serde_json::json;

    fn pcb(context: serde_json::Value) -> Pcb {
        Pcb {
            iteration: None,
            id: 1,
            service: "s".into(),
            version: 1,
            parent: None,
            predecessor: None,
            record: None,
            state: ProcessState::Running,
            exit: None,
            suspended_from: None,
            priority: 5,
            step: None,
            join: None,
            operator: None,
            allocations: Vec::new(),
            context: std::sync::Arc::new(context),
            wait: None,
            deadline_ms: None,
            ready_since_ms: None,
            children: Vec::new(),
            version_no: 0,
            assignee: None,
            serial: None,
            creator: None,
            created_ms: 0,
            visit: 0,
            work: Default::default(),
            handlers: Default::default(),
        }
    }

    #[test]
    fn conditions_see_context_and_record_and_are_sandboxed() {
        let c = RhaiConditions::new();
        let p = pcb(json!({"days": 4, "record": {"first_visit": true}}));
        assert_eq!(c.holds("context.days > 3", &p), Ok(true));
        assert_eq!(c.holds("record.first_visit == true", &p), Ok(true));
        assert!(
            c.holds("context.days", &p).is_err(),
            "a number is not a condition"
        );
        assert!(c.holds("eval(\"1\")", &p).is_err(), "eval is disabled");
        assert!(
            c.holds("{ let x = 0; loop { x += 1; } }", &p).is_err(),
            "statements are not expressions"
        );
        assert_eq!(
            c.instant("\"2026-11-28T09:00:00Z\"", &p),
            Ok(1_795_856_400_000)
        );
    }
}
