//! What the kernel accepts, and how it reads back what it stored.
//!
//! Whatever is written must be readable back, and one bad row must never stop a start or a
//! worker. So every input is bounded where it enters (a body's depth and characters, a
//! process's context and the texts a command carries), and stored JSON is read with
//! [`decode_stored`], which also reads documents nested deeper than serde_json's usual
//! limit (written by versions before these bounds) instead of failing on them. The bounds
//! are the design crate's ([`erpos_design::bounds`]) plus those of processes here. This
//! module must never write anything.

use erpos_design::Issue;
use erpos_design::bounds::{MAX_JSON_DEPTH, check_json, json_depth, json_size};
use serde_json::Value as Json;

use crate::error::{KernelError, Result};
use crate::scheduler::{Command, Scheduler};

/// The largest process context, serialised, without the bound record's snapshot (which
/// comes from storage and is bounded by the record's own fields). The context is copied
/// into every history row of the process, so it is kept small: 64 KiB.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// The longest reason, comment or other text a process command carries, in characters
/// (stored in the history row and the PCB).
pub const MAX_NOTE_CHARS: usize = 4_000;

/// The longest event name of a signal.
pub const MAX_EVENT_NAME_CHARS: usize = 200;

/// How deep a stored document may nest and still be read back ([`decode_stored`]): far more
/// than anything written under [`MAX_JSON_DEPTH`], enough for what older versions let in.
pub const MAX_STORED_DEPTH: usize = 512;

/// Refuses a request body that nests deeper than [`MAX_JSON_DEPTH`] or holds a NUL, naming
/// where (a 422).
pub fn check_body(body: &Json) -> Result<()> {
    match check_json(body, "", MAX_JSON_DEPTH) {
        None => Ok(()),
        Some(issue) => Err(KernelError::Invalid(vec![issue])),
    }
}

/// The parts of a context that are bounded: everything, or everything but `record` when
/// that is the bound record's snapshot (read from storage, bounded by the record's fields).
fn caller_part(context: &Json, snapshot: bool) -> Vec<(&str, &Json)> {
    match context {
        Json::Object(map) => map
            .iter()
            .filter(|(k, _)| !(snapshot && k.as_str() == "record"))
            .map(|(k, v)| (k.as_str(), v))
            .collect(),
        other => vec![("", other)],
    }
}

/// Refuses a context that nests too deep, holds a NUL or is larger than
/// [`MAX_CONTEXT_BYTES`]; `path` names the input it came from (`/context`, `/payload`).
/// `snapshot`: its `record` is the bound record's snapshot from storage, not counted (a
/// caller's own `record` key always is).
pub fn check_context(context: &Json, path: &str, snapshot: bool) -> Result<()> {
    let parts = caller_part(context, snapshot);
    // Depth first (counted without recursion): only then is the value walked and sized.
    let depth = 1 + parts.iter().map(|(_, v)| json_depth(v)).max().unwrap_or(0);
    if depth > MAX_JSON_DEPTH {
        return Err(invalid(
            path,
            format!("the process context would nest {depth} levels; at most {MAX_JSON_DEPTH}"),
        ));
    }
    // The record's snapshot may nest one level more than a body (it is a body's field).
    if let Some(issue) = check_json(context, path, MAX_JSON_DEPTH + 2) {
        return Err(KernelError::Invalid(vec![issue]));
    }
    let size: usize = 2 + parts
        .iter()
        .map(|(k, v)| json_size(&Json::String((*k).to_owned())) + 2 + json_size(v))
        .sum::<usize>();
    if size > MAX_CONTEXT_BYTES {
        return Err(invalid(
            path,
            format!(
                "the process context would be {size} bytes as JSON; at most {MAX_CONTEXT_BYTES} \
                 (it is copied into every history entry: keep documents in records)"
            ),
        ));
    }
    Ok(())
}

/// The largest event payload appended from outside (a signal's body), serialised.
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 64 * 1024;

/// Refuses an event payload that could not be stored and read back: nested too deep,
/// holding a NUL, or larger than [`MAX_EVENT_PAYLOAD_BYTES`]. The path is the body's root.
pub fn check_payload(payload: &Json) -> Result<()> {
    let depth = json_depth(payload);
    if depth > MAX_JSON_DEPTH + 1 {
        return Err(invalid(
            "",
            format!("the payload nests {depth} levels; at most {MAX_JSON_DEPTH}"),
        ));
    }
    if let Some(issue) = check_json(payload, "", MAX_JSON_DEPTH + 1) {
        return Err(KernelError::Invalid(vec![issue]));
    }
    let size = json_size(payload);
    if size > MAX_EVENT_PAYLOAD_BYTES {
        return Err(invalid(
            "",
            format!("the payload is {size} bytes as JSON; at most {MAX_EVENT_PAYLOAD_BYTES}"),
        ));
    }
    Ok(())
}

fn invalid(path: &str, message: impl Into<String>) -> KernelError {
    KernelError::Invalid(vec![Issue::new(path, message)])
}

fn note(text: Option<&str>, path: &str) -> Result<()> {
    match text {
        Some(t) if t.chars().count() > MAX_NOTE_CHARS => Err(invalid(
            path,
            format!("at most {MAX_NOTE_CHARS} characters"),
        )),
        Some(t) if t.contains('\0') => Err(invalid(
            path,
            "text may not contain the NUL character (U+0000)",
        )),
        _ => Ok(()),
    }
}

/// Refuses a command whose result could not be stored and read back: a context (as it
/// will be after the command's merge) too deep or too large, a reason or comment too long.
/// Checked under the core's lock before the core applies the command, so a refused
/// command changes nothing — whoever sent it (the API, a rule, the outbox).
pub fn check_command(core: &Scheduler, command: &Command) -> Result<()> {
    // The context after merging `patch`, and whether its `record` is still the bound
    // record's snapshot (the patch did not replace it).
    let merged = |pid, patch: &Json| -> Option<(Json, bool)> {
        let pcb = core.pcb(pid)?;
        let mut context = (*pcb.context).clone();
        crate::scheduler::core::merge(&mut context, patch);
        Some((
            context,
            pcb.record.is_some() && patch.get("record").is_none(),
        ))
    };
    // A patch is counted whole; then the context it leaves.
    let patched = |pid, patch: &Json, path: &str, snapshot_wins: bool| -> Result<()> {
        check_context(patch, path, false)?;
        match merged(pid, patch) {
            Some((after, snapshot)) => check_context(&after, path, snapshot || snapshot_wins),
            None => Ok(()),
        }
    };
    match command {
        Command::Start {
            context, record, ..
        } => check_context(context, "/context", record.is_some()),
        Command::Complete {
            pid,
            context: Some(patch),
            ..
        } => patched(*pid, patch, "/context", false),
        Command::Signal {
            pid,
            event,
            payload,
            ..
        } => {
            if event.chars().count() > MAX_EVENT_NAME_CHARS {
                return Err(invalid(
                    "/event",
                    format!("at most {MAX_EVENT_NAME_CHARS} characters"),
                ));
            }
            note(Some(event), "/event")?;
            check_context(payload, "/payload", false)?;
            let patch = serde_json::json!({ "signals": { event.clone(): payload } });
            match merged(*pid, &patch) {
                Some((after, snapshot)) => check_context(&after, "/payload", snapshot),
                None => Ok(()),
            }
        }
        Command::Handle(action) => {
            note(action.comment.as_deref(), "/comment")?;
            match &action.context {
                // The handling puts the record as stored in the context after the merge.
                Some(patch) => patched(action.pid, patch, "/context", action.record.is_some()),
                None => Ok(()),
            }
        }
        Command::Suspend { reason, .. }
        | Command::Terminate { reason, .. }
        | Command::Fail { reason, .. }
        | Command::Forward { reason, .. }
        | Command::AddSigner { reason, .. }
        | Command::Return { reason, .. }
        | Command::Withdraw { reason, .. }
        | Command::ChangeState { reason, .. } => note(Some(reason), "/reason"),
        _ => Ok(()),
    }
}

/// How deep a JSON text nests, scanned without parsing (brackets outside strings), so a
/// document can be measured before a parser without a depth limit is let at it.
pub fn text_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Reads a stored JSON document. Anything erpos writes now nests far below serde_json's
/// limit of 128 levels; a document written before the bounds existed may not, and is then
/// read without that limit (up to [`MAX_STORED_DEPTH`], on a thread with a large stack so
/// the parser cannot overflow the caller's) rather than refused. The error says why a
/// document could not be read at all.
pub fn decode_stored<T>(text: &str) -> std::result::Result<T, String>
where
    T: serde::de::DeserializeOwned + Send,
{
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) if e.to_string().contains("recursion limit") => {
            let depth = text_depth(text);
            if depth > MAX_STORED_DEPTH {
                return Err(format!(
                    "nested {depth} levels deep; at most {MAX_STORED_DEPTH} are read back"
                ));
            }
            std::thread::scope(|scope| {
                let reader = std::thread::Builder::new()
                    .name("erpos-deep-read".into())
                    .stack_size(256 * 1024 * 1024)
                    .spawn_scoped(scope, || {
                        let mut de = serde_json::Deserializer::from_str(text);
                        de.disable_recursion_limit();
                        let value = T::deserialize(&mut de).map_err(|e| e.to_string())?;
                        de.end().map_err(|e| e.to_string())?;
                        Ok(value)
                    })
                    .map_err(|e| format!("no thread to read a deep document: {e}"))?;
                reader
                    .join()
                    .unwrap_or_else(|_| Err("reading a deep document failed".into()))
            })
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn deep_stored_documents_are_read_back() -> std::result::Result<(), String> {
        let v: Json = decode_stored(&nested(300))?;
        assert_eq!(json_depth(&v), 300);
        assert!(decode_stored::<Json>(&nested(MAX_STORED_DEPTH + 1)).is_err());
        assert!(decode_stored::<Json>("{not json").is_err());
        assert_eq!(text_depth(r#"{"a": "[[[[", "b": [{}]}"#), 3);
        Ok(())
    }
}
