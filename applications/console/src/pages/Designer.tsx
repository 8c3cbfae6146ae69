// The DataItem designer (issue 15 §2), for analysts (`design`): the DataItems, and an
// editor of one — its label, what it inherits (extends) and consists of (composed child
// DataItems, one or many), and its fields (type, required, enum options, a reference's
// target, bounds: a text's length and a number's range, a computed field's expression) — with the form
// it would generate drawn live beside it (`POST /data-items/preview`: checked as saving
// would check it, nothing stored; a problem is shown at the field row it names). Saving a
// new one creates its table; saving a change of an existing one shows the migration plan
// with its counts first, and nothing changes until the analyst applies it (or discards it).
import { useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { useTranslation } from "react-i18next";
import Form from "@rjsf/core";
import validator from "@rjsf/validator-ajv8";
import { api, messageOf, type ErrorBody, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { ErrorLine } from "./common";
import { drawable, uiSchemaOf } from "./RecordForm";
import { DesignerList, DesignerTabs } from "./DesignerTabs";

type FieldType = Schemas["FieldType"];
type Plan = Schemas["MigrationPlan"];

/** A field as the editor holds it (options as one comma-separated text). */
interface Row {
  zh: string;
  name: string;
  type: FieldType;
  required: boolean;
  options: string;
  extra: Record<string, unknown>;
}

/** The field keys the row's detail inputs edit (kept in `extra`, left out when empty). */
type Detail = "target" | "compute" | "min" | "max" | "max_length";

/** `extra` with `key` set to `value`, or without it when `value` is empty. */
function withDetail(extra: Record<string, unknown>, key: Detail, value: string, numeric: boolean): Record<string, unknown> {
  const out = { ...extra };
  if (value.trim() === "") delete out[key];
  else out[key] = numeric ? Number(value) : value;
  return out;
}

/** A detail of a row as its input shows it. */
const detailOf = (r: Row, key: Detail) => (r.extra[key] === undefined || r.extra[key] === null ? "" : String(r.extra[key]));

const TYPES: FieldType[] = ["text", "integer", "decimal", "money", "boolean", "date", "datetime", "enum", "reference", "json"];

function rowOf(f: Schemas["Field"]): Row {
  const { label, name, type, required, options, ...extra } = f;
  return { zh: label.zh, name: name ?? "", type, required: required ?? false, options: (options ?? []).join(","), extra };
}

function definitionOf(zh: string, en: string, name: string, rows: Row[], base: Record<string, unknown>): Record<string, unknown> {
  return {
    ...base,
    ...(name ? { name } : {}),
    label: en ? { zh, en } : { zh },
    fields: rows.map((r) => ({
      ...r.extra,
      label: { zh: r.zh },
      ...(r.name ? { name: r.name } : {}),
      type: r.type,
      ...(r.required ? { required: true } : {}),
      ...(r.type === "enum" ? { options: r.options.split(/[,，]/).map((o) => o.trim()).filter(Boolean) } : {}),
    })),
  };
}

/** The problems of a refused definition, by field row (`/fields/2/type` → row 2). */
function problemsByRow(body: ErrorBody): { rows: Record<number, string[]>; other: string[] } {
  const rows: Record<number, string[]> = {};
  const other: string[] = [];
  for (const d of body.error.details) {
    const m = /^\/fields\/(\d+)/.exec(d.path);
    if (m) (rows[Number(m[1])] ??= []).push(`${d.path}: ${d.message}`);
    else other.push(`${d.path || "/"}: ${d.message}`);
  }
  return { rows, other };
}

/** The `<option>`s of a DataItem picker, by the DataItems' labels. */
function ItemOptions({ items }: { items: Schemas["DataItem"][] }) {
  const { labelOf } = useLabel();
  return (
    <>
      {items.map((d) => (
        <option key={d.name} value={d.name ?? ""}>
          {labelOf(d.label)}
        </option>
      ))}
    </>
  );
}

export function DataItems() {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const [items, setItems] = useState<Schemas["DataItem"][]>([]);
  useEffect(() => {
    void api.GET("/api/v1/data-items").then(({ data }) => setItems(data?.items ?? []));
  }, []);
  return (
    <DesignerList title={t("dataItems")} newLabel={t("newDataItem")} newTo="/designer/new" head={[t("name"), t("identifier"), t("version"), t("fieldLabel")]}>
      {items.map((i) => (
        <tr key={i.name}>
          <td>
            <Link to={`/designer/${i.name}`}>{labelOf(i.label)}</Link>
          </td>
          <td>{i.name}</td>
          <td>v{i.version}</td>
          <td>{i.fields?.length ?? 0}</td>
        </tr>
      ))}
    </DesignerList>
  );
}

export function DataItemEditor() {
  const { name: editing } = useParams();
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const navigate = useNavigate();
  const [zh, setZh] = useState("");
  const [en, setEn] = useState("");
  const [name, setName] = useState("");
  const [rows, setRows] = useState<Row[]>([]);
  const [base, setBase] = useState<Record<string, unknown>>({});
  const [preview, setPreview] = useState<Schemas["Form"] | null>(null);
  const [problems, setProblems] = useState<{ rows: Record<number, string[]>; other: string[] }>({ rows: {}, other: [] });
  const [plan, setPlan] = useState<Plan | null>(null);
  const [destructiveOk, setDestructiveOk] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  // The other DataItems: what a reference looks up, this one extends or consists of.
  const [others, setOthers] = useState<Schemas["DataItem"][]>([]);
  useEffect(() => {
    void api.GET("/api/v1/data-items").then(({ data }) => setOthers((data?.items ?? []).filter((d) => d.name !== editing)));
  }, [editing]);
  const consists = (base.consists as Schemas["Consists"][] | undefined) ?? [];
  const setConsists = (list: Schemas["Consists"][]) => {
    const next = { ...base };
    if (list.length > 0) next.consists = list;
    else delete next.consists;
    setBase(next);
  };
  const detail = (i: number, key: Detail, value: string, numeric = false) => {
    const r = rows[i];
    if (r) set(i, { extra: withDetail(r.extra, key, value, numeric) });
  };

  useEffect(() => {
    if (!editing) return;
    void api.GET("/api/v1/data-items/{name}", { params: { path: { name: editing } } }).then(({ data }) => {
      if (!data) return;
      const { label, fields, name: n, version: _v, ...rest } = data as Schemas["DataItem"] & Record<string, unknown>;
      void _v;
      delete rest.pending_change;
      delete rest.descendants;
      setZh(label.zh);
      setEn(label.en ?? "");
      setName(n ?? "");
      setRows((fields ?? []).map(rowOf));
      setBase(rest);
    });
  }, [editing]);

  const definition = useMemo(() => definitionOf(zh, en, name, rows, base), [zh, en, name, rows, base]);

  // The live preview, a moment after the last keystroke.
  useEffect(() => {
    if (!zh) return;
    const timer = setTimeout(() => {
      void api
        .POST("/api/v1/data-items/preview", {
          params: { query: editing ? { replaces: editing } : {} },
          body: definition as Schemas["DataItem"],
        })
        .then(({ data, error: e }) => {
          if (e) {
            setProblems(problemsByRow(e as ErrorBody));
            return;
          }
          setProblems({ rows: {}, other: [] });
          setPreview(data ?? null);
        });
    }, 300);
    return () => clearTimeout(timer);
  }, [definition, zh, editing]);

  const set = (i: number, change: Partial<Row>) => setRows(rows.map((r, j) => (j === i ? { ...r, ...change } : r)));

  async function save() {
    setError(null);
    setStatus(null);
    if (!editing) {
      const { data, error: e } = await api.POST("/api/v1/data-items", { body: definition as Schemas["DataItem"] });
      if (e) return setError(messageOf(e));
      setStatus(t("madeDataItem"));
      navigate(`/designer/${data?.name ?? ""}`, { replace: true });
      return;
    }
    const { data, error: e } = await api.PUT("/api/v1/data-items/{name}", {
      params: { path: { name: editing } },
      body: definition as Schemas["DataItem"],
    });
    if (e) return setError(messageOf(e));
    setPlan(data?.plan ?? null);
  }

  async function apply() {
    if (!editing) return;
    setError(null);
    const { error: e, response } = await api.POST("/api/v1/data-items/{name}/migration", {
      params: { path: { name: editing } },
      body: destructiveOk ? { confirm_destructive: true } : {},
    });
    if (e) return setError(messageOf(e));
    setPlan(null);
    setStatus(response.status === 202 ? t("migrating") : t("applied"));
  }

  async function discard() {
    if (!editing) return;
    await api.DELETE("/api/v1/data-items/{name}/migration", { params: { path: { name: editing } } });
    setPlan(null);
  }

  const ui = useMemo(() => uiSchemaOf(preview?.layout ?? [], labelOf), [preview, labelOf]);
  const rowsTouched = plan?.steps.reduce((n, s) => n + (s.rows ?? 0), 0) ?? 0;
  return (
    <section className="designer">
      <DesignerTabs />
      <div className="toolbar">
        <Link to="/designer">{t("back")}</Link>
        <h1>{editing ? labelOf({ zh, en }) : t("newDataItem")}</h1>
        {editing && <Link to={`/records/${editing}`}>{t("records")}</Link>}
      </div>
      <ErrorLine error={error} />
      {status && <p role="status">{status}</p>}
      <div className="designer-panes">
        <form
          aria-label={t("definition")}
          onSubmit={(e) => {
            e.preventDefault();
            void save();
          }}
        >
          <label>
            {t("labelZh")}
            <input value={zh} onChange={(e) => setZh(e.target.value)} required />
          </label>
          <label>
            {t("labelEn")}
            <input value={en} onChange={(e) => setEn(e.target.value)} />
          </label>
          <label>
            {t("identifier")}
            <input value={name} placeholder={t("derived")} disabled={Boolean(editing)} onChange={(e) => setName(e.target.value)} />
          </label>
          <label>
            {t("extends")}
            <select
              value={typeof base.extends === "string" ? base.extends : ""}
              onChange={(e) => {
                const next = { ...base };
                if (e.target.value) next.extends = e.target.value;
                else delete next.extends;
                setBase(next);
              }}
            >
              <option value="">{t("extendsNone")}</option>
              <ItemOptions items={others} />
            </select>
          </label>
          <fieldset className="consists">
            <legend>{t("consists")}</legend>
            {consists.map((c, j) => (
              <div key={j} className="actions" data-testid={`consists-${j}`}>
                <select aria-label={`${t("childItem")} ${j + 1}`} value={c.item} onChange={(e) => setConsists(consists.map((x, at) => (at === j ? { ...x, item: e.target.value } : x)))}>
                  <option value="" />
                  <ItemOptions items={others} />
                </select>
                <select
                  aria-label={`${t("cardinality")} ${j + 1}`}
                  value={c.cardinality}
                  onChange={(e) => setConsists(consists.map((x, at) => (at === j ? { ...x, cardinality: e.target.value as Schemas["Cardinality"] } : x)))}
                >
                  <option value="many">{t("cardinality_many")}</option>
                  <option value="one">{t("cardinality_one")}</option>
                </select>
                <button type="button" className="link" onClick={() => setConsists(consists.filter((_, at) => at !== j))}>
                  {t("remove")}
                </button>
              </div>
            ))}
            <button type="button" onClick={() => setConsists([...consists, { item: "", cardinality: "many" }])}>
              {t("addChild")}
            </button>
          </fieldset>
          <table className="fields">
            <thead>
              <tr>
                <th>{t("fieldLabel")}</th>
                <th>{t("identifier")}</th>
                <th>{t("type")}</th>
                <th>{t("required")}</th>
                <th>{t("fieldDetails")}</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {rows.map((r, i) => (
                <tr key={i} data-testid={`field-${i}`}>
                  <td>
                    <input aria-label={`${t("fieldLabel")} ${i + 1}`} value={r.zh} onChange={(e) => set(i, { zh: e.target.value })} />
                    {problems.rows[i]?.map((p) => (
                      <div key={p} className="error">
                        {p}
                      </div>
                    ))}
                  </td>
                  <td>
                    <input aria-label={`${t("identifier")} ${i + 1}`} value={r.name} placeholder={t("derived")} onChange={(e) => set(i, { name: e.target.value })} />
                  </td>
                  <td>
                    <select aria-label={`${t("type")} ${i + 1}`} value={r.type} onChange={(e) => set(i, { type: e.target.value as FieldType })}>
                      {TYPES.map((ty) => (
                        <option key={ty} value={ty}>
                          {ty}
                        </option>
                      ))}
                    </select>
                  </td>
                  <td>
                    <input type="checkbox" aria-label={`${t("required")} ${i + 1}`} checked={r.required} onChange={(e) => set(i, { required: e.target.checked })} />
                  </td>
                  <td className="details">
                    {r.type === "enum" && (
                      <input aria-label={`${t("options")} ${i + 1}`} value={r.options} placeholder="银卡,金卡" onChange={(e) => set(i, { options: e.target.value })} />
                    )}
                    {r.type === "reference" && (
                      <select aria-label={`${t("target")} ${i + 1}`} value={detailOf(r, "target")} onChange={(e) => detail(i, "target", e.target.value)}>
                        <option value="" />
                        <ItemOptions items={others} />
                      </select>
                    )}
                    {r.type === "text" && (
                      <input
                        type="number"
                        min={1}
                        aria-label={`${t("maxLength")} ${i + 1}`}
                        placeholder={t("maxLength")}
                        value={detailOf(r, "max_length")}
                        onChange={(e) => detail(i, "max_length", e.target.value, true)}
                      />
                    )}
                    {(r.type === "integer" || r.type === "decimal" || r.type === "money") && (
                      <>
                        <input type="number" step="any" aria-label={`${t("min")} ${i + 1}`} placeholder={t("min")} value={detailOf(r, "min")} onChange={(e) => detail(i, "min", e.target.value, true)} />
                        <input type="number" step="any" aria-label={`${t("max")} ${i + 1}`} placeholder={t("max")} value={detailOf(r, "max")} onChange={(e) => detail(i, "max", e.target.value, true)} />
                      </>
                    )}
                    {r.type !== "reference" && r.type !== "json" && (
                      <input
                        aria-label={`${t("computed")} ${i + 1}`}
                        placeholder={t("computed")}
                        title="record.danjia * record.shuliang"
                        value={detailOf(r, "compute")}
                        onChange={(e) => detail(i, "compute", e.target.value)}
                      />
                    )}
                  </td>
                  <td>
                    <button type="button" className="link" onClick={() => setRows(rows.filter((_, j) => j !== i))}>
                      {t("remove")}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {problems.other.map((p) => (
            <div key={p} className="error">
              {p}
            </div>
          ))}
          <div className="actions">
            <button type="button" onClick={() => setRows([...rows, { zh: "", name: "", type: "text", required: false, options: "", extra: {} }])}>
              {t("addField")}
            </button>
            <button type="submit">{editing ? t("proposeChange") : t("create")}</button>
          </div>
        </form>
        <section className="preview" aria-label={t("preview")}>
          <h2>{t("preview")}</h2>
          {preview && (
            <Form schema={drawable(preview.schema)} uiSchema={{ ...ui, "ui:submitButtonOptions": { norender: true } }} validator={validator} noValidate disabled />
          )}
        </section>
      </div>
      {plan && (
        <section className="plan" aria-label={t("plan")}>
          <h2>{t("plan")}</h2>
          <p data-testid="plan-summary">
            {t("planSummary", { steps: plan.steps.length, rows: rowsTouched, from: plan.from_version, to: plan.to_version })}
          </p>
          <ol>
            {plan.steps.map((s, i) => (
              <li key={i} className={s.destructive ? "destructive" : ""}>
                {s.description}
                {s.rows != null && ` · ${t("rowsTouched", { count: s.rows })}`}
                <details>
                  <summary>SQL</summary>
                  <pre>{s.sql.join("\n")}</pre>
                </details>
              </li>
            ))}
          </ol>
          {plan.destructive && (
            <label>
              <input type="checkbox" checked={destructiveOk} onChange={(e) => setDestructiveOk(e.target.checked)} /> {t("confirmDestructive")}
            </label>
          )}
          <div className="actions">
            <button type="button" onClick={() => void apply()} disabled={plan.destructive && !destructiveOk}>
              {t("apply")}
            </button>
            <button type="button" className="link" onClick={() => void discard()}>
              {t("discard")}
            </button>
          </div>
        </section>
      )}
    </section>
  );
}
