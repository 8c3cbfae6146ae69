//! The OpenAPI document (`GET /api/v1/openapi.json`) is one a client generator and
//! schemathesis can use: valid OpenAPI 3.1 whose every `$ref` resolves, every operation
//! named once and answering with a schema, every protected one documenting its 401; the
//! router serves exactly the operations it lists; and real answers of a kernel (records,
//! processes, work items, rules, the organisation, errors…) validate against the schemas it
//! documents for them.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use common::{As, TestApp, each_backend, patient_def};
use serde_json::{Value, json};

/// The document as a client fetches it (no credentials).
async fn document(app: &TestApp) -> anyhow::Result<Value> {
    let (s, doc) = app
        .call_as(As::Nobody, "GET", "/api/v1/openapi.json", None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {doc}");
    Ok(doc)
}

/// Every `(method, path)` the document lists.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// What a JSON pointer `#/a/b` designates in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// A response object, its `$ref` followed.
fn response<'a>(doc: &'a Value, op: &'a Value, status: &str) -> Option<&'a Value> {
    let r = op["responses"].get(status)?;
    match r.get("$ref").and_then(Value::as_str) {
        Some(reference) => resolve(doc, reference),
        None => Some(r),
    }
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A validator for `schema`, a schema of the document (its `$ref`s into the components
/// resolve because the components travel with it).
fn validator(doc: &Value, schema: &Value) -> anyhow::Result<jsonschema::Validator> {
    let mut root = json!({"allOf": [schema]});
    root["components"] = doc["components"].clone();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn public(method: &str, path: &str) -> bool {
    erpos_http::document::PUBLIC.contains(&(method, path))
}

#[tokio::test]
async fn the_document_is_valid_openapi_a_generator_can_use() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let doc = document(&app).await?;
        assert_eq!(doc["openapi"], "3.1.0");
        let mut failures = Vec::new();

        // Every $ref resolves.
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 100, "{} refs", all.len());
        for r in BTreeSet::from_iter(all) {
            if resolve(&doc, &r).is_none() {
                failures.push(format!("$ref {r} does not resolve"));
            }
        }
        // Every component schema is a JSON Schema the validator compiles.
        for (name, schema) in doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if let Err(e) = validator(&doc, schema) {
                failures.push(format!("schema {name}: {e}"));
            }
        }

        let ops = operations(&doc);
        assert!(ops.len() > 70, "{} operations", ops.len());
        let mut ids = BTreeMap::new();
        for (method, path, op) in &ops {
            let at = format!("{} {path}", method.to_uppercase());
            // An operationId, unique in the document.
            match op["operationId"].as_str() {
                Some(id) => {
                    if let Some(other) = ids.insert(id.to_owned(), at.clone()) {
                        failures.push(format!("{at}: operationId {id} also names {other}"));
                    }
                }
                None => failures.push(format!("{at}: no operationId")),
            }
            // A success response, with a schema unless it has no body.
            let statuses: Vec<&String> = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(s, _)| s)
                .collect();
            let successes: Vec<&&String> = statuses
                .iter()
                .filter(|s| s.starts_with('2') || s.as_str() == "101")
                .collect();
            if successes.is_empty() {
                failures.push(format!("{at}: no success response"));
            }
            for status in successes {
                let r = response(&doc, op, status).cloned().unwrap_or(Value::Null);
                let content = r["content"].as_object().cloned().unwrap_or_default();
                let bodiless = status.as_str() == "204" || status.as_str() == "101";
                if bodiless != content.is_empty() {
                    failures.push(format!("{at} {status}: content {content:?}"));
                }
                for (ctype, media) in &content {
                    if media.get("schema").is_none() {
                        failures.push(format!("{at} {status} {ctype}: no schema"));
                    }
                }
            }
            // Every error response has the one error body.
            for status in statuses
                .iter()
                .filter(|s| s.starts_with('4') || s.starts_with('5'))
            {
                let r = response(&doc, op, status).cloned().unwrap_or(Value::Null);
                let schema = &r["content"]["application/json"]["schema"];
                let health = path == "/healthz" && status.as_str() == "503";
                if !health && schema["$ref"] != "#/components/schemas/ErrorBody" {
                    failures.push(format!("{at} {status}: {r}"));
                }
            }
            // 401 on every protected route, and the credentials it takes.
            if !public(method, path) {
                if response(&doc, op, "401").is_none() {
                    failures.push(format!("{at}: no 401"));
                }
                if op["security"] != json!([{"bearer": []}]) {
                    failures.push(format!("{at}: security {}", op["security"]));
                }
            }
            // A JSON body is described, and its errors are documented.
            if let Some(body) = op.get("requestBody") {
                let schema = &body["content"]["application/json"]["schema"];
                if schema.is_null() || *schema == json!({"type": "object"}) {
                    failures.push(format!("{at}: request body without a schema: {body}"));
                }
                for status in ["400", "413", "422"] {
                    if response(&doc, op, status).is_none() {
                        failures.push(format!("{at}: a JSON body but no {status}"));
                    }
                }
            }
            // A path parameter for every `{name}` in the path, typed.
            for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
                let declared = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["name"] == name && p["in"] == "path");
                match declared {
                    Some(p) if p["schema"].is_object() && p["required"] == true => {}
                    other => failures.push(format!("{at}: path parameter {name}: {other:?}")),
                }
            }
        }

        // Two types of one name do not share a schema: a ledger entry's kind and a menu
        // entry's kind are each their own (the demo's 储值卡 entries broke the menu's once).
        let enum_of = |name: &str| doc["components"]["schemas"][name]["enum"].to_string();
        assert!(
            enum_of("LedgerEntryKind").contains("\"recharge\""),
            "{}",
            enum_of("LedgerEntryKind")
        );
        assert!(
            enum_of("MenuEntryKind").contains("\"tasks\""),
            "{}",
            enum_of("MenuEntryKind")
        );

        // Each error code is listed with its meaning.
        let codes = doc["components"]["schemas"]["ErrorCode"].to_string();
        for code in erpos_kernel::error::ErrorCode::ALL {
            if !codes.contains(&format!("\"{}\"", code.as_str())) {
                failures.push(format!("error code {code} not in the document"));
            }
        }
        assert!(
            codes.contains("the caller lacks a grant") || codes.contains("lacks a grant"),
            "{codes}"
        );
        assert_eq!(
            doc["components"]["schemas"]["ErrorBody"]["properties"]["error"]["$ref"],
            "#/components/schemas/ErrorInfo"
        );
        // The closed value sets are enums.
        let state = doc["paths"]["/api/v1/processes"]["get"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "state")
            .map(|p| {
                p["schema"]["$ref"]
                    .as_str()
                    .and_then(|r| resolve(&doc, r))
                    .cloned()
                    .unwrap_or(p["schema"].clone())
            })
            .unwrap_or_default();
        assert_eq!(state["enum"].as_array().map(Vec::len), Some(6), "{state}");
        assert!(state.to_string().contains("\"TERMINATED\""), "{state}");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        Ok(())
    })
    .await
}

/// The `(method, path)` pairs `router()` in `api/mod.rs` serves, read from its source:
/// each `.route("path", get(a).post(b))` with the methods it chains.
fn routed() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/lib.rs");
    let body = source.split("pub fn router(").nth(1).unwrap_or_default();
    let mut out = BTreeSet::new();
    let mut rest = body;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let mut depth = 1;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &rest[..end];
        let Some(path) = args.split('"').nth(1) else {
            continue;
        };
        if path.contains('*') {
            continue; // the catch-all that answers 404 after authentication
        }
        let full = if path == "/healthz" {
            path.to_owned()
        } else {
            format!("/api/v1{path}")
        };
        let chain = &args[args.find(',').map_or(0, |i| i + 1)..];
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = chain.match_indices(&format!("{method}(")).any(|(i, _)| {
                let before = chain[..i].chars().last();
                before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            });
            if called {
                out.insert((method.to_owned(), full.clone()));
            }
        }
    }
    out
}

/// A concrete path for a template (`{id}` → 1, other names → `x`).
fn concrete(template: &str) -> String {
    let mut out = String::new();
    for (i, part) in template.split('{').enumerate() {
        if i == 0 {
            out.push_str(part);
            continue;
        }
        let (name, tail) = part.split_once('}').unwrap_or((part, ""));
        out.push_str(if ["id", "seq"].contains(&name) {
            "1"
        } else {
            "x"
        });
        out.push_str(tail);
    }
    out
}

#[tokio::test]
async fn the_router_serves_exactly_the_operations_the_document_lists() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let doc = document(&app).await?;
        let documented: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(m, p, _)| (m, p))
            .collect();
        let routed = routed();
        assert!(routed.len() > 70, "{} routes read", routed.len());
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "served but not documented: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "documented but not in router(): {unserved:?}"
        );
        // And the router itself answers each documented one (not the 404 of no route, not
        // the 405 of a method the path does not take). Writes go with a body that is not
        // JSON, so nothing changes.
        let mut failures = Vec::new();
        for (method, path) in &documented {
            let (s, b) = app
                .call_raw(
                    &method.to_uppercase(),
                    &concrete(path),
                    (method != "get").then(|| b"not json".to_vec()),
                    &[(
                        "authorization".into(),
                        format!("Bearer {}", common::BOOTSTRAP),
                    )],
                )
                .await
                .or_else(|_| Ok::<_, anyhow::Error>((StatusCode::OK, Value::Null)))?;
            if s == StatusCode::METHOD_NOT_ALLOWED || b["error"]["message"] == "no such API path" {
                failures.push(format!("{method} {path}: {s} {b}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        Ok(())
    })
    .await
}

/// Checks answers against the document: each call's status must be documented for its
/// operation, and its body must validate against that response's schema.
struct Checker {
    doc: Value,
    failures: Vec<String>,
    checked: BTreeSet<String>,
}

impl Checker {
    fn check(&mut self, method: &str, template: &str, status: StatusCode, body: &Value) {
        let at = format!("{method} {template} {status}");
        let op = &self.doc["paths"][template][method.to_lowercase()];
        if op.is_null() {
            self.failures.push(format!("{at}: no such operation"));
            return;
        }
        let code = status.as_u16().to_string();
        let Some(r) = response(&self.doc, op, &code).cloned() else {
            self.failures
                .push(format!("{at}: status not documented ({body})"));
            return;
        };
        self.checked.insert(format!("{method} {template}"));
        let schema = &r["content"]["application/json"]["schema"];
        if schema.is_null() {
            if !body.is_null() {
                self.failures
                    .push(format!("{at}: a body where none is documented: {body}"));
            }
            return;
        }
        match validator(&self.doc, schema) {
            Ok(v) => {
                let errors: Vec<String> = v
                    .iter_errors(body)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .take(5)
                    .collect();
                if !errors.is_empty() {
                    self.failures.push(format!(
                        "{at}: {}\n  body: {}",
                        errors.join("; "),
                        body.to_string().chars().take(600).collect::<String>()
                    ));
                }
            }
            Err(e) => self
                .failures
                .push(format!("{at}: schema does not compile: {e}")),
        }
    }

    /// Sends a call (as the bootstrap administrator) and checks its answer; returns it.
    async fn call(
        &mut self,
        app: &TestApp,
        method: &str,
        path: &str,
        template: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let (s, b) = app.call(method, path, body).await?;
        self.check(method, template, s, &b);
        Ok((s, b))
    }
}

#[tokio::test]
async fn real_answers_validate_against_their_documented_schemas() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let doc = document(&app).await?;
        let mut c = Checker { doc, failures: Vec::new(), checked: BTreeSet::new() };
        let c = &mut c;

        // design: the clinic's patient, a leave form with a workflow.
        c.call(&app, "POST", "/api/v1/data-items", "/api/v1/data-items", Some(patient_def())).await?;
        c.call(&app, "POST", "/api/v1/data-items", "/api/v1/data-items", Some(json!({
            "name": "qingjia", "label": {"zh": "请假单"},
            "fields": [{"name": "days", "label": {"zh": "天数"}, "type": "integer", "required": true},
                       {"name": "reason", "label": {"zh": "事由"}, "type": "text"},
                       {"name": "opinion", "label": {"zh": "意见"}, "type": "text"}]}))).await?;
        c.call(&app, "GET", "/api/v1/data-items", "/api/v1/data-items", None).await?;
        c.call(&app, "GET", "/api/v1/data-items/huanzhe", "/api/v1/data-items/{name}", None).await?;
        c.call(&app, "GET", "/api/v1/data-items/huanzhe/form", "/api/v1/data-items/{name}/form", None).await?;
        c.call(&app, "GET", "/api/v1/data-items/nobody", "/api/v1/data-items/{name}", None).await?;
        c.call(&app, "POST", "/api/v1/data-items", "/api/v1/data-items", Some(json!({"label": {"zh": "坏"}, "fields": [{"label": {"zh": "x"}, "type": "colour"}]}))).await?;
        let mut changed = patient_def();
        changed["name"] = json!("huanzhe");
        if let Some(fields) = changed["fields"].as_array_mut() {
            fields.push(json!({"name": "phone", "label": {"zh": "电话"}, "type": "text"}));
        }
        c.call(&app, "PUT", "/api/v1/data-items/huanzhe", "/api/v1/data-items/{name}", Some(changed)).await?;
        c.call(&app, "GET", "/api/v1/data-items/huanzhe", "/api/v1/data-items/{name}", None).await?;
        c.call(&app, "GET", "/api/v1/data-items/huanzhe/migration", "/api/v1/data-items/{name}/migration", None).await?;
        c.call(&app, "POST", "/api/v1/data-items/huanzhe/migration", "/api/v1/data-items/{name}/migration", None).await?;
        c.call(&app, "GET", "/api/v1/data-items/huanzhe/migration", "/api/v1/data-items/{name}/migration", None).await?;
        c.call(&app, "DELETE", "/api/v1/data-items/huanzhe/migration", "/api/v1/data-items/{name}/migration", None).await?;

        // The approver the service names.
        app.staff(&["zhangsan"]).await?;
        let leave = json!({
            "name": "leave", "label": {"zh": "请假申请"}, "subject": "qingjia",
            "serial": {"prefix": "LEAVE", "utc_offset_minutes": 480},
            "steps": [
                {"name": "apply", "kind": "human", "label": {"zh": "填写申请"}, "operators": {"creator": true}, "fields": {"days": "required", "reason": "optional"}},
                {"name": "leader", "kind": "human", "label": {"zh": "主管审批"}, "operators": {"user": "zhangsan"}, "fields": {"opinion": "optional"}, "deadline": "PT4H"},
                {"name": "end", "kind": "end"}],
            "transitions": [{"from": "apply", "to": "leader", "attribute": "agree", "label": {"zh": "提交"}},
                            {"from": "leader", "to": "end", "attribute": "agree"},
                            {"from": "leader", "to": "apply", "name": "back", "attribute": "reject", "check_required": false}]
        });
        c.call(&app, "POST", "/api/v1/services", "/api/v1/services", Some(leave)).await?;
        c.call(&app, "GET", "/api/v1/services/leave", "/api/v1/services/{name}", None).await?;
        c.call(&app, "POST", "/api/v1/services/leave/publish", "/api/v1/services/{name}/publish", None).await?;
        c.call(&app, "POST", "/api/v1/services/leave/publish", "/api/v1/services/{name}/publish", None).await?;
        c.call(&app, "GET", "/api/v1/services", "/api/v1/services", None).await?;
        c.call(&app, "GET", "/api/v1/services/leave", "/api/v1/services/{name}", None).await?;
        let (s, ctype, svg) = app.get_text("/api/v1/services/leave/flowchart.svg").await?;
        assert_eq!(s, StatusCode::OK);
        let documented = c.doc["paths"]["/api/v1/services/{name}/flowchart.svg"]["get"]["responses"]["200"]["content"].clone();
        assert!(ctype.starts_with("image/svg+xml") && documented.get("image/svg+xml").is_some(), "{ctype} {documented}");
        assert!(svg.contains("<svg"), "{svg}");

        // organisation and resources.
        c.call(&app, "POST", "/api/v1/departments", "/api/v1/departments", Some(json!({"name": "pifuke", "label": {"zh": "皮肤科"}}))).await?;
        c.call(&app, "POST", "/api/v1/roles", "/api/v1/roles", Some(json!({"name": "doctor", "label": {"zh": "医生"}, "permissions": ["records:*:read", "services:*:start"]}))).await?;
        c.call(&app, "POST", "/api/v1/skills", "/api/v1/skills", Some(json!({"name": "laser", "label": {"zh": "激光"}, "certification": true}))).await?;
        c.call(&app, "POST", "/api/v1/users", "/api/v1/users", Some(json!({"id": "zhangsan", "roles": ["doctor"], "skills": ["laser"], "department": "pifuke", "password": "zhangsans-password"}))).await?;
        c.call(&app, "POST", "/api/v1/users", "/api/v1/users", Some(json!({"id": "lisi", "skils": ["laser"]}))).await?;
        c.call(&app, "POST", "/api/v1/resource-types", "/api/v1/resource-types", Some(json!({"name": "laser_room", "kind": "facility", "label": {"zh": "激光室"}}))).await?;
        c.call(&app, "POST", "/api/v1/resources", "/api/v1/resources", Some(json!({"id": "laser-room-1", "type": "laser_room", "capacity": 1}))).await?;
        for path in ["/api/v1/departments", "/api/v1/roles", "/api/v1/skills", "/api/v1/users", "/api/v1/resource-types", "/api/v1/resources"] {
            c.call(&app, "GET", path, path, None).await?;
        }
        c.call(&app, "POST", "/api/v1/calendars", "/api/v1/calendars", Some(json!({"name": "organisation", "label": {"zh": "门诊工作日历"}, "utc_offset_minutes": 480,
            "weekly": {"mon": [["09:00", "12:00"], ["13:00", "18:00"]]}, "holidays": ["2026-10-01"], "exceptions": {"2026-09-27": [["09:00", "18:00"]]}}))).await?;
        c.call(&app, "GET", "/api/v1/calendars", "/api/v1/calendars", None).await?;
        c.call(&app, "GET", "/api/v1/calendars/organisation", "/api/v1/calendars/{name}", None).await?;
        c.call(&app, "GET", "/api/v1/calendars/none", "/api/v1/calendars/{name}", None).await?;

        // records.
        let (_, zhang) = c.call(&app, "POST", "/api/v1/records/huanzhe", "/api/v1/records/{item}", Some(json!({"xingming": "张三", "age": 31, "record_no": "MR-1"}))).await?;
        let id = zhang["id"].as_str().unwrap_or_default().to_owned();
        c.call(&app, "POST", "/api/v1/records/huanzhe", "/api/v1/records/{item}", Some(json!({"xingming": "李四", "record_no": "MR-1"}))).await?;
        c.call(&app, "POST", "/api/v1/records/huanzhe", "/api/v1/records/{item}", Some(json!({"age": 200}))).await?;
        c.call(&app, "GET", "/api/v1/records/huanzhe?q=zs&limit=1", "/api/v1/records/{item}", None).await?;
        c.call(&app, "GET", "/api/v1/records/huanzhe?limit=0", "/api/v1/records/{item}", None).await?;
        c.call(&app, "GET", &format!("/api/v1/records/huanzhe/{id}"), "/api/v1/records/{item}/{id}", None).await?;
        c.call(&app, "PATCH", &format!("/api/v1/records/huanzhe/{id}"), "/api/v1/records/{item}/{id}", Some(json!({"age": 32, "version": 1}))).await?;
        c.call(&app, "PATCH", &format!("/api/v1/records/huanzhe/{id}"), "/api/v1/records/{item}/{id}", Some(json!({"age": 33, "version": 1}))).await?;
        c.call(&app, "GET", &format!("/api/v1/records/huanzhe/{id}/history"), "/api/v1/records/{item}/{id}/history", None).await?;
        let (_, other) = c.call(&app, "POST", "/api/v1/records/huanzhe", "/api/v1/records/{item}", Some(json!({"xingming": "王五"}))).await?;
        let other = other["id"].as_str().unwrap_or_default().to_owned();
        c.call(&app, "DELETE", &format!("/api/v1/records/huanzhe/{other}"), "/api/v1/records/{item}/{id}", None).await?;
        c.call(&app, "GET", &format!("/api/v1/records/huanzhe/{other}"), "/api/v1/records/{item}/{id}", None).await?;

        // processes and work items: a leave request, submitted, and its leader's view.
        let (_, form) = c.call(&app, "POST", "/api/v1/records/qingjia", "/api/v1/records/{item}", Some(json!({"days": 2, "reason": "感冒"}))).await?;
        let form_id = form["id"].as_str().unwrap_or_default().to_owned();
        let (s, pcb) = c.call(&app, "POST", "/api/v1/processes", "/api/v1/processes", Some(json!({"service": "leave", "record": {"item": "qingjia", "id": form_id}, "priority": 5}))).await?;
        assert_eq!(s, StatusCode::CREATED, "{pcb}");
        let pid = pcb["id"].as_u64().unwrap_or_default();
        c.call(&app, "POST", "/api/v1/processes", "/api/v1/processes", Some(json!({"service": "nowhere"}))).await?;
        c.call(&app, "POST", "/api/v1/processes", "/api/v1/processes", Some(json!({"service": "leave", "colour": 1}))).await?;
        c.call(&app, "GET", &format!("/api/v1/processes/{pid}"), "/api/v1/processes/{id}", None).await?;
        c.call(&app, "GET", &format!("/api/v1/processes/{pid}/actions"), "/api/v1/processes/{id}/actions", None).await?;
        c.call(&app, "GET", "/api/v1/processes?state=running&limit=1", "/api/v1/processes", None).await?;
        c.call(&app, "GET", "/api/v1/processes?state=sleeping", "/api/v1/processes", None).await?;
        c.call(&app, "GET", "/api/v1/work-items?view=created", "/api/v1/work-items", None).await?;
        c.call(&app, "GET", "/api/v1/work-items", "/api/v1/work-items", None).await?;
        c.call(&app, "POST", &format!("/api/v1/processes/{pid}/handle"), "/api/v1/processes/{id}/{action}", Some(json!({"attribute": "agree", "comment": "请批准", "fields": {"reason": "发烧"}}))).await?;
        c.call(&app, "POST", &format!("/api/v1/processes/{pid}/fly"), "/api/v1/processes/{id}/{action}", None).await?;
        c.call(&app, "POST", &format!("/api/v1/processes/{pid}/resume"), "/api/v1/processes/{id}/{action}", None).await?;
        c.call(&app, "GET", &format!("/api/v1/processes/{pid}"), "/api/v1/processes/{id}", None).await?;
        c.call(&app, "GET", "/api/v1/work-items?user=zhangsan", "/api/v1/work-items", None).await?;
        c.call(&app, "GET", "/api/v1/queues", "/api/v1/queues", None).await?;
        c.call(&app, "GET", "/api/v1/menus", "/api/v1/menus", None).await?;
        c.call(&app, "POST", &format!("/api/v1/processes/{pid}/suspend"), "/api/v1/processes/{id}/{action}", Some(json!({"reason": "核实"}))).await?;
        c.call(&app, "GET", "/api/v1/queues", "/api/v1/queues", None).await?;
        c.call(&app, "GET", "/api/v1/processes/999", "/api/v1/processes/{id}", None).await?;
        c.call(&app, "POST", "/api/v1/delegations", "/api/v1/delegations", Some(json!({"user": "zhangsan", "deputy": "admin", "from": "2026-12-01T00:00:00Z", "to": "2026-12-08T00:00:00Z"}))).await?;
        c.call(&app, "GET", "/api/v1/delegations?all=true", "/api/v1/delegations", None).await?;
        c.call(&app, "DELETE", "/api/v1/delegations/1", "/api/v1/delegations/{id}", None).await?;
        c.call(&app, "DELETE", "/api/v1/delegations/1", "/api/v1/delegations/{id}", None).await?;

        // rules, events, the outbox.
        c.call(&app, "POST", "/api/v1/rules", "/api/v1/rules", Some(json!({"name": "welcome", "label": {"zh": "新患者回访"},
            "event": {"kind": "record.created", "item": "huanzhe"}, "condition": "record.age >= 18",
            "instructions": [{"op": "notify", "to": ["zhangsan"], "title": "新患者"}, {"op": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret"}]}))).await?;
        c.call(&app, "POST", "/api/v1/records/huanzhe", "/api/v1/records/{item}", Some(json!({"xingming": "赵六", "age": 40}))).await?;
        c.call(&app, "PUT", "/api/v1/rules/welcome", "/api/v1/rules/{name}", Some(json!({"label": {"zh": "新患者回访"}, "event": {"kind": "record.created", "item": "huanzhe"},
            "instructions": [{"op": "notify", "to": ["zhangsan"], "title": "新患者"}]}))).await?;
        c.call(&app, "POST", "/api/v1/rules", "/api/v1/rules", Some(json!({"label": {"zh": "坏"}, "event": {"kind": "record.exploded"}}))).await?;
        c.call(&app, "GET", "/api/v1/rules", "/api/v1/rules", None).await?;
        c.call(&app, "GET", "/api/v1/rules/welcome", "/api/v1/rules/{name}", None).await?;
        c.call(&app, "POST", "/api/v1/events/payday", "/api/v1/events/{name}", Some(json!({"month": 11}))).await?;
        c.call(&app, "POST", "/api/v1/events/Pay-Day", "/api/v1/events/{name}", Some(json!({}))).await?;
        // Let the rules worker read the events.
        for _ in 0..50 {
            let (_, runs) = app.call("GET", "/api/v1/rules/welcome/runs", None).await?;
            if runs["items"].as_array().is_some_and(|a| !a.is_empty()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        c.call(&app, "GET", "/api/v1/rules/welcome/runs", "/api/v1/rules/{name}/runs", None).await?;
        c.call(&app, "GET", "/api/v1/rules/quarantine", "/api/v1/rules/quarantine", None).await?;
        c.call(&app, "POST", "/api/v1/rules/quarantine/7/retry", "/api/v1/rules/quarantine/{seq}/retry", None).await?;
        c.call(&app, "GET", "/api/v1/events?limit=2", "/api/v1/events", None).await?;
        c.call(&app, "GET", "/api/v1/events?kind=nothing", "/api/v1/events", None).await?;
        c.call(&app, "GET", "/api/v1/outbox", "/api/v1/outbox", None).await?;
        c.call(&app, "POST", "/api/v1/outbox/1/retry", "/api/v1/outbox/{id}/retry", None).await?;
        c.call(&app, "POST", "/api/v1/outbox/999/retry", "/api/v1/outbox/{id}/retry", None).await?;
        c.call(&app, "GET", "/api/v1/notifications?user=zhangsan", "/api/v1/notifications", None).await?;
        c.call(&app, "DELETE", "/api/v1/rules/welcome", "/api/v1/rules/{name}", None).await?;
        c.call(&app, "GET", "/api/v1/rules/welcome", "/api/v1/rules/{name}", None).await?;

        // statistics.
        c.call(&app, "GET", "/api/v1/stats/services", "/api/v1/stats/services", None).await?;
        c.call(&app, "GET", "/api/v1/stats/services/leave/steps", "/api/v1/stats/services/{name}/steps", None).await?;
        c.call(&app, "GET", "/api/v1/stats/operators?from=2026-01-01", "/api/v1/stats/operators", None).await?;
        c.call(&app, "GET", "/api/v1/stats/roles?service=leave", "/api/v1/stats/roles", None).await?;
        c.call(&app, "GET", "/api/v1/stats/roles?from=yesterday", "/api/v1/stats/roles", None).await?;

        // auth and the system.
        let (s, session) = app.call_as(As::Nobody, "POST", "/api/v1/sessions", Some(json!({"user": "zhangsan", "password": "zhangsans-password"}))).await?;
        c.check("POST", "/api/v1/sessions", s, &session);
        let (s, b) = app.call_as(As::Nobody, "POST", "/api/v1/sessions", Some(json!({"user": "zhangsan", "password": "wrong-password"}))).await?;
        c.check("POST", "/api/v1/sessions", s, &b);
        let token = session["token"].as_str().unwrap_or_default().to_owned();
        let (s, b) = app.call_as(As::Bearer(&token), "GET", "/api/v1/sessions/current", None).await?;
        c.check("GET", "/api/v1/sessions/current", s, &b);
        let (s, b) = app.call_as(As::Bearer(&token), "GET", "/api/v1/audit", None).await?;
        c.check("GET", "/api/v1/audit", s, &b);
        let (s, b) = app.call_as(As::Nobody, "GET", "/api/v1/records/huanzhe", None).await?;
        c.check("GET", "/api/v1/records/{item}", s, &b);
        c.call(&app, "GET", "/api/v1/sessions/current", "/api/v1/sessions/current", None).await?;
        c.call(&app, "POST", "/api/v1/app-tokens", "/api/v1/app-tokens", Some(json!({"name": "crm", "services": ["leave"], "scopes": ["services:leave:*"], "label": {"zh": "客户系统"}}))).await?;
        c.call(&app, "POST", "/api/v1/app-tokens", "/api/v1/app-tokens", Some(json!({"name": "crm", "services": ["leave"], "scopes": []}))).await?;
        c.call(&app, "GET", "/api/v1/app-tokens", "/api/v1/app-tokens", None).await?;
        c.call(&app, "DELETE", "/api/v1/app-tokens/crm", "/api/v1/app-tokens/{name}", None).await?;
        c.call(&app, "PUT", "/api/v1/users/zhangsan/password", "/api/v1/users/{id}/password", Some(json!({"password": "a-new-password"}))).await?;
        c.call(&app, "PUT", "/api/v1/users/zhangsan/password", "/api/v1/users/{id}/password", Some(json!({"password": "short"}))).await?;
        c.call(&app, "GET", "/api/v1/audit?limit=3", "/api/v1/audit", None).await?;
        let (s, b) = app.call_as(As::Nobody, "GET", "/healthz", None).await?;
        c.check("GET", "/healthz", s, &b);
        // A body that is not JSON, and one sent without its content type.
        let (s, b) = app.call_raw("POST", "/api/v1/records/huanzhe", Some(b"{\"xingming\": ".to_vec()),
            &[("authorization".into(), format!("Bearer {}", common::BOOTSTRAP)), ("content-type".into(), "application/json".into())]).await?;
        c.check("POST", "/api/v1/records/{item}", s, &b);
        let (s, b) = app.call_raw("POST", "/api/v1/records/huanzhe", Some(b"{}".to_vec()),
            &[("authorization".into(), format!("Bearer {}", common::BOOTSTRAP))]).await?;
        c.check("POST", "/api/v1/records/{item}", s, &b);
        let (s, b) = app.call_raw("POST", "/api/v1/outbox/abc/retry", None,
            &[("authorization".into(), format!("Bearer {}", common::BOOTSTRAP))]).await?;
        c.check("POST", "/api/v1/outbox/{id}/retry", s, &b);
        c.call(&app, "DELETE", "/api/v1/sessions/current", "/api/v1/sessions/current", None).await?;

        assert!(c.checked.len() >= 60, "{} operations checked: {:?}", c.checked.len(), c.checked);
        assert!(c.failures.is_empty(), "{}\n{} failures", c.failures.join("\n"), c.failures.len());
        Ok(())
    })
    .await
}
