// The Service designer (issue 15 §2), for analysts (`design`): the services, and an editor
// of one — its steps (kind, operators' role, deadline, duration, resources, fields per
// step) and transitions (from, to, condition, default, agree/reject) — checked as the
// analyst types and redrawn beside the tables (`POST /services/preview`: the kernel's own
// checks, every problem at the row it names, the flowchart drawn even while something is
// wrong; nothing stored). Saving stores the draft; publishing freezes it as a new version
// with the analyst's version notes, listed with who published each one.
import { useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, messageOf, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { ErrorLine } from "./common";
import { DesignerList, DesignerTabs } from "./DesignerTabs";

type Service = Schemas["Service"];
type Step = Schemas["Step"];
type Transition = Schemas["Transition"];
type StepKind = Schemas["StepKind"];
type Access = Schemas["FieldAccess"];

const KINDS: StepKind[] = ["human", "automatic", "wait", "sub_service", "exclusive", "parallel", "join", "end"];
const ATTRIBUTES = ["", "agree", "reject", "other"] as const;
const ACCESS: Access[] = ["required", "optional", "readonly", "hidden"];

/** A step's resources as the table shows them: `laser_room×1, consumable×2`. */
export function resourcesText(s: Step): string {
  return (s.resources ?? []).map((r) => `${r.type}×${r.quantity ?? 1}`).join(", ");
}

/** The resources typed in a step's row, keeping what the table does not show of each. */
export function resourcesOf(text: string, before: Step["resources"]): Step["resources"] {
  const old = new Map((before ?? []).map((r) => [r.type, r]));
  return text
    .split(/[,，]/)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      const [type = "", n] = p.split(/[×x*]/).map((s) => s.trim());
      const quantity = n === undefined || n === "" ? 1 : Number(n);
      return { ...(old.get(type) ?? {}), type, quantity: Number.isFinite(quantity) ? quantity : 1 };
    });
}

/** A step's fields as the table shows them: `zhenduan:required, beizhu:optional`. */
export function fieldsText(s: Step): string {
  return Object.entries(s.fields ?? {})
    .map(([f, a]) => `${f}:${a}`)
    .join(", ");
}

/** The fields typed in a step's row; an unknown access is kept so the kernel names it. */
export function fieldsOf(text: string): Step["fields"] {
  const out: Record<string, Access> = {};
  for (const part of text.split(/[,，]/)) {
    const [f, a] = part.split(/[:：]/).map((s) => s.trim());
    if (f) out[f] = (a || "optional") as Access;
  }
  return out;
}

/** The problems of a preview by row (`/steps/2/kind` → step 2), and the rest. */
function issuesByRow(issues: Schemas["Issue"][]) {
  const steps: Record<number, string[]> = {};
  const transitions: Record<number, string[]> = {};
  const other: string[] = [];
  for (const i of issues) {
    const m = /^\/(steps|transitions)\/(\d+)/.exec(i.path);
    const text = `${i.path}: ${i.message}`;
    if (m?.[1] === "steps") (steps[Number(m[2])] ??= []).push(text);
    else if (m) (transitions[Number(m[2])] ??= []).push(text);
    else other.push(`${i.path || "/"}: ${i.message}`);
  }
  return { steps, transitions, other };
}

function Problems({ list }: { list: string[] | undefined }) {
  return (
    <>
      {list?.map((p) => (
        <div key={p} className="error">
          {p}
        </div>
      ))}
    </>
  );
}

/** A row under a step's or a transition's, with the problems the kernel found in it. */
function ProblemRow({ list, columns }: { list: string[] | undefined; columns: number }) {
  if (!list?.length) return null;
  return (
    <tr className="problems">
      <td colSpan={columns}>
        <Problems list={list} />
      </td>
    </tr>
  );
}

/** The services, with their newest version and whether a draft waits. */
export function Services() {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const [items, setItems] = useState<Schemas["ServiceSummary"][]>([]);
  useEffect(() => {
    void api.GET("/api/v1/services").then(({ data }) => setItems(data?.items ?? []));
  }, []);
  return (
    <DesignerList title={t("services")} newLabel={t("newService")} newTo="/designer/services/new" head={[t("name"), t("identifier"), t("version"), t("draft")]}>
      {items.map((s) => (
        <tr key={s.name}>
          <td>
            <Link to={`/designer/services/${s.name}`}>{s.label ? labelOf(s.label) : s.name}</Link>
          </td>
          <td>{s.name}</td>
          <td>{s.version != null ? `v${s.version}` : "—"}</td>
          <td>{s.has_draft ? t("hasDraft") : ""}</td>
        </tr>
      ))}
    </DesignerList>
  );
}

const BLANK: Service = {
  label: { zh: "" },
  steps: [
    { name: "start", kind: "human", label: { zh: "填写" } },
    { name: "end", kind: "end", label: { zh: "结束" } },
  ],
  transitions: [{ from: "start", to: "end", attribute: "agree", label: { zh: "提交" } }],
};

/** The editor of one service (`/designer/services/new` or `/designer/services/:name`). */
export function ServiceEditor() {
  const { name: editing } = useParams();
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const navigate = useNavigate();
  const [doc, setDoc] = useState<Service>(BLANK);
  const [raw, setRaw] = useState(() => JSON.stringify(BLANK, null, 2));
  const [rawError, setRawError] = useState<string | null>(null);
  const [preview, setPreview] = useState<Schemas["ServicePreview"] | null>(null);
  const [shown, setShown] = useState<Schemas["ServiceShown"] | null>(null);
  const [notes, setNotes] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);

  const change = (next: Service) => {
    setDoc(next);
    setRaw(JSON.stringify(next, null, 2));
    setRawError(null);
  };

  const reload = (name: string) =>
    api.GET("/api/v1/services/{name}", { params: { path: { name } } }).then(({ data, error: e }) => {
      if (e) return setError(messageOf(e));
      setShown(data ?? null);
      const s = data?.draft ?? data?.published;
      if (s) change(s);
    });

  useEffect(() => {
    if (editing) void reload(editing);
    // reload only when the service opened changes
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [editing]);

  // The kernel's checks and the flowchart, a moment after the last keystroke.
  useEffect(() => {
    const timer = setTimeout(() => {
      void api.POST("/api/v1/services/preview", { body: doc }).then(({ data, error: e }) => {
        if (e) return setError(messageOf(e));
        setPreview(data ?? null);
      });
    }, 300);
    return () => clearTimeout(timer);
  }, [doc]);

  const problems = useMemo(() => issuesByRow(preview?.issues ?? []), [preview]);
  const chart = preview?.flowchart ? `data:image/svg+xml;charset=utf-8,${encodeURIComponent(preview.flowchart)}` : null;
  const steps = doc.steps;
  const transitions = doc.transitions ?? [];
  const setStep = (i: number, s: Partial<Step>) => change({ ...doc, steps: steps.map((x, j) => (j === i ? { ...x, ...s } : x)) });
  const setTransition = (i: number, tr: Partial<Transition>) =>
    change({ ...doc, transitions: transitions.map((x, j) => (j === i ? { ...x, ...tr } : x)) });

  async function save() {
    setError(null);
    setStatus(null);
    const { data, error: e } = await api.POST("/api/v1/services", { body: doc });
    if (e) return setError(messageOf(e));
    setStatus(t("draftSaved"));
    if (!editing && data?.name) navigate(`/designer/services/${data.name}`, { replace: true });
    else if (data?.name) await reload(data.name);
  }

  async function publish() {
    if (!editing) return;
    setError(null);
    setStatus(null);
    const { data, error: e } = await api.POST("/api/v1/services/{name}/publish", {
      params: { path: { name: editing } },
      body: notes.trim() ? { notes: notes.trim() } : {},
    });
    if (e) return setError(messageOf(e));
    setNotes("");
    setStatus(t("published", { version: data?.version ?? "" }));
    await reload(editing);
  }

  const stepNames = steps.map((s) => s.name);
  return (
    <section className="designer">
      <DesignerTabs />
      <div className="toolbar">
        <Link to="/designer/services">{t("back")}</Link>
        <h1>{editing ? labelOf(doc.label) : t("newService")}</h1>
        {preview && (
          <span className={preview.valid ? "badge ok" : "badge bad"} data-testid="service-valid">
            {preview.valid ? t("valid") : t("issues", { count: preview.issues.length })}
          </span>
        )}
      </div>
      <ErrorLine error={error} />
      {status && <p role="status">{status}</p>}
      <div className="designer-panes service-panes">
        <form
          aria-label={t("definition")}
          onSubmit={(e) => {
            e.preventDefault();
            void save();
          }}
        >
          <label>
            {t("labelZh")}
            <input value={doc.label.zh} onChange={(e) => change({ ...doc, label: { ...doc.label, zh: e.target.value } })} required />
          </label>
          <label>
            {t("identifier")}
            <input
              value={doc.name ?? ""}
              placeholder={t("derived")}
              disabled={Boolean(editing)}
              onChange={(e) => change({ ...doc, name: e.target.value || undefined })}
            />
          </label>
          <label>
            {t("subject")}
            <input value={doc.subject ?? ""} onChange={(e) => change({ ...doc, subject: e.target.value || null })} />
          </label>
          <h2>{t("steps")}</h2>
          <div className="wide">
            <table className="fields" aria-label={t("steps")}>
              <thead>
                <tr>
                  <th>{t("identifier")}</th>
                  <th>{t("name")}</th>
                  <th>{t("kind")}</th>
                  <th>{t("role")}</th>
                  <th>{t("deadline")}</th>
                  <th>{t("minutes")}</th>
                  <th>{t("resources")}</th>
                  <th>{t("stepFields")}</th>
                  <th />
                </tr>
              </thead>
              {steps.map((s, i) => (
                <tbody key={i} data-testid={`step-${i}`} className={problems.steps[i] ? "has-problem" : ""}>
                  <tr>
                    <td>
                      <input aria-label={`${t("identifier")} ${i + 1}`} value={s.name} onChange={(e) => setStep(i, { name: e.target.value })} />
                    </td>
                    <td>
                      <input
                        aria-label={`${t("name")} ${i + 1}`}
                        value={s.label?.zh ?? ""}
                        onChange={(e) => setStep(i, { label: e.target.value ? { ...s.label, zh: e.target.value } : null })}
                      />
                    </td>
                    <td>
                      <select aria-label={`${t("kind")} ${i + 1}`} value={s.kind} onChange={(e) => setStep(i, { kind: e.target.value as StepKind })}>
                        {KINDS.map((k) => (
                          <option key={k} value={k}>
                            {t(`kind_${k}`)}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td>
                      <input
                        aria-label={`${t("role")} ${i + 1}`}
                        value={s.operators?.role ?? ""}
                        onChange={(e) => {
                          const { role: _r, ...rest } = s.operators ?? {};
                          void _r;
                          const next = e.target.value ? { ...rest, role: e.target.value } : rest;
                          setStep(i, { operators: Object.keys(next).length ? (next as Step["operators"]) : null });
                        }}
                      />
                    </td>
                    <td>
                      <input
                        aria-label={`${t("deadline")} ${i + 1}`}
                        value={s.deadline ?? ""}
                        placeholder="PT2H"
                        size={6}
                        onChange={(e) => setStep(i, { deadline: e.target.value || null })}
                      />
                    </td>
                    <td>
                      <input
                        aria-label={`${t("minutes")} ${i + 1}`}
                        type="number"
                        min={0}
                        value={s.duration_minutes ?? ""}
                        onChange={(e) => setStep(i, { duration_minutes: e.target.value === "" ? null : Number(e.target.value) })}
                      />
                    </td>
                    <td>
                      <ListInput
                        label={`${t("resources")} ${i + 1}`}
                        value={resourcesText(s)}
                        placeholder="laser_room×1"
                        onCommit={(text) => setStep(i, { resources: resourcesOf(text, s.resources) })}
                      />
                    </td>
                    <td>
                      <ListInput
                        label={`${t("stepFields")} ${i + 1}`}
                        value={fieldsText(s)}
                        placeholder={`zhenduan:${ACCESS[0]}`}
                        onCommit={(text) => setStep(i, { fields: fieldsOf(text) })}
                      />
                    </td>
                    <td>
                      <button type="button" className="link" onClick={() => change({ ...doc, steps: steps.filter((_, j) => j !== i) })}>
                        {t("remove")}
                      </button>
                    </td>
                  </tr>
                  <ProblemRow list={problems.steps[i]} columns={9} />
                </tbody>
              ))}
            </table>
          </div>
          <div className="actions">
            <button
              type="button"
              onClick={() => change({ ...doc, steps: [...steps, { name: `step${steps.length + 1}`, kind: "human", label: { zh: "" } }] })}
            >
              {t("addStep")}
            </button>
          </div>
          <h2>{t("transitions")}</h2>
          <div className="wide">
            <table className="fields" aria-label={t("transitions")}>
              <thead>
                <tr>
                  <th>{t("from")}</th>
                  <th>{t("to")}</th>
                  <th>{t("button")}</th>
                  <th>{t("condition")}</th>
                  <th>{t("isDefault")}</th>
                  <th>{t("meaning")}</th>
                  <th />
                </tr>
              </thead>
              {transitions.map((tr, i) => (
                <tbody key={i} data-testid={`transition-${i}`} className={problems.transitions[i] ? "has-problem" : ""}>
                  <tr>
                    <td>
                      <StepSelect label={`${t("from")} ${i + 1}`} names={stepNames} value={tr.from} onChange={(from) => setTransition(i, { from })} />
                    </td>
                    <td>
                      <StepSelect label={`${t("to")} ${i + 1}`} names={stepNames} value={tr.to} onChange={(to) => setTransition(i, { to })} />
                    </td>
                    <td>
                      <input
                        aria-label={`${t("button")} ${i + 1}`}
                        value={tr.label?.zh ?? ""}
                        onChange={(e) => setTransition(i, { label: e.target.value ? { ...tr.label, zh: e.target.value } : null })}
                      />
                    </td>
                    <td>
                      <input
                        aria-label={`${t("condition")} ${i + 1}`}
                        className="code"
                        value={tr.condition ?? ""}
                        placeholder='context.amount > 1000'
                        onChange={(e) => setTransition(i, { condition: e.target.value || null })}
                      />
                    </td>
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`${t("isDefault")} ${i + 1}`}
                        checked={tr.default ?? false}
                        onChange={(e) => setTransition(i, { default: e.target.checked })}
                      />
                    </td>
                    <td>
                      <select
                        aria-label={`${t("meaning")} ${i + 1}`}
                        value={tr.attribute ?? ""}
                        onChange={(e) => setTransition(i, { attribute: (e.target.value || null) as Transition["attribute"] })}
                      >
                        {ATTRIBUTES.map((a) => (
                          <option key={a} value={a}>
                            {a ? t(a) : "—"}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td>
                      <button
                        type="button"
                        className="link"
                        onClick={() => change({ ...doc, transitions: transitions.filter((_, j) => j !== i) })}
                      >
                        {t("remove")}
                      </button>
                    </td>
                  </tr>
                  <ProblemRow list={problems.transitions[i]} columns={7} />
                </tbody>
              ))}
            </table>
          </div>
          <Problems list={problems.other} />
          <div className="actions">
            <button
              type="button"
              onClick={() =>
                change({ ...doc, transitions: [...transitions, { from: stepNames[0] ?? "", to: stepNames[stepNames.length - 1] ?? "" }] })
              }
            >
              {t("addTransition")}
            </button>
            <button type="submit">{t("saveDraft")}</button>
          </div>
          <details>
            <summary>JSON</summary>
            <textarea
              aria-label="JSON"
              className="code"
              rows={16}
              value={raw}
              onChange={(e) => {
                setRaw(e.target.value);
                try {
                  setDoc(JSON.parse(e.target.value) as Service);
                  setRawError(null);
                } catch (err) {
                  setRawError(messageOf(err));
                }
              }}
            />
            <ErrorLine error={rawError} />
          </details>
        </form>
        <section className="preview" aria-label={t("flowchart")}>
          <h2>{t("flowchart")}</h2>
          {chart && <img src={chart} alt={t("flowchart")} data-testid="service-chart" className="chart" />}
        </section>
      </div>
      {editing && (
        <section className="plan" aria-label={t("releases")}>
          <h2>{t("releases")}</h2>
          <label>
            {t("versionNotes")}
            <textarea value={notes} maxLength={2000} rows={3} onChange={(e) => setNotes(e.target.value)} />
          </label>
          <div className="actions">
            <button type="button" onClick={() => void publish()} disabled={!shown?.draft}>
              {t("publish")}
            </button>
            {!shown?.draft && <span>{t("noDraft")}</span>}
          </div>
          <table data-testid="releases">
            <thead>
              <tr>
                <th>{t("version")}</th>
                <th>{t("publishedAt")}</th>
                <th>{t("publishedBy")}</th>
                <th>{t("versionNotes")}</th>
              </tr>
            </thead>
            <tbody>
              {[...(shown?.releases ?? [])].reverse().map((r) => (
                <tr key={r.version}>
                  <td>v{r.version}</td>
                  <td>{new Date(r.published_at).toLocaleString()}</td>
                  <td>{r.published_by ?? "—"}</td>
                  <td>{r.notes ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </section>
  );
}

/** A select of the service's steps; a name no step has is kept so the kernel names it. */
function StepSelect({ label, names, value, onChange }: { label: string; names: string[]; value: string; onChange: (v: string) => void }) {
  const all = names.includes(value) ? names : [value, ...names];
  return (
    <select aria-label={label} value={value} onChange={(e) => onChange(e.target.value)}>
      {all.map((n) => (
        <option key={n} value={n}>
          {n}
        </option>
      ))}
    </select>
  );
}

/**
 * A list typed as text (`laser_room×1, consumable×2`), given to the definition when the
 * analyst leaves the box, so a half-typed entry is not parsed away under her cursor.
 */
function ListInput({ label, value, placeholder, onCommit }: { label: string; value: string; placeholder: string; onCommit: (t: string) => void }) {
  const [text, setText] = useState<string | null>(null);
  return (
    <input
      aria-label={label}
      value={text ?? value}
      placeholder={placeholder}
      onChange={(e) => setText(e.target.value)}
      onBlur={() => {
        if (text !== null) onCommit(text);
        setText(null);
      }}
    />
  );
}
