// The caller's work lists (`GET /api/v1/work-items?view=todo|handled|created|related`):
// each process with its number, step, state, the bound record's name and the service's
// work-order columns when it defines them; a row opens the process.
import { useEffect, useState } from "react";
import { useNavigate, useParams } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, messageOf, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { ErrorLine } from "./common";
import { cell } from "./RecordList";

/** The name a record snapshot is known by (its first text field, as staff read it). */
export function nameOf(snapshot: unknown): string {
  if (!snapshot || typeof snapshot !== "object") return "";
  const r = snapshot as Record<string, unknown>;
  for (const key of ["xingming", "name", "title", "mingcheng"]) {
    if (typeof r[key] === "string") return r[key];
  }
  return "";
}

const VIEWS = ["todo", "handled", "created", "related"] as const;
type View = (typeof VIEWS)[number];

export function WorkList() {
  const { view = "todo" } = useParams();
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const navigate = useNavigate();
  const [items, setItems] = useState<Schemas["WorkListEntry"][]>([]);
  const [error, setError] = useState<string | null>(null);
  const known: View = (VIEWS as readonly string[]).includes(view) ? (view as View) : "todo";

  useEffect(() => {
    void api.GET("/api/v1/work-items", { params: { query: { view: known, limit: 50 } } }).then(({ data, error: e }) => {
      setItems(data?.items ?? []);
      setError(e ? messageOf(e) : null);
    });
  }, [known]);

  const columns = items[0]?.columns ?? [];
  return (
    <section>
      <h1>{t(known === "todo" ? "actions" : "done")}</h1>
      <ErrorLine error={error} />
      <table>
        <thead>
          <tr>
            <th>{t("process")}</th>
            <th>{t("record")}</th>
            <th>{t("step")}</th>
            <th>{t("state")}</th>
            {columns.map((c) => (
              <th key={c.name}>{labelOf(c.label) || c.name}</th>
            ))}
            <th>{t("created")}</th>
          </tr>
        </thead>
        <tbody>
          {items.map((p) => (
            <tr key={p.id} className="clickable" onClick={() => navigate(`/processes/${p.id}`)}>
              <td>{p.serial ?? `#${p.id}`}</td>
              <td>{nameOf(p.record_snapshot)}</td>
              <td>{labelOf(p.step_label) || p.step}</td>
              <td>
                <span className={`state state-${p.state}`}>{p.state}</span>
              </td>
              {columns.map((c) => (
                <td key={c.name}>{cell(p.columns?.find((x) => x.name === c.name)?.value)}</td>
              ))}
              <td>{p.created_at?.slice(0, 16).replace("T", " ")}</td>
            </tr>
          ))}
          {items.length === 0 && (
            <tr>
              <td colSpan={5 + columns.length}>{t("empty")}</td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
