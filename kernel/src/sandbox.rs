//! The Rhai sandbox rules run in: conditions, computed values and scripts.
//!
//! Built from a raw engine with only the packages a rule needs (language core, strings,
//! arrays, maps, maths): no time package (the clock is the kernel's, given as `now`), no
//! file, network or module access (`import` is off), `eval` and `curry` disabled, no
//! closures (the `no_closure` feature: captured and shared values escape rhai's size
//! checks), `sleep` refused, `print` discarded. Every limit is set explicitly, so a rule that
//! loops, recurses or grows a value without end is stopped with an error that names the
//! line, and other rules go on. Compiled scripts are cached by a hash of their text.
//!
//! Rhai checks the size of a value after the operation that built it, and only counts
//! nested arrays, maps and strings. So the sandbox adds what rhai lacks, and every
//! evaluation goes through [`contained`]:
//! - a **time limit** ([`EXPRESSION_TIME`], [`SCRIPT_TIME`]) checked between operations,
//!   because one operation may cost time the operation count does not see (rhai re-measures
//!   the whole value after each change: 5,000 nested maps cost seconds in 20,000 operations);
//! - an **audit of each variable** as it is read or changed: nesting deeper than
//!   [`MAX_NESTING`] or map keys longer than [`MAX_KEY_BYTES`] in one value (rhai counts
//!   neither) stop the script;
//! - **bounded versions of the string functions that allocate before the check** (`replace`
//!   with a string: a 30,000-character text whose every character is replaced by itself
//!   asks for 900 MB before rhai looks at it);
//! - a **stack of known size**: the evaluation, the conversion of its result to JSON and
//!   the drop of every Rhai value run on a stack with at least [`EVAL_RED_ZONE`] free (a
//!   fresh one of [`EVAL_STACK`] if the calling thread has less), so dropping, comparing or
//!   printing a deep value cannot overflow a server thread;
//! - a **bounded result**: JSON at most [`MAX_RESULT_DEPTH`] deep leaves the sandbox.
//!
//! A script cannot act by itself: its API functions (`create_record`, `update_record`,
//! `start_service`, `signal_process`, `notify`, `webhook`) only build instructions, and the
//! script returns them (one, an array, or nothing). The kernel then runs them like
//! declared instructions, in the rule's transaction. This module must never run Rhai
//! outside [`contained`], nor let a Rhai value leave it.

use std::cell::Cell;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rhai::packages::{
    BasicArrayPackage, BasicMapPackage, BasicMathPackage, CorePackage, MoreStringPackage, Package,
};
use rhai::{AST, Dynamic, Engine, EvalAltResult, ImmutableString, Map, Position, Scope};
use serde_json::Value as Json;

/// Operations one evaluation may take: stops endless loops within milliseconds.
pub const MAX_OPERATIONS: u64 = 200_000;
/// Function call depth: stops runaway recursion long before the native stack is at risk.
pub const MAX_CALL_LEVELS: usize = 32;
/// Longest string a rule may build (bytes; a value's strings counted together).
pub const MAX_STRING: usize = 64 * 1024;
/// Largest array or map a rule may build (elements, nested ones counted).
pub const MAX_COLLECTION: usize = 10_000;
/// Variables alive at once, the bindings (`event`, `record`, `context`, `now`…) included.
pub const MAX_VARIABLES: usize = 64;
/// Functions one script may define.
pub const MAX_FUNCTIONS: usize = 32;
/// Deepest nesting of arrays and maps in a script's variables (stored JSON is at most 128
/// deep, so every stored value can be read).
pub const MAX_NESTING: usize = 128;
/// Bytes of map keys a script's variables may hold in all (rhai does not count keys).
pub const MAX_KEY_BYTES: usize = 256 * 1024;
/// Deepest JSON an evaluation may return.
pub const MAX_RESULT_DEPTH: usize = 32;
/// How long a condition or an expression may run. Conditions run inside the scheduler's
/// core, so this bounds how long one analyst's expression can hold every process up.
pub const EXPRESSION_TIME: Duration = Duration::from_millis(50);
/// How long a rule's script may run (in the rules worker, off the async threads).
pub const SCRIPT_TIME: Duration = Duration::from_secs(1);
/// Stack an evaluation is sure to have: four times what the deepest evaluation the limits
/// allow needs in a debug build (a value at the nesting limit printed and compared inside
/// 30 calls, or 32 levels of recursion, pass on 1 MiB and overflow 256 KiB; a release
/// build needs less).
pub const EVAL_RED_ZONE: usize = 4 * 1024 * 1024;
/// Size of the fresh stack an evaluation gets when its thread has less than
/// [`EVAL_RED_ZONE`] left (reserved, not committed: only the pages used cost memory).
pub const EVAL_STACK: usize = 8 * 1024 * 1024;
/// Stack for the server's runtime threads, so that evaluations run in place on them: a
/// fresh stack costs about 15 µs, a cached condition about 1 µs.
pub const THREAD_STACK: usize = 8 * 1024 * 1024;
/// Operations between two looks at the clock.
const CLOCK_EVERY: u64 = 8;
/// Compiled scripts kept (the cache is emptied when it grows past this).
const MAX_CACHED: usize = 10_000;

thread_local! {
    /// The running evaluation's deadline and its time limit in ms (None: none running).
    static DEADLINE: Cell<Option<(Instant, u128)>> = const { Cell::new(None) };
}

/// What an evaluation is for, which sets how long it may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// A condition or an expression: [`EXPRESSION_TIME`].
    Expression,
    /// A rule's script: [`SCRIPT_TIME`].
    Script,
}

impl Budget {
    fn time(self) -> Duration {
        match self {
            Budget::Expression => EXPRESSION_TIME,
            Budget::Script => SCRIPT_TIME,
        }
    }
}

/// Restores the thread's previous deadline, also when the evaluation unwinds.
struct DeadlineGuard(Option<(Instant, u128)>);

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.0));
    }
}

/// Runs one evaluation `f` inside the sandbox's guards: on a stack with at least
/// [`EVAL_RED_ZONE`] free, with `budget`'s deadline for the engine's progress check, and
/// with a panic turned into an error (a bug in rhai or in a registered function must fail
/// the rule, not kill the thread — or poison the scheduler's lock). `f` must do all its
/// work with Rhai values inside: compile, evaluate, convert the result, drop.
pub fn contained<T>(budget: Budget, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    stacker::maybe_grow(EVAL_RED_ZONE, EVAL_STACK, || {
        let limit = budget.time();
        let previous =
            DEADLINE.with(|d| d.replace(Some((Instant::now() + limit, limit.as_millis()))));
        let _guard = DeadlineGuard(previous);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(out) => out,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(format!("the evaluation failed inside the engine: {what}"))
            }
        }
    })
}

/// Says why rhai stopped, with the line and position it stopped at.
pub fn describe(error: &EvalAltResult) -> String {
    match error.unwrap_inner() {
        EvalAltResult::ErrorTerminated(token, pos) => format!("stopped: {token} ({pos})"),
        _ => error.to_string(),
    }
}

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
    /// The fields of `record` that are exact numbers (money, decimals): they are decimals
    /// in expressions (see `crate::numbers`).
    pub exact: Vec<String>,
}

/// A Rhai engine with erpos's packages and limits and nothing else: every Rhai
/// expression erpos runs (transition conditions, operator rules, start rules, deadlines,
/// rules, scripts) runs in one of these, inside [`contained`], so the limits and the
/// missing clock hold everywhere alike. It is built on the design crate's parsing engine,
/// so a definition that saved compiles here, and what is disabled here was refused then.
pub fn limited_engine() -> Engine {
    let mut engine = erpos_design::service_check::parsing_engine();
    engine.register_global_module(CorePackage::new().as_shared_module());
    engine.register_global_module(BasicArrayPackage::new().as_shared_module());
    engine.register_global_module(BasicMapPackage::new().as_shared_module());
    engine.register_global_module(BasicMathPackage::new().as_shared_module());
    engine.register_global_module(MoreStringPackage::new().as_shared_module());
    crate::numbers::register(&mut engine);
    engine.set_max_operations(MAX_OPERATIONS);
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    engine.set_max_string_size(MAX_STRING);
    engine.set_max_array_size(MAX_COLLECTION);
    engine.set_max_map_size(MAX_COLLECTION);
    engine.set_max_variables(MAX_VARIABLES);
    engine.set_max_functions(MAX_FUNCTIONS);
    engine.set_max_modules(0);
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine.on_progress(|ops| {
        if ops % CLOCK_EVERY != 0 {
            return None;
        }
        let (deadline, ms) = DEADLINE.with(Cell::get)?;
        (Instant::now() >= deadline)
            .then(|| Dynamic::from(format!("it ran longer than {ms} ms, the time limit")))
    });
    // The audit sees each variable as it is read or changed, through rhai's variable
    // resolver (an API rhai marks as volatile): it answers None, so every variable is still
    // read the usual way.
    #[allow(deprecated)]
    engine.on_var(|name, _, context| {
        audit(context.scope(), name)
            .map(|()| None)
            .map_err(|message| {
                Box::new(EvalAltResult::ErrorRuntime(message.into(), Position::NONE))
            })
    });
    register_bounded(&mut engine);
    engine
}

/// Checks the variable a script is about to read or change for what rhai does not count:
/// nesting and map keys. Constants are skipped: they cannot change, and were built from
/// values already checked (or are the bindings, which come from storage).
fn audit(scope: &Scope, name: &str) -> Result<(), String> {
    fn walk(value: &Dynamic, depth: usize, keys: &mut usize) -> Result<(), String> {
        if depth > MAX_NESTING {
            return Err(format!(
                "values nested more than {MAX_NESTING} deep (arrays and maps within each other)"
            ));
        }
        if let Ok(map) = value.as_map_ref() {
            for (key, inner) in map.iter() {
                *keys += key.len();
                if *keys > MAX_KEY_BYTES {
                    return Err(format!(
                        "map keys of more than {} KiB in one value",
                        MAX_KEY_BYTES / 1024
                    ));
                }
                walk(inner, depth + 1, keys)?;
            }
        } else if let Ok(array) = value.as_array_ref() {
            for inner in array.iter() {
                walk(inner, depth + 1, keys)?;
            }
        }
        Ok(())
    }
    // The innermost variable of that name (the scope iterates from its end).
    match scope.iter_raw().find(|(n, ..)| *n == name) {
        Some((_, false, value)) => walk(value, 0, &mut 0),
        _ => Ok(()),
    }
}

/// Replaces rhai's functions that build a string before its size is checked with ones that
/// check first (functions registered on the engine are found before the packages'), and
/// refuses `sleep` (it would hold the thread — and the scheduler — without counting an
/// operation).
fn register_bounded(engine: &mut Engine) {
    fn too_large() -> Box<EvalAltResult> {
        Box::new(EvalAltResult::ErrorDataTooLarge(
            format!("Length of string (the limit is {} KiB)", MAX_STRING / 1024),
            Position::NONE,
        ))
    }
    fn replace(
        text: &mut ImmutableString,
        find: &str,
        with: &str,
    ) -> Result<(), Box<EvalAltResult>> {
        if text.is_empty() {
            return Ok(());
        }
        // An empty pattern matches at every character boundary, as in `str::replace`.
        let found = if find.is_empty() {
            text.chars().count() + 1
        } else {
            text.matches(find).count()
        };
        let length =
            (text.len() - found * find.len()).saturating_add(found.saturating_mul(with.len()));
        if length > MAX_STRING {
            return Err(too_large());
        }
        *text = text.replace(find, with).into();
        Ok(())
    }
    engine.register_fn("replace", |t: &mut ImmutableString, f: &str, w: &str| {
        replace(t, f, w)
    });
    engine.register_fn("replace", |t: &mut ImmutableString, f: &str, w: char| {
        replace(t, f, w.encode_utf8(&mut [0; 4]))
    });
    engine.register_fn("replace", |t: &mut ImmutableString, f: char, w: &str| {
        replace(t, f.encode_utf8(&mut [0; 4]), w)
    });
    engine.register_fn("replace", |t: &mut ImmutableString, f: char, w: char| {
        replace(t, f.encode_utf8(&mut [0; 4]), w.encode_utf8(&mut [0; 4]))
    });
    fn no_sleep() -> Box<EvalAltResult> {
        "sleep is not available in erpos rules: use a wait step or a time rule".into()
    }
    engine.register_fn("sleep", |_: i64| -> Result<(), Box<EvalAltResult>> {
        Err(no_sleep())
    });
    engine.register_fn("sleep", |_: f64| -> Result<(), Box<EvalAltResult>> {
        Err(no_sleep())
    });
}

/// Converts a Rhai value to JSON, refusing nesting deeper than [`MAX_RESULT_DEPTH`] (so
/// nothing deep leaves the sandbox) and values JSON cannot hold (function pointers…).
pub fn to_json(value: &Dynamic) -> Result<Json, String> {
    fn convert(value: &Dynamic, depth: usize) -> Result<Json, String> {
        if depth > MAX_RESULT_DEPTH {
            return Err(format!(
                "the result is nested more than {MAX_RESULT_DEPTH} deep"
            ));
        }
        if value.is_unit() {
            return Ok(Json::Null);
        }
        if let Ok(b) = value.as_bool() {
            return Ok(Json::Bool(b));
        }
        if let Ok(i) = value.as_int() {
            return Ok(Json::from(i));
        }
        if let Ok(f) = value.as_float() {
            return Ok(serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number));
        }
        // Exact numbers leave as money and decimals are written everywhere: a string, with
        // the zeros the arithmetic added dropped (1234.50 × 0.88 is 1086.3600: "1086.36",
        // which a money field takes; 1086.365 stays, and a money field refuses it).
        if let Ok(d) = value.as_decimal() {
            return Ok(Json::String(d.normalize().to_string()));
        }
        if let Ok(c) = value.as_char() {
            return Ok(Json::String(c.to_string()));
        }
        if let Ok(s) = value.as_immutable_string_ref() {
            return Ok(Json::String(s.as_str().to_owned()));
        }
        if let Ok(map) = value.as_map_ref() {
            let mut out = serde_json::Map::new();
            for (k, v) in map.iter() {
                out.insert(k.to_string(), convert(v, depth + 1)?);
            }
            return Ok(Json::Object(out));
        }
        if let Ok(array) = value.as_array_ref() {
            return array
                .iter()
                .map(|v| convert(v, depth + 1))
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array);
        }
        if let Ok(blob) = value.as_blob_ref() {
            return Ok(Json::Array(blob.iter().map(|b| Json::from(*b)).collect()));
        }
        Err(format!(
            "a {} is not a value a rule can keep",
            value.type_name()
        ))
    }
    convert(value, 0)
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
        let mut record = dynamic(&bindings.record)?;
        crate::numbers::make_exact(&mut record, &bindings.exact);
        scope.push_constant("record", record);
        scope.push_constant("context", dynamic(&bindings.context)?);
        scope.push_constant("now", bindings.now_ms);
        for (name, value) in &bindings.vars {
            scope.push_constant(name.clone(), dynamic(value)?);
        }
        Ok(scope)
    }

    /// Evaluates an expression to JSON, within [`Budget::Expression`].
    pub fn eval(&self, source: &str, bindings: &Bindings) -> Result<Json, String> {
        contained(Budget::Expression, || {
            let ast = self.compile(source, true)?;
            let mut scope = Self::scope(bindings)?;
            let value = self
                .engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
                .map_err(|e| describe(&e))?;
            to_json(&value)
        })
    }

    /// Evaluates a condition: it must give true or false.
    pub fn holds(&self, source: &str, bindings: &Bindings) -> Result<bool, String> {
        match self.eval(source, bindings)? {
            Json::Bool(b) => Ok(b),
            other => Err(format!("the condition gave {other}, not true or false")),
        }
    }

    /// Runs a script within [`Budget::Script`]; returns the instructions it built (as
    /// JSON, still to be parsed).
    pub fn script(&self, source: &str, bindings: &Bindings) -> Result<Vec<Json>, String> {
        let value = contained(Budget::Script, || {
            let ast = self.compile(source, false)?;
            let mut scope = Self::scope(bindings)?;
            let value = self
                .engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
                .map_err(|e| describe(&e))?;
            to_json(&value)
        })?;
        match value {
            Json::Null => Ok(Vec::new()),
            Json::Array(list) => Ok(list),
            one @ Json::Object(_) => Ok(vec![one]),
            other => Err(format!(
                "a script returns instructions (a map, an array of maps, or nothing), not {other}"
            )),
        }
    }
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

    /// Runs a script on a thread with a small stack (like tokio's), so that a value deep
    /// enough to overflow it is only stopped if the sandbox does its job.
    fn on_small_stack(source: &'static str) -> Result<Vec<Json>, String> {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || Sandbox::new().script(source, &bindings()))
            .unwrap()
            .join()
            .unwrap()
    }

    fn stopped(source: &'static str, why: &str) {
        let e = on_small_stack(source).expect_err(source);
        assert!(e.contains(why), "{source}: {e}");
        assert!(e.contains("line "), "the error names the line: {e}");
    }

    #[test]
    fn closures_cannot_hide_a_deep_chain() {
        // The probe's script: before, the thread overflowed its stack and the process
        // aborted. Closures no longer capture, so `prev` is unknown inside `f` and the
        // loop is stopped by the operation count.
        let e = on_small_stack(
            "let m = #{}; for i in 0..30000 { let prev = m; let f = || prev; m = #{a: f}; } 1",
        )
        .unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        // `f.curry(x)` does not even parse once `curry` is disabled.
        stopped(
            "let m = #{}; for i in 0..30000 { m = #{a: Fn(\"x\").curry(m)}; } 1",
            "",
        );
        stopped(
            "let m = #{}; for i in 0..30000 { m = #{a: curry(Fn(\"x\"), m)}; } 1",
            "curry",
        );
    }

    #[test]
    fn nesting_is_bounded_before_it_can_hurt() {
        stopped(
            "let m = []; for i in 0..9000 { m = [#{a: take(m)}]; } 1",
            "nested more than 128",
        );
        stopped(
            "let m = #{}; for i in 0..9000 { m = #{a: m}; } 1",
            "nested more than 128",
        );
        // What a script may build, it may return only 32 deep.
        let e = Sandbox::new()
            .script(
                "let m = #{}; for i in 0..40 { m = #{a: m}; } m",
                &bindings(),
            )
            .unwrap_err();
        assert!(e.contains("nested more than 32"), "{e}");
    }

    #[test]
    fn strings_are_bounded_before_they_are_built() {
        // Before: `replace` built 64 KiB × 64 KiB (4 GiB) and then found it too long.
        stopped(
            "let s = \"x\"; s.pad(60000, \"x\"); s.replace(\"x\", s); s.len()",
            "Length of string",
        );
        stopped(
            "let s = \"x\"; s.pad(60000, \"x\"); s.replace('x', s); s.len()",
            "Length of string",
        );
        stopped(
            "let s = \"x\"; s.pad(60000, \"x\"); s.replace(\"\", s); s.len()",
            "Length of string",
        );
        // Map keys are not counted by rhai: 10,000 keys of 60 KB were 600 MB.
        stopped(
            "let m = #{}; let s = \"x\"; s.pad(60000, \"x\"); for i in 0..10000 { m[s + i] = 0; } 1",
            "map keys",
        );
        // What stays within the limits still works.
        let built = Sandbox::new()
            .script(
                "let t = \"张三 and 李四\"; t.replace(\"and\", \"和\"); #{name: t}",
                &bindings(),
            )
            .unwrap();
        assert_eq!(built, vec![json!({"name": "张三 和 李四"})]);
    }

    #[test]
    fn loops_recursion_time_and_sleep_are_bounded() {
        stopped("let x = 0; loop { x += 1; }", "Too many operations");
        stopped("fn f(n) { f(n + 1) } f(0)", "Stack overflow");
        stopped("sleep(3600); 1", "sleep is not available");
        stopped("sleep(3600.0); 1", "sleep is not available");
        // Few operations, each costly: rhai re-measures the 10,000-element array after
        // every assignment. Stopped by the clock, not the operation count.
        stopped(
            "let a = []; a.pad(9999, 0); for i in 0..60000 { a[0] = i; } 1",
            "ran longer than 1000 ms",
        );
        // An expression cannot loop, but it can map over a list it is given: 10,000
        // strings of 60,000 characters built in 40,000 operations.
        let given = Bindings {
            context: json!({"list": (0..9_999).collect::<Vec<i64>>()}),
            ..bindings()
        };
        let e = Sandbox::new()
            .eval(
                "context.list.map(|x| x.to_string().pad(60000, \"ab\")).len() > 0",
                &given,
            )
            .unwrap_err();
        assert!(e.contains("ran longer than 50 ms"), "{e}");
    }

    #[test]
    fn the_deepest_values_allowed_are_printed_compared_and_dropped_within_the_stack() {
        // At the nesting limit, 12 more levels in one literal (all an expression's depth allows), inside 30 calls: rhai's
        // recursive printing, comparison and drop all run on the sandbox's stack.
        let source = "let m = [];\nfor i in 0..115 { m = [m]; }\n\
            fn f(n, v) { if n == 0 { `${v}`.len() > 0 && v == v } else { f(n - 1, v) } }\n\
            if f(30, INNER) { () } else { () }";
        let source: &'static str = Box::leak(
            source
                .replace("INNER", "[[[[[[[[[[[[m]]]]]]]]]]]]")
                .into_boxed_str(),
        );
        assert_eq!(on_small_stack(source), Ok(Vec::new()));
    }
}

/// Expressions compiled once and kept, by the hash of their source: conditions and computed
/// fields are evaluated on every step and every write, and parsing them each time would cost
/// more than running them.
#[derive(Default)]
pub struct Expressions {
    cache: dashmap::DashMap<u64, std::sync::Arc<rhai::AST>>,
}

impl Expressions {
    /// `source` compiled as one expression by `engine` (cached), or rhai's message.
    pub fn compile(
        &self,
        engine: &Engine,
        source: &str,
    ) -> Result<std::sync::Arc<rhai::AST>, String> {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        source.hash(&mut h);
        let key = h.finish();
        if let Some(ast) = self.cache.get(&key) {
            return Ok(ast.clone());
        }
        let ast = std::sync::Arc::new(
            engine
                .compile_expression(source)
                .map_err(|e| e.to_string())?,
        );
        self.cache.insert(key, ast.clone());
        Ok(ast)
    }
}
