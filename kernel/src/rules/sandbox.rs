//! The Rhai sandbox rules run in: conditions, computed values and scripts.
//!
//! Built from a raw engine with only the packages a rule needs (language core, strings,
//! arrays, maps, maths): no time package (the clock is the kernel's, given as `now`), no
//! file, network or module access (`import` is off), `eval` disabled, `print` discarded.
//! Every limit is set explicitly, so a rule that loops, recurses or grows a string without
//! end is stopped with an error that names the rule, and other rules go on. Compiled
//! scripts are cached by a hash of their text.
//!
//! A script cannot act by itself: its API functions (`create_record`, `update_record`,
//! `start_service`, `signal_process`, `notify`, `webhook`) only build instructions, and the
//! script returns them (one, an array, or nothing). The kernel then runs them like
//! declared instructions, in the rule's transaction.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use dashmap::DashMap;
use rhai::packages::{
    BasicArrayPackage, BasicMapPackage, BasicMathPackage, CorePackage, MoreStringPackage, Package,
};
use rhai::{AST, Dynamic, Engine, Map, Scope};
use serde_json::Value as Json;

/// Operations one evaluation may take: stops endless loops within milliseconds.
pub const MAX_OPERATIONS: u64 = 200_000;
/// Function call depth: stops runaway recursion long before the native stack is at risk.
pub const MAX_CALL_LEVELS: usize = 32;
/// Longest string a rule may build.
pub const MAX_STRING: usize = 64 * 1024;
/// Largest array or map a rule may build.
pub const MAX_COLLECTION: usize = 10_000;
/// Compiled scripts kept (the cache is emptied when it grows past this).
const MAX_CACHED: usize = 10_000;

/// The sandboxed engine and its cache of compiled scripts.
pub struct Sandbox {
    engine: Engine,
    cache: DashMap<(bool, u64), Arc<AST>>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

/// The variables a rule sees.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    /// `event`: kind, subject, record_id, pid, payload, seq.
    pub event: Json,
    /// `record`: the record the event or the process is about.
    pub record: Json,
    /// `context`: the process's context variables.
    pub context: Json,
    /// `now`: the kernel's clock (ms since epoch).
    pub now_ms: i64,
    /// Results of earlier instructions, by their `as` name.
    pub vars: Vec<(String, Json)>,
}

/// A Rhai engine with erpos's packages and limits and nothing else: every Rhai
/// expression erpos runs (transition conditions, operator rules, rules, scripts) runs in
/// one of these, so the limits and the missing clock hold everywhere alike.
pub fn limited_engine() -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(CorePackage::new().as_shared_module());
    engine.register_global_module(BasicArrayPackage::new().as_shared_module());
    engine.register_global_module(BasicMapPackage::new().as_shared_module());
    engine.register_global_module(BasicMathPackage::new().as_shared_module());
    engine.register_global_module(MoreStringPackage::new().as_shared_module());
    engine.set_max_operations(MAX_OPERATIONS);
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_string_size(MAX_STRING);
    engine.set_max_array_size(MAX_COLLECTION);
    engine.set_max_map_size(MAX_COLLECTION);
    engine.set_max_modules(0);
    engine.disable_symbol("eval");
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine
}

impl Sandbox {
    /// A sandbox with erpos's limits and the script API.
    pub fn new() -> Self {
        let mut engine = limited_engine();
        register_api(&mut engine);
        Self {
            engine,
            cache: DashMap::new(),
        }
    }

    fn compile(&self, source: &str, expression: bool) -> Result<Arc<AST>, String> {
        let mut h = DefaultHasher::new();
        source.hash(&mut h);
        let key = (expression, h.finish());
        if let Some(ast) = self.cache.get(&key) {
            return Ok(ast.clone());
        }
        let ast = if expression {
            self.engine.compile_expression(source)
        } else {
            self.engine.compile(source)
        }
        .map_err(|e| e.to_string())?;
        let ast = Arc::new(ast);
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(key, ast.clone());
        Ok(ast)
    }

    fn scope(bindings: &Bindings) -> Result<Scope<'static>, String> {
        let mut scope = Scope::new();
        let dynamic = |v: &Json| rhai::serde::to_dynamic(v).map_err(|e| e.to_string());
        scope.push_constant("event", dynamic(&bindings.event)?);
        scope.push_constant("record", dynamic(&bindings.record)?);
        scope.push_constant("context", dynamic(&bindings.context)?);
        scope.push_constant("now", bindings.now_ms);
        for (name, value) in &bindings.vars {
            scope.push_constant(name.clone(), dynamic(value)?);
        }
        Ok(scope)
    }

    /// Evaluates an expression to JSON.
    pub fn eval(&self, source: &str, bindings: &Bindings) -> Result<Json, String> {
        let ast = self.compile(source, true)?;
        let mut scope = Self::scope(bindings)?;
        let value = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
            .map_err(|e| e.to_string())?;
        to_json(value)
    }

    /// Evaluates a condition: it must give true or false.
    pub fn holds(&self, source: &str, bindings: &Bindings) -> Result<bool, String> {
        match self.eval(source, bindings)? {
            Json::Bool(b) => Ok(b),
            other => Err(format!("the condition gave {other}, not true or false")),
        }
    }

    /// Runs a script; returns the instructions it built (as JSON, still to be parsed).
    pub fn script(&self, source: &str, bindings: &Bindings) -> Result<Vec<Json>, String> {
        let ast = self.compile(source, false)?;
        let mut scope = Self::scope(bindings)?;
        let value = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
            .map_err(|e| e.to_string())?;
        match to_json(value)? {
            Json::Null => Ok(Vec::new()),
            Json::Array(list) => Ok(list),
            one @ Json::Object(_) => Ok(vec![one]),
            other => Err(format!(
                "a script returns instructions (a map, an array of maps, or nothing), not {other}"
            )),
        }
    }
}

fn to_json(value: Dynamic) -> Result<Json, String> {
    rhai::serde::from_dynamic(&value).map_err(|e| e.to_string())
}

/// The script API: constructors of instructions (pure; the kernel runs what is returned).
fn register_api(engine: &mut Engine) {
    fn op(name: &str) -> Map {
        let mut m = Map::new();
        m.insert("op".into(), name.into());
        m
    }
    engine.register_fn("create_record", |item: &str, set: Map| {
        let mut m = op("create_record");
        m.insert("item".into(), item.into());
        m.insert("set".into(), set.into());
        m
    });
    engine.register_fn("update_record", |item: &str, id: &str, set: Map| {
        let mut m = op("update_record");
        m.insert("item".into(), item.into());
        m.insert("id".into(), format!("{id:?}").into());
        m.insert("set".into(), set.into());
        m
    });
    engine.register_fn("start_service", |service: &str, context: Map| {
        let mut m = op("start_service");
        m.insert("service".into(), service.into());
        m.insert("context".into(), context.into());
        m
    });
    engine.register_fn("signal_process", |pid: i64, signal: &str, payload: Map| {
        let mut m = op("signal_process");
        m.insert("process".into(), pid.to_string().into());
        m.insert("signal".into(), signal.into());
        m.insert("payload".into(), payload.into());
        m
    });
    engine.register_fn("notify", |to: rhai::Array, title: &str, body: &str| {
        let mut m = op("notify");
        m.insert("to".into(), to.into());
        m.insert("title".into(), title.into());
        m.insert("body".into(), body.into());
        m
    });
    engine.register_fn("webhook", |url: &str, body: Map| {
        let mut m = op("webhook");
        m.insert("url".into(), url.into());
        m.insert("body".into(), body.into());
        m
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bindings() -> Bindings {
        Bindings {
            record: json!({"xingming": "张三", "age": 61}),
            now_ms: 1_000,
            ..Bindings::default()
        }
    }

    #[test]
    fn expressions_see_the_bindings_and_nothing_else() {
        let s = Sandbox::new();
        assert_eq!(s.holds("record.age > 60", &bindings()), Ok(true));
        assert_eq!(s.eval("now + 1", &bindings()), Ok(json!(1001)));
        assert!(
            s.eval("timestamp()", &bindings()).is_err(),
            "no clock but `now`"
        );
        assert!(s.eval("eval(\"1\")", &bindings()).is_err());
        let built = s
            .script(
                r#"if record.age > 60 { [notify(["dr_li"], "老年患者", record.xingming)] }"#,
                &bindings(),
            )
            .unwrap();
        assert_eq!(built[0]["op"], "notify");
        assert_eq!(built[0]["body"], "张三");
    }
}
