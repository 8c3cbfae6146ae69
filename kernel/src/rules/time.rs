//! Time rules: a moment, a cron schedule, or an offset from a record's date field
//! ("7 days after treatment_date").
//!
//! Each time rule has a watermark: the instant up to which it has fired. A round looks for
//! what fell due in (watermark, now], appends one `time` event per due occurrence and moves
//! the watermark, in one transaction, so every due time fires exactly once, including
//! those that fell while the server was down (they fire on start). An offset rule needs no
//! timer per record: the due records are those whose field lies in the window shifted back
//! by the offset, found with one range query on the field.

use chrono::{DateTime, NaiveDate};
use erpos_design::ddl::table_name;
use erpos_design::rule::{EventKind, Instruction, ServiceRule, TimeSpec};
use erpos_design::{FieldType, Recurrence};
use serde_json::json;

use super::Rules;
use super::exec::Situation;
use crate::error::Result;
use crate::events::NewEvent;
use crate::scheduler::AlarmKind;
use crate::sql::Sql;

const DAY_MS: i64 = 86_400_000;
/// The most occurrences one rule fires in a round (the rest wait for the next round).
const MAX_PER_ROUND: usize = 1_000;

/// The watermark's row in `rule_cursors`.
pub fn cursor_name(rule: &str) -> String {
    format!("time:{rule}")
}

/// Checks a cron expression the way the time service will read it.
pub fn check_cron(expression: &str) -> std::result::Result<(), String> {
    Recurrence::check(expression)
}

/// Fires every time rule's due occurrences.
pub async fn fire_due(rules: &Rules) -> Result<()> {
    let now = rules.clock.now_ms();
    for rule in rules
        .all()
        .iter()
        .filter(|r| r.enabled && r.event.kind == Some(EventKind::Time))
    {
        let Some(spec) = rule.event.time_spec() else {
            continue;
        };
        let mark = watermark(rules, &rule.name).await?.unwrap_or(now);
        if mark >= now {
            continue;
        }
        let due: Vec<NewEvent> = match &spec {
            TimeSpec::At(at) if mark < *at && *at <= now => vec![event(rule, None, *at, None)],
            TimeSpec::At(_) => Vec::new(),
            // Occurrences missed while the server was down fire once, on start, with
            // their count: a daily reminder does not send three after a three-day outage.
            TimeSpec::Cron(expression) => {
                let offset = rule.event.utc_offset_minutes.unwrap_or(0);
                let schedule = Recurrence::parse(expression, offset)?;
                let mut due = Vec::new();
                let mut t = mark;
                while let Some(next) = schedule.next_after(t).filter(|n| *n <= now) {
                    due.push(next);
                    t = next;
                    if due.len() >= MAX_PER_ROUND {
                        break;
                    }
                }
                match (due.first(), due.last()) {
                    (Some(_), Some(last)) => {
                        let mut e = event(rule, None, *last, None);
                        if let Some(p) = e.payload.as_object_mut() {
                            p.insert("occurrences".into(), json!(due.len()));
                        }
                        vec![e]
                    }
                    _ => Vec::new(),
                }
            }
            TimeSpec::Offset {
                item,
                field,
                offset_ms,
                at_time_ms,
            } => offset_due(rules, rule, item, field, *offset_ms, *at_time_ms, mark, now).await?,
        };
        let upto = if due.len() >= MAX_PER_ROUND {
            due.iter()
                .filter_map(|e| {
                    e.payload
                        .get("due_at_ms")
                        .and_then(serde_json::Value::as_i64)
                })
                .max()
                .unwrap_or(now)
        } else {
            now
        };
        let mut statements: Vec<Sql> = due.iter().map(|e| rules.events.insert_sql(e)).collect();
        let mut sql = Sql::new(rules.db.dialect());
        sql.push("INSERT INTO rule_cursors (name, position) VALUES (")
            .text(cursor_name(&rule.name))
            .push(", ")
            .int(upto)
            .push(") ON CONFLICT (name) DO UPDATE SET position = excluded.position");
        statements.push(sql);
        rules.db.write_atomically(statements).await?;
        if !due.is_empty() {
            rules.events.wake.notify_one();
        }
    }
    Ok(())
}

async fn watermark(rules: &Rules, rule: &str) -> Result<Option<i64>> {
    let mut sql = Sql::new(rules.db.dialect());
    sql.push("SELECT CAST(position AS TEXT) FROM rule_cursors WHERE name = ")
        .text(cursor_name(rule));
    crate::store::scalar(&rules.db, "rule_cursors", &["position"], sql).await
}

fn event(
    rule: &ServiceRule,
    record: Option<(&str, &str)>,
    due_ms: i64,
    value: Option<&str>,
) -> NewEvent {
    NewEvent {
        kind: EventKind::Time,
        subject: record.map(|r| r.0.to_owned()),
        record_id: record.map(|r| r.1.to_owned()),
        pid: None,
        payload: json!({
            "rule": rule.name, "due_at_ms": due_ms, "field_value": value,
            "record": record.map(|(item, id)| json!({"item": item, "id": id})),
        }),
        depth: 0,
    }
}

/// Records whose `field` + offset fell in (mark, now].
#[allow(clippy::too_many_arguments)]
async fn offset_due(
    rules: &Rules,
    rule: &ServiceRule,
    item: &str,
    field: &str,
    offset_ms: i64,
    at_time_ms: i64,
    mark: i64,
    now: i64,
) -> Result<Vec<NewEvent>> {
    let Some(ty) = rules.records.field_type(item, field) else {
        return Ok(Vec::new());
    };
    let local = rule.event.utc_offset_ms();
    // The field values whose due time can fall in the window, widened by a day on each
    // side for dates and time zones; the exact test is done below.
    let lo = mark - offset_ms - at_time_ms - DAY_MS;
    let hi = now - offset_ms + DAY_MS;
    let bound = |ms: i64| -> Option<String> {
        let t = DateTime::from_timestamp_millis(ms)?;
        Some(match ty {
            FieldType::Date => t.date_naive().format("%Y-%m-%d").to_string(),
            _ => erpos_design::value::format_datetime(&t),
        })
    };
    let d = rules.db.dialect();
    let cast = d.param_cast(ty);
    let mut sql = Sql::new(d);
    sql.push("SELECT ")
        .col_text("id")
        .push(", ")
        .col_text(field)
        .push(" FROM ")
        .ident(&table_name(item));
    sql.push(" WHERE ")
        .ident(field)
        .push(" >= ")
        .param(bound(lo), cast)
        .push(" AND ")
        .ident(field)
        .push(" <= ")
        .param(bound(hi), cast);
    sql.push(" ORDER BY ").ident(field).push(", \"id\"");
    let rows = rules.db.fetch(sql).await?;
    let mut out = Vec::new();
    for row in rows {
        let (Some(id), Some(value)) = (
            row.first().cloned().flatten(),
            row.get(1).cloned().flatten(),
        ) else {
            continue;
        };
        let base = match ty {
            FieldType::Date => NaiveDate::parse_from_str(value.get(..10).unwrap_or(""), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_millis() - local + at_time_ms),
            _ => erpos_design::value::parse_datetime(&value).map(|t| t.timestamp_millis()),
        };
        let Some(base) = base else { continue };
        let due = base + offset_ms;
        if mark < due && due <= now {
            out.push(event(rule, Some((item, &id)), due, Some(&value)));
            if out.len() >= MAX_PER_ROUND {
                break;
            }
        }
    }
    out.sort_by_key(|e| {
        e.payload
            .get("due_at_ms")
            .and_then(serde_json::Value::as_i64)
    });
    Ok(out)
}

/// Handles every due deadline alarm: its event, and for a passed deadline the step's
/// escalation (notify, raise the priority, reassign, take a transition), in one
/// transaction with the alarm's mark, so each alarm fires once across restarts.
pub async fn fire_deadlines(rules: &Rules) -> Result<()> {
    for alarm in rules.engine.alarms_due().await {
        let found = rules
            .engine
            .read(|c| {
                let pcb = c.pcb(alarm.pid)?.clone();
                let svc = c.service(&pcb.service, pcb.version)?.clone();
                let step = svc.step(pcb.step.as_deref()?)?.clone();
                // The step's own timeout notice, to whoever holds its work items.
                let notice = match alarm.kind {
                    AlarmKind::Passed => c.timeout_notice(alarm.pid),
                    AlarmKind::Warning => None,
                };
                Some((pcb, step, notice))
            })
            .await;
        let Some((pcb, step, notice)) = found else {
            rules.engine.clear_alarm(&alarm).await;
            continue;
        };
        let now = rules.clock.now_ms();
        let kind_text = match alarm.kind {
            AlarmKind::Warning => "warning",
            AlarmKind::Passed => "passed",
        };
        let mut tx = rules.db.begin().await?;
        let mut mark = tx.sql();
        mark.push("INSERT INTO deadline_marks (pid, kind, deadline_ms, at_ms) VALUES (")
            .int(alarm.pid as i64)
            .push(", ")
            .text(kind_text);
        mark.push(", ")
            .int(alarm.deadline_ms)
            .push(", ")
            .int(now)
            .push(") ON CONFLICT (pid, kind, deadline_ms) DO NOTHING RETURNING CAST(pid AS TEXT)");
        if crate::store::Select::raw("deadline_marks", &["pid"], mark)
            .fetch_in(&mut tx)
            .await?
            .is_empty()
        {
            drop(tx);
            rules.engine.clear_alarm(&alarm).await;
            continue;
        }
        let event_kind = match alarm.kind {
            AlarmKind::Warning => EventKind::DeadlineWarning,
            AlarmKind::Passed => EventKind::DeadlinePassed,
        };
        let record = pcb
            .record
            .as_ref()
            .map(|(item, id)| json!({"item": item, "id": id}));
        let due = DateTime::from_timestamp_millis(alarm.deadline_ms)
            .map(|t| erpos_design::value::format_datetime(&t))
            .unwrap_or_default();
        if rules
            .events
            .interest()
            .wants(event_kind, Some(&pcb.service))
        {
            tx.execute(rules.events.insert_sql(&NewEvent {
                kind: event_kind,
                subject: Some(pcb.service.to_string()),
                record_id: pcb.record.as_ref().map(|r| r.1.clone()),
                pid: Some(pcb.id),
                payload: json!({
                    "service": &*pcb.service, "step": step.name, "deadline_ms": alarm.deadline_ms,
                    "deadline": due, "record": record, "context": &*pcb.context,
                }),
                depth: 0,
            }))
            .await?;
        }
        let escalation = step.escalation.clone().unwrap_or_default();
        let step_label = step
            .label
            .as_ref()
            .map_or(step.name.clone(), |l| l.zh.clone());
        let mut list = Vec::new();
        if !escalation.notify.is_empty() {
            let (title, body) = match alarm.kind {
                AlarmKind::Warning => (
                    format!("即将超时：{step_label}"),
                    format!("流程 {} 的「{step_label}」将于 {due} 到期", pcb.id),
                ),
                AlarmKind::Passed => (
                    format!("已超时：{step_label}"),
                    format!("流程 {} 的「{step_label}」已于 {due} 到期", pcb.id),
                ),
            };
            list.push(Instruction::Notify {
                to: escalation.notify.clone(),
                to_expr: None,
                title,
                body,
            });
        }
        if let Some(n) = notice {
            list.push(Instruction::Notify {
                to: n.to,
                to_expr: None,
                title: n.title,
                body: n.body,
            });
        }
        if alarm.kind == AlarmKind::Passed {
            if let Some(priority) = escalation.raise_priority {
                list.push(Instruction::SetPriority {
                    process: None,
                    priority,
                });
            }
            if let Some(user) = &escalation.reassign {
                list.push(Instruction::AssignOperator {
                    process: None,
                    user: user.clone(),
                });
            }
            if let Some(transition) = &escalation.transition {
                list.push(Instruction::TakeTransition {
                    process: None,
                    transition: transition.clone(),
                });
            }
        }
        let situation = Situation {
            rule: None,
            event: None,
            record: match &pcb.record {
                Some((item, id)) => rules
                    .record(item, id)
                    .await
                    .map(|r| (item.clone(), id.clone(), r)),
                None => None,
            },
            pid: Some(pcb.id),
            context: (*pcb.context).clone(),
            depth: 0,
            by: None,
        };
        let queued = match rules.executor.run(&mut tx, &situation, &list, now).await {
            Ok(ran) => ran.queued,
            Err(e) => {
                tracing::warn!(pid = pcb.id, error = %e, "escalation failed");
                false
            }
        };
        tx.commit().await?;
        rules.engine.clear_alarm(&alarm).await;
        rules.events.wake.notify_one();
        if queued {
            rules.outbox.wake.notify_one();
        }
    }
    Ok(())
}
