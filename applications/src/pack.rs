//! Vertical packs: definitions plus sample data, shipped inside the binary.
//!
//! A pack is `seeds/<pack>/pack.json` (DataItems in dependency order, and the record files
//! to load) and `seeds/<pack>/records/<item>.json`. Loading goes through the same services
//! as the API, so a pack is validated exactly like an analyst's input.

use erpos_kernel::Kernel;
use serde::Deserialize;
use serde_json::Value;

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
    /// `(item, records/<item>.json)`.
    pub records: &'static [(&'static str, &'static str)],
}

/// The medical-aesthetics clinic (医美诊所).
pub const CLINIC: Pack = Pack {
    manifest: include_str!("../../seeds/clinic/pack.json"),
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
        kernel
            .definitions
            .create(def)
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
    Ok(loaded)
}
