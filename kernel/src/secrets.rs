//! Secrets inside definitions: the signing secrets of webhooks (in rules and in automatic
//! steps' instructions) and the credentials written into URLs (`https://user:pass@host`).
//!
//! They are write-only. Every answer that shows a definition, a rule run or a delivery
//! shows them masked, to everyone (a designer included): whoever reads a definition learns
//! that a secret is set, never what it is. Saving a definition back with the mask keeps
//! the stored secret, so an analyst can read, edit and save a rule without retyping it.
//! This module never logs or returns a secret.

use serde_json::Value as Json;

/// What a secret is shown as.
pub const MASK: &str = "********";

/// The URL with the user name and password it carries (if any) replaced by the mask:
/// `https://bot:pw@hooks.example/x` → `https://********@hooks.example/x`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{MASK}@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// Masks, in place, every webhook's `secret` and the credentials of its `url` anywhere in
/// a definition (a rule, a service, a rule run's effects, an outbox payload).
pub fn mask(value: &mut Json) {
    match value {
        Json::Object(o) => {
            if o.get("op").and_then(Json::as_str) == Some("webhook") || o.contains_key("url") {
                if let Some(s) = o.get_mut("secret")
                    && !s.is_null()
                {
                    *s = Json::String(MASK.to_owned());
                }
                if let Some(Json::String(u)) = o.get_mut("url") {
                    *u = mask_url(u);
                }
            }
            for v in o.values_mut() {
                mask(v);
            }
        }
        Json::Array(list) => list.iter_mut().for_each(mask),
        _ => {}
    }
}

/// Where a saved definition holds a mask it was shown, puts back what `stored` (the
/// definition as it is now) has at the same place: the secret, or the URL whose masked form
/// is the one sent. Returns the JSON pointers of masks with nothing stored behind them (the
/// caller answers 422 naming them: a mask is not a secret).
pub fn restore(new: &mut Json, stored: Option<&Json>) -> Vec<String> {
    let mut unresolved = Vec::new();
    walk(new, stored, String::new(), &mut unresolved);
    unresolved
}

fn walk(new: &mut Json, stored: Option<&Json>, path: String, unresolved: &mut Vec<String>) {
    match new {
        Json::Object(o) => {
            for (k, v) in o.iter_mut() {
                let here = format!("{path}/{k}");
                let old = stored.and_then(|s| s.get(k));
                match (k.as_str(), &*v) {
                    ("secret", Json::String(s)) if s == MASK => match old {
                        Some(Json::String(secret)) => *v = Json::String(secret.clone()),
                        _ => unresolved.push(here),
                    },
                    ("url", Json::String(u)) if u.contains(&format!("://{MASK}@")) => {
                        match old.and_then(Json::as_str) {
                            Some(stored_url) if mask_url(stored_url) == *u => {
                                *v = Json::String(stored_url.to_owned())
                            }
                            _ => unresolved.push(here),
                        }
                    }
                    _ => walk(v, old, here, unresolved),
                }
            }
        }
        Json::Array(list) => {
            for (i, v) in list.iter_mut().enumerate() {
                let old = stored.and_then(|s| s.get(i));
                walk(v, old, format!("{path}/{i}"), unresolved);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_and_url_credentials_are_masked_and_restored() {
        assert_eq!(
            mask_url("https://bot:pw@hooks.clinic.test/a?b=c"),
            "https://********@hooks.clinic.test/a?b=c"
        );
        assert_eq!(
            mask_url("https://hooks.clinic.test/a@b"),
            "https://hooks.clinic.test/a@b"
        );
        let stored = json!({"instructions": [{"op": "webhook", "url": "https://u:p@h.test/x", "secret": "s3cr3t"}]});
        let mut shown = stored.clone();
        mask(&mut shown);
        assert!(!shown.to_string().contains("s3cr3t"));
        assert!(!shown.to_string().contains("u:p"));
        let mut back = shown.clone();
        assert!(restore(&mut back, Some(&stored)).is_empty());
        assert_eq!(back, stored);
        let mut fresh = shown.clone();
        assert_eq!(
            restore(&mut fresh, None),
            vec![
                "/instructions/0/url".to_owned(),
                "/instructions/0/secret".to_owned()
            ]
        );
    }
}
