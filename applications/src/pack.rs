//! Vertical packs: definitions plus sample data, shipped inside the binary.
//!
//! A pack is `seeds/<pack>/pack.json` (DataItems in dependency order, and the record files
//! to load) and `seeds/<pack>/records/<item>.json`. Loading goes through the same services
//! as the API, so a pack is validated exactly like an analyst's input.

use erpos_kernel::Kernel;
use serde::Deserialize;
use serde_json::Value;

/// The pack loader acts as the kernel itself, under the name `pack`: the one named
/// capability that passes the application layer's grant checks. Its changes are audited
/// (and its records' histories kept) under that name like anyone's.
pub fn loader() -> erpos_kernel::caller::Caller {
    erpos_kernel::caller::Caller::system("pack")
}

/// A pack's manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The pack's name.
    pub name: String,
    /// The pack's label.
    pub label: erpos_design::Label,
    /// DataItem definitions, in dependency order.
    pub data_items: Vec<Value>,
    /// The items that have a records file, in load order.
    #[serde(default)]
    pub records: Vec<String>,
}

/// The clinic pack: the manifest and each records file, embedded at build time.
pub struct Pack {
    /// `pack.json`.
    pub manifest: &'static str,
    /// `processes.json`: resource types, resources, roles (with their permissions), users,
    /// services and demo visits.
    pub processes: Option<&'static str>,
    /// `(item, records/<item>.json)`.
    pub records: &'static [(&'static str, &'static str)],
    /// `leave.json`: the leave request (departments, roles, people, its form and service).
    pub leave: Option<&'static str>,
}

/// The medical-aesthetics clinic (医美诊所).
pub const CLINIC: Pack = Pack {
    manifest: include_str!("../../seeds/clinic/pack.json"),
    processes: Some(include_str!("../../seeds/clinic/processes.json")),
    leave: Some(include_str!("../../seeds/clinic/leave.json")),
    records: &[
        ("room", include_str!("../../seeds/clinic/records/room.json")),
        (
            "device",
            include_str!("../../seeds/clinic/records/device.json"),
        ),
        (
            "practitioner",
            include_str!("../../seeds/clinic/records/practitioner.json"),
        ),
        (
            "treatment",
            include_str!("../../seeds/clinic/records/treatment.json"),
        ),
        (
            "patient",
            include_str!("../../seeds/clinic/records/patient.json"),
        ),
    ],
};

/// What loading a pack did.
#[derive(Debug, Default)]
pub struct Loaded {
    /// DataItems defined.
    pub data_items: usize,
    /// Records created.
    pub records: usize,
    /// Services published.
    pub services: usize,
    /// Processes started.
    pub processes: usize,
}

/// The process part of a pack.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Processes {
    /// Working calendars, first: resources name them.
    #[serde(default)]
    calendars: Vec<Value>,
    #[serde(default)]
    resource_types: Vec<Value>,
    #[serde(default)]
    resources: Vec<Value>,
    #[serde(default)]
    roles: Vec<Value>,
    #[serde(default)]
    users: Vec<Value>,
    /// Stock materials, before the treatments that consume them.
    #[serde(default)]
    materials: Vec<Value>,
    /// Treatments: what a visit of each needs (after users: their skills).
    #[serde(default)]
    treatments: Vec<Value>,
    /// Stock received: a receipt body, with `expires_in_days` (counted from the day the
    /// demo loads, so its lots near expiry stay near) instead of `expires_on`.
    #[serde(default)]
    receipts: Vec<Value>,
    #[serde(default)]
    services: Vec<Value>,
    /// ServiceRules, after the services they start (the follow-ups at 1, 7 and 30 days).
    #[serde(default)]
    rules: Vec<Value>,
    visits: Option<Visits>,
}

/// Demo processes: one visit for each of the first `count` records of `item`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Visits {
    service: String,
    item: String,
    count: usize,
    /// The branch whose desk the walk-ins came to (their `context.branch`).
    #[serde(default)]
    branch: Option<String>,
}

/// Loads `pack` into `kernel`: defines every DataItem not yet defined, then creates the
/// sample records. Fails on the first invalid definition or record, naming it.
pub async fn load(kernel: &Kernel, pack: &Pack) -> anyhow::Result<Loaded> {
    let manifest: Manifest = serde_json::from_str(pack.manifest)?;
    let mut loaded = Loaded::default();
    for def in &manifest.data_items {
        let name = def.get("name").and_then(Value::as_str).unwrap_or_default();
        if !name.is_empty() && kernel.definitions.schema().catalog.get(name).is_some() {
            continue;
        }
        erpos_kernel::app::design::create_data_item(kernel, &loader(), def)
            .await
            .map_err(|e| anyhow::anyhow!("pack '{}', DataItem '{name}': {e}", manifest.name))?;
        loaded.data_items += 1;
    }
    for item in &manifest.records {
        let Some((_, text)) = pack.records.iter().find(|(i, _)| i == item) else {
            anyhow::bail!(
                "pack '{}' lists records of '{item}' but ships no file for them",
                manifest.name
            );
        };
        let rows: Vec<Value> = serde_json::from_str(text)?;
        for (i, row) in rows.iter().enumerate() {
            kernel
                .records
                .create(item, row, Some("pack"))
                .await
                .map_err(|e| {
                    anyhow::anyhow!("pack '{}', {item} record #{i}: {e}", manifest.name)
                })?;
            loaded.records += 1;
        }
    }
    if let Some(text) = pack.processes {
        load_processes(kernel, &manifest.name, text, &mut loaded).await?;
    }
    if let Some(text) = pack.leave {
        load_leave(kernel, text, &mut loaded).await?;
    }
    Ok(loaded)
}

/// Loads the leave request: the organisation it runs in, its form and its service (the
/// one `kernel/http/tests/leave_api.rs` and `erpos bench tasks` run).
pub async fn load_leave(kernel: &Kernel, text: &str, loaded: &mut Loaded) -> anyhow::Result<()> {
    let seed: Value = serde_json::from_str(text)?;
    let list = |key: &str| seed[key].as_array().cloned().unwrap_or_default();
    let at = |what: &str, i: usize, e: erpos_kernel::KernelError| {
        anyhow::anyhow!("leave request, {what} #{i}: {e}")
    };
    for (i, d) in list("departments").iter().enumerate() {
        erpos_kernel::app::organisation::save_department(kernel, &loader(), d)
            .await
            .map_err(|e| at("department", i, e))?;
    }
    for (i, r) in list("roles").iter().enumerate() {
        erpos_kernel::app::organisation::save_role(kernel, &loader(), r)
            .await
            .map_err(|e| at("role", i, e))?;
    }
    for (i, u) in list("users").iter().enumerate() {
        erpos_kernel::app::organisation::save_user(kernel, &loader(), u)
            .await
            .map_err(|e| at("user", i, e))?;
    }
    if kernel.definitions.schema().catalog.get("qingjia").is_none() {
        erpos_kernel::app::design::create_data_item(kernel, &loader(), &seed["data_item"])
            .await
            .map_err(|e| at("DataItem", 0, e))?;
        loaded.data_items += 1;
    }
    let draft = erpos_kernel::app::design::save_service(kernel, &loader(), &seed["service"])
        .await
        .map_err(|e| at("service", 0, e))?;
    erpos_kernel::app::design::publish_service(kernel, &loader(), &draft.name, &Default::default())
        .await
        .map_err(|e| at("service", 0, e))?;
    loaded.services += 1;
    Ok(())
}

/// Loads resource types, resources, users and services, then starts the demo visits.
async fn load_processes(
    kernel: &Kernel,
    pack: &str,
    text: &str,
    loaded: &mut Loaded,
) -> anyhow::Result<()> {
    let p: Processes = serde_json::from_str(text)?;
    let at = |what: &str, i: usize, e: erpos_kernel::KernelError| {
        anyhow::anyhow!("pack '{pack}', {what} #{i}: {e}")
    };
    for (i, c) in p.calendars.iter().enumerate() {
        erpos_kernel::app::design::save_calendar(kernel, &loader(), c)
            .await
            .map_err(|e| at("calendar", i, e))?;
    }
    for (i, t) in p.resource_types.iter().enumerate() {
        erpos_kernel::app::design::save_resource_type(kernel, &loader(), t)
            .await
            .map_err(|e| at("resource type", i, e))?;
    }
    for (i, r) in p.resources.iter().enumerate() {
        erpos_kernel::app::organisation::save_resource(kernel, &loader(), r)
            .await
            .map_err(|e| at("resource", i, e))?;
    }
    for (i, r) in p.roles.iter().enumerate() {
        erpos_kernel::app::organisation::save_role(kernel, &loader(), r)
            .await
            .map_err(|e| at("role", i, e))?;
    }
    for (i, u) in p.users.iter().enumerate() {
        erpos_kernel::app::organisation::save_user(kernel, &loader(), u)
            .await
            .map_err(|e| at("user", i, e))?;
    }
    for (i, m) in p.materials.iter().enumerate() {
        erpos_kernel::app::stock::put_material(kernel, &loader(), m)
            .await
            .map_err(|e| at("material", i, e))?;
    }
    // Services before treatments: a treatment names the service its visits run.
    for (i, s) in p.services.iter().enumerate() {
        let draft = erpos_kernel::app::design::save_service(kernel, &loader(), s)
            .await
            .map_err(|e| at("service", i, e))?;
        erpos_kernel::app::design::publish_service(
            kernel,
            &loader(),
            &draft.name,
            &Default::default(),
        )
        .await
        .map_err(|e| at("service", i, e))?;
        loaded.services += 1;
    }
    for (i, r) in p.rules.iter().enumerate() {
        erpos_kernel::app::design::save_rule(kernel, &loader(), r, "defining rules")
            .await
            .map_err(|e| at("rule", i, e))?;
    }
    for (i, t) in p.treatments.iter().enumerate() {
        erpos_kernel::app::treatments::put(kernel, &loader(), t)
            .await
            .map_err(|e| at("treatment", i, e))?;
    }
    let now = kernel.clock.now_ms();
    for (i, r) in p.receipts.iter().enumerate() {
        let mut body = r.clone();
        if let Some(map) = body.as_object_mut()
            && let Some(days) = map.remove("expires_in_days").and_then(|d| d.as_i64())
        {
            let on = chrono::DateTime::from_timestamp_millis(now + days * 86_400_000)
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            map.insert("expires_on".into(), Value::String(on));
        }
        erpos_kernel::app::stock::receive(kernel, &loader(), &body)
            .await
            .map_err(|e| at("receipt", i, e))?;
    }
    if let Some(v) = p.visits {
        let query = erpos_kernel::records::ListQuery::parse(
            &kernel.definitions.schema().catalog,
            &v.item,
            &[
                ("limit".to_owned(), v.count.to_string()),
                ("sort".to_owned(), "created_at".to_owned()),
            ],
        )?;
        let page = kernel.records.list(&v.item, &query).await?;
        for record in page.items {
            let id = record
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let start = erpos_kernel::app::processes::StartProcess {
                service: v.service.clone(),
                binding: Some(erpos_kernel::app::processes::Binding::Existing {
                    item: v.item.clone(),
                    id,
                }),
                context: match &v.branch {
                    Some(b) => serde_json::json!({"branch": b}),
                    None => serde_json::json!({}),
                },
                ..Default::default()
            };
            erpos_kernel::app::processes::start(kernel, &loader(), start).await?;
            loaded.processes += 1;
        }
    }
    Ok(())
}

/// Gives every user of the loaded pack the password `password`, and adds the user `admin`
/// (role `administrator`, every grant) with it too: the demo, run without a bootstrap
/// token, must let a person log in. Never used outside the demo.
pub async fn demo_passwords(kernel: &Kernel, password: &str) -> anyhow::Result<()> {
    erpos_kernel::app::organisation::save_user(
        kernel,
        &loader(),
        &serde_json::json!({"id": "admin", "name": "管理员", "roles": ["administrator"]}),
    )
    .await?;
    let users: Vec<String> = kernel
        .engine
        .read(|c| c.operators().map(|o| o.id.clone()).collect())
        .await;
    for user in users {
        let change = erpos_kernel::app::access::SetPassword {
            user: &user,
            password: Some(password),
            old_password: None,
            client: None,
            keep_session: None,
        };
        erpos_kernel::app::access::set_password(kernel, &loader(), change).await?;
    }
    Ok(())
}

/// The demo's week (`seeds/clinic/demo_week.json`): how many visits each branch books a
/// day, which treatments they cycle through, and who holds a recharged 储值卡.
const DEMO_WEEK: &str = include_str!("../../seeds/clinic/demo_week.json");

/// The shape of `demo_week.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Week {
    /// Days booked, from tomorrow.
    days: i64,
    /// Visits a day, per branch.
    visits_per_day: std::collections::BTreeMap<String, usize>,
    /// The treatments each branch's visits cycle through (those it has rooms and devices
    /// for).
    treatments: std::collections::BTreeMap<String, Vec<String>>,
    /// Patients (by record number) with a 储值卡 and what was recharged on it.
    prepaid: Vec<Prepaid>,
}

/// A recharged 储值卡 of the demo.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Prepaid {
    record_no: String,
    recharge: String,
}

/// What [`demo_week`] made.
#[derive(Debug, Default, Clone, Copy)]
pub struct WeekBooked {
    /// Visits booked (each with its visit process).
    pub bookings: usize,
    /// Visits the week had no slot for (the branch was full that day).
    pub full: usize,
    /// 储值卡 opened and recharged.
    pub accounts: usize,
}

/// Books the demo's week at both branches, each visit on the first free slot of its day
/// (so the week looks like a clinic's: tomorrow's visits already reminded and waiting at
/// check-in, the later ones NEW until the day before), and opens the 储值卡 of
/// `demo_week.json`. Only `erpos demo` runs it: the tests load the pack without it, so
/// their slots are free.
pub async fn demo_week(kernel: &Kernel) -> anyhow::Result<WeekBooked> {
    let week: Week = serde_json::from_str(DEMO_WEEK)?;
    let caller = loader();
    let query = erpos_kernel::records::ListQuery::parse(
        &kernel.definitions.schema().catalog,
        "patient",
        &[
            ("limit".to_owned(), "500".to_owned()),
            ("sort".to_owned(), "created_at".to_owned()),
        ],
    )?;
    let patients = kernel.records.list("patient", &query).await?.items;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let shanghai = chrono::FixedOffset::east_opt(8 * 3600)
        .ok_or_else(|| anyhow::anyhow!("UTC+8 is a valid offset"))?;
    let today = chrono::DateTime::from_timestamp_millis(kernel.clock.now_ms())
        .ok_or_else(|| anyhow::anyhow!("the clock is out of range"))?
        .with_timezone(&shanghai)
        .date_naive();
    let mut made = WeekBooked::default();
    let mut next_patient = 0;
    for d in 1..=week.days {
        let day = today + chrono::Duration::days(d);
        for (branch, per_day) in &week.visits_per_day {
            let list = week
                .treatments
                .get(branch)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for k in 0..*per_day {
                let (Some(treatment), Some(patient)) = (
                    list.get((d as usize * per_day + k) % list.len().max(1)),
                    patients.get(next_patient % patients.len().max(1)),
                ) else {
                    continue;
                };
                next_patient += 1;
                let params: Vec<(String, String)> = [
                    ("treatment", treatment.clone()),
                    ("branch", branch.clone()),
                    ("from", format!("{day}T09:00:00+08:00")),
                    ("to", format!("{day}T21:00:00+08:00")),
                    ("limit", "1".to_owned()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                let slots = erpos_kernel::app::slots::search(kernel, &caller, &params).await?;
                let Some(slot) = slots.slots.first() else {
                    made.full += 1;
                    continue;
                };
                let body = serde_json::json!({
                    "resources": slot.resources, "operators": slot.operators,
                    "start": slot.start, "end": slot.end,
                    "buffer_before_minutes": slot.buffer_before_minutes,
                    "buffer_after_minutes": slot.buffer_after_minutes,
                    "treatment": treatment, "patient": text(patient, "id"),
                    "note": "演示预约",
                });
                erpos_kernel::app::bookings::book(kernel, &caller, &body).await?;
                made.bookings += 1;
            }
        }
    }
    for p in &week.prepaid {
        let Some(holder) = patients
            .iter()
            .find(|r| text(r, "record_no").as_deref() == Some(p.record_no.as_str()))
            .and_then(|r| text(r, "id"))
        else {
            anyhow::bail!(
                "demo_week.json names patient {} who is not in the pack",
                p.record_no
            );
        };
        let account = erpos_kernel::app::ledger::open(
            kernel,
            &caller,
            &serde_json::json!({"holder": holder, "label": "储值卡"}),
        )
        .await?;
        erpos_kernel::app::ledger::post(
            kernel,
            &caller,
            &account.id,
            &serde_json::json!({"kind": "recharge", "amount": p.recharge,
                "reference": format!("演示充值-{}", p.record_no)}),
        )
        .await?;
        made.accounts += 1;
    }
    Ok(made)
}
