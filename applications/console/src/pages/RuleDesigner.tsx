// The rules designer (issue 15 §2), for analysts (`design`): the rules with their counters,
// and an editor of one — the event it listens for, its condition, its instructions — with
// a dry run beside it (`POST /rules/dry-run`): the unsaved rule runs on a sample record
// (made up, or a stored one by id) in a transaction the kernel rolls back, so the analyst
// sees whether the condition holds, what each instruction would do, or the one that
// fails and why, before anything is saved.
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, messageOf, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { ErrorLine } from "./common";
import { DesignerList, DesignerTabs } from "./DesignerTabs";

type Rule = Schemas["ServiceRule"];
type EventKind = Schemas["EventKind"];
type Req = Schemas["DryRunRequest"];

const EVENTS: EventKind[] = [
  "record.created",
  "record.updated",
  "record.deleted",
  "process.state_changed",
  "step.entered",
  "step.left",
  "deadline.warning",
  "deadline.passed",
  "signal",
  "time",
];

/** The rules, with how often each was evaluated, fired and failed. */
export function Rules() {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const [items, setItems] = useState<Schemas["RuleShown"][]>([]);
  useEffect(() => {
    void api.GET("/api/v1/rules").then(({ data }) => setItems(data?.items ?? []));
  }, []);
  return (
    <DesignerList title={t("rules")} newLabel={t("newRule")} newTo="/designer/rules/new" head={[t("name"), t("event"), t("enabled"), t("ruleCounts")]}>
      {items.map((r) => (
        <tr key={r.name}>
          <td>
            <Link to={`/designer/rules/${r.name ?? ""}`}>{labelOf(r.label)}</Link>
          </td>
          <td>
            {r.event.kind ?? "—"}
            {r.event.item ? ` · ${r.event.item}` : ""}
          </td>
          <td>{r.enabled === false ? t("no") : t("yes")}</td>
          <td>
            {r.stats.evaluated ?? 0} / {r.stats.fired ?? 0} / {r.stats.failed ?? 0}
          </td>
        </tr>
      ))}
    </DesignerList>
  );
}

const BLANK: Rule = { label: { zh: "" }, event: { kind: "record.created" }, enabled: true, instructions: [] };

/** Parses a JSON box: the value, or the parser's message. */
function parsed(text: string): { value?: unknown; error?: string } {
  if (!text.trim()) return { value: undefined };
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    return { error: messageOf(e) };
  }
}

/** The editor of one rule (`/designer/rules/new` or `/designer/rules/:name`), with its dry run. */
export function RuleEditor() {
  const { name: editing } = useParams();
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const navigate = useNavigate();
  const [doc, setDoc] = useState<Rule>(BLANK);
  const [instructions, setInstructions] = useState("[]");
  const [sampleMode, setSampleMode] = useState<"sample" | "record">("sample");
  const [sample, setSample] = useState('{"xingming": "张三"}');
  const [recordId, setRecordId] = useState("");
  const [context, setContext] = useState("");
  const [result, setResult] = useState<Schemas["DryRun"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);

  useEffect(() => {
    if (!editing) return;
    void api.GET("/api/v1/rules/{name}", { params: { path: { name: editing } } }).then(({ data, error: e }) => {
      if (e) return setError(messageOf(e));
      if (!data) return;
      const { stats: _s, ...rule } = data;
      void _s;
      setDoc(rule);
      setInstructions(JSON.stringify(rule.instructions ?? [], null, 2));
    });
  }, [editing]);

  const steps = parsed(instructions);
  /** The rule as the editor holds it, or the reason it cannot be sent yet. */
  function rule(): Rule | null {
    if (steps.error) {
      setError(`${t("instructions")}: ${steps.error}`);
      return null;
    }
    return { ...doc, instructions: (steps.value ?? []) as Rule["instructions"] };
  }

  async function save() {
    setError(null);
    setStatus(null);
    const body = rule();
    if (!body) return;
    const { data, error: e } = editing
      ? await api.PUT("/api/v1/rules/{name}", { params: { path: { name: editing } }, body })
      : await api.POST("/api/v1/rules", { body });
    if (e) return setError(messageOf(e));
    setStatus(t("saved"));
    if (!editing && data?.name) navigate(`/designer/rules/${data.name}`, { replace: true });
  }

  async function tryIt() {
    setError(null);
    setResult(null);
    const body = rule();
    if (!body) return;
    const s = parsed(sample);
    const c = parsed(context);
    if (sampleMode === "sample" && s.error) return setError(`${t("sample")}: ${s.error}`);
    if (c.error) return setError(`${t("context")}: ${c.error}`);
    const request: Req = {
      rule: body as unknown as Req["rule"],
      ...(sampleMode === "sample" && s.value !== undefined ? { sample: s.value as Req["sample"] } : {}),
      ...(sampleMode === "record" && recordId && doc.event.item ? { record: { item: doc.event.item, id: recordId } } : {}),
      ...(c.value !== undefined ? { context: c.value as Req["context"] } : {}),
    };
    const { data, error: e } = await api.POST("/api/v1/rules/dry-run", { body: request });
    if (e) return setError(messageOf(e));
    setResult(data ?? null);
  }

  const event = doc.event;
  return (
    <section className="designer">
      <DesignerTabs />
      <div className="toolbar">
        <Link to="/designer/rules">{t("back")}</Link>
        <h1>{editing ? labelOf(doc.label) : t("newRule")}</h1>
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
            <input value={doc.label.zh} required onChange={(e) => setDoc({ ...doc, label: { ...doc.label, zh: e.target.value } })} />
          </label>
          <label>
            {t("identifier")}
            <input
              value={doc.name ?? ""}
              placeholder={t("derived")}
              disabled={Boolean(editing)}
              onChange={(e) => setDoc({ ...doc, name: e.target.value || undefined })}
            />
          </label>
          <label>
            {t("event")}
            <select value={event.kind ?? ""} onChange={(e) => setDoc({ ...doc, event: { ...event, kind: e.target.value as EventKind } })}>
              {EVENTS.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
          </label>
          <label>
            {t("dataItem")}
            <input value={event.item ?? ""} onChange={(e) => setDoc({ ...doc, event: { ...event, item: e.target.value || null } })} />
          </label>
          <label>
            {t("condition")}
            <input
              className="code"
              value={doc.condition ?? ""}
              placeholder="record.nianling >= 18"
              onChange={(e) => setDoc({ ...doc, condition: e.target.value || null })}
            />
          </label>
          <label className="inline">
            <input type="checkbox" checked={doc.enabled ?? true} onChange={(e) => setDoc({ ...doc, enabled: e.target.checked })} /> {t("enabled")}
          </label>
          <label>
            {t("instructions")}
            <textarea className="code" rows={10} value={instructions} onChange={(e) => setInstructions(e.target.value)} />
          </label>
          <ErrorLine error={steps.error ? `${t("instructions")}: ${steps.error}` : null} />
          <div className="actions">
            <button type="submit">{t("save")}</button>
          </div>
        </form>
        <section className="preview" aria-label={t("dryRun")}>
          <h2>{t("dryRun")}</h2>
          <label className="inline">
            <input type="radio" name="sample-mode" checked={sampleMode === "sample"} onChange={() => setSampleMode("sample")} /> {t("madeUpSample")}
          </label>
          <label className="inline">
            <input type="radio" name="sample-mode" checked={sampleMode === "record"} onChange={() => setSampleMode("record")} /> {t("storedRecord")}
          </label>
          {sampleMode === "sample" ? (
            <label>
              {t("sample")}
              <textarea className="code" rows={5} value={sample} onChange={(e) => setSample(e.target.value)} />
            </label>
          ) : (
            <label>
              {t("recordId")}
              <input value={recordId} onChange={(e) => setRecordId(e.target.value)} />
            </label>
          )}
          <label>
            {t("context")}
            <textarea className="code" rows={3} value={context} placeholder='{"zhenduan": "色斑"}' onChange={(e) => setContext(e.target.value)} />
          </label>
          <div className="actions">
            <button type="button" onClick={() => void tryIt()}>
              {t("tryRule")}
            </button>
          </div>
          {result && (
            <div data-testid="dry-run" className="dry-run">
              {result.condition && (
                <p>
                  {t("condition")}: <code>{result.condition.source}</code> →{" "}
                  <strong>{result.condition.error ?? String(result.condition.holds)}</strong>
                </p>
              )}
              <p>{result.ran ? t("ranEffects", { count: result.effects.length }) : t("didNotRun")}</p>
              <ol>
                {result.effects.map((e, i) => (
                  <li key={i}>
                    <pre>{JSON.stringify(e, null, 1)}</pre>
                  </li>
                ))}
              </ol>
              {result.error && (
                <p className="error" role="alert">
                  {t("failedAt", { index: result.error.index + 1, op: result.error.op })}: {result.error.message}
                  {result.error.details.map((d) => ` · ${d.path}: ${d.message}`).join("")}
                </p>
              )}
              <p className="hint">{t("rolledBack")}</p>
            </div>
          )}
        </section>
      </div>
    </section>
  );
}
