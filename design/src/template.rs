//! `{{path}}` templates for notifications and webhook bodies: analysts write
//! `您好 {{record.xingming}}，请于 {{record.riqi}} 复诊`, and the kernel fills the paths from the
//! event, record and process context. Deliberately tiny (no logic, no loops): anything
//! computed belongs in a rule's Rhai expression, which runs sandboxed.

use serde_json::Value as Json;

/// Renders `template`, replacing each `{{a.b.c}}` with the value at that path in `root`
/// (strings as they are, other values as JSON, missing paths as nothing).
pub fn render(template: &str, root: &Json) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let path = after[..end].trim();
        let mut value = Some(root);
        for key in path.split('.').filter(|k| !k.is_empty()) {
            value = value.and_then(|v| match v {
                Json::Array(list) => key.parse::<usize>().ok().and_then(|i| list.get(i)),
                other => other.get(key),
            });
        }
        match value {
            Some(Json::String(s)) => out.push_str(s),
            Some(Json::Null) | None => {}
            Some(other) => out.push_str(&other.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Renders every string inside a JSON value (a webhook body given as a template).
pub fn render_json(template: &Json, root: &Json) -> Json {
    match template {
        Json::String(s) => Json::String(render(s, root)),
        Json::Array(list) => Json::Array(list.iter().map(|v| render_json(v, root)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_json(v, root)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_are_filled_and_missing_ones_left_empty() {
        let root = json!({"record": {"xingming": "张三", "age": 31, "tags": ["a", "b"]}});
        assert_eq!(
            render(
                "您好 {{ record.xingming }}（{{record.age}}岁）{{record.nope}}{{record.tags.1}}",
                &root
            ),
            "您好 张三（31岁）b"
        );
        assert_eq!(render("{{ unclosed", &root), "{{ unclosed");
    }
}
