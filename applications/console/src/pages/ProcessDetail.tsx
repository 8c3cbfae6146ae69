// One process (`GET /api/v1/processes/{id}`): where it is, the bound record, the actions
// the caller may take now — only those the kernel offers them, each sent as `POST
// /api/v1/processes/{id}/{action}` — its history and its service's flowchart.
import { useCallback, useEffect, useState } from "react";
import { useParams } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, messageOf, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { ErrorLine, useFlowchart } from "./common";
import { nameOf } from "./WorkList";

type Action = Schemas["ProcessAction"];

export function ProcessDetail() {
  const { id = "" } = useParams();
  const pid = Number(id);
  const { t } = useTranslation();
  const [p, setP] = useState<Schemas["ProcessDetail"] | null>(null);
  const [comment, setComment] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [steps, setSteps] = useState<Record<string, Schemas["Label"]>>({});
  const { labelOf } = useLabel();

  const load = useCallback(
    () =>
      api.GET("/api/v1/processes/{id}", { params: { path: { id: pid } } }).then(({ data, error: e }) => {
        setP(data ?? null);
        if (e) setError(messageOf(e));
      }),
    [pid],
  );

  useEffect(() => {
    void load();
  }, [load]);
  const service = p?.service;
  // Redrawn after every change of the process (its version number), with where it is now.
  const chart = useFlowchart(p ? `/api/v1/processes/${p.id}/flowchart.svg?v=${p.version_no}` : undefined);
  useEffect(() => {
    if (!service) return;
    void api.GET("/api/v1/services/{name}", { params: { path: { name: service } } }).then(({ data }) => {
      const found = (data?.published ?? data?.draft)?.steps ?? [];
      setSteps(Object.fromEntries(found.flatMap((st) => (st.label ? [[st.name, st.label]] : []))));
    });
  }, [service]);

  async function take(a: Action) {
    setError(null);
    const body =
      a.action === "handle"
        ? { attribute: a.attribute ?? undefined, comment: comment || undefined }
        : a.action === "claim"
          ? {}
          : { reason: comment || undefined };
    const { error: e } = await api.POST("/api/v1/processes/{id}/{action}", {
      params: { path: { id: pid, action: a.action } },
      body: body as Schemas["ActionBody"],
    });
    if (e) setError(messageOf(e));
    setComment("");
    await load();
  }

  if (!p) return <p className="loading">{error ?? t("loading")}</p>;
  const label = (a: Action) => {
    if (a.action === "handle") return a.attribute === "reject" ? t("reject") : t("agree");
    if (a.action === "claim") return t("claim");
    return a.action;
  };
  return (
    <section className="process">
      <h1>
        {p.serial ?? `#${p.id}`} · {p.service} · {nameOf((p.context as Record<string, unknown>).record)}
      </h1>
      <dl>
        <dt>{t("step")}</dt>
        <dd data-testid="step">{p.step ? labelOf(steps[p.step]) || p.step : ""}</dd>
        <dt>{t("state")}</dt>
        <dd data-testid="state">
          <span className={`state state-${p.state}`}>{p.state}</span>
        </dd>
        <dt>{t("operator")}</dt>
        <dd>{p.operator ?? ""}</dd>
      </dl>
      <ErrorLine error={error} />
      <h2>{t("actions")}</h2>
      {p.actions.length === 0 ? (
        <p>{t("noActions")}</p>
      ) : (
        <div className="actions">
          <textarea aria-label={t("comment")} placeholder={t("comment")} value={comment} onChange={(e) => setComment(e.target.value)} />
          {p.actions
            .filter((a) => ["claim", "handle", "withdraw"].includes(a.action))
            .map((a) => (
              <button key={`${a.action}:${a.attribute ?? ""}`} type="button" onClick={() => void take(a)}>
                {label(a)}
              </button>
            ))}
        </div>
      )}
      {chart && <img className="flowchart" src={chart} alt={p.service} />}
      <h2>{t("history")}</h2>
      <ol className="history">
        {p.history.map((h) => (
          <li key={h.seq}>
            {h.at?.slice(0, 19).replace("T", " ")} · {h.by} · {h.from} → {h.to}
            {h.step ? ` · ${labelOf(steps[h.step]) || h.step}` : ""} · {h.reason}
          </li>
        ))}
      </ol>
    </section>
  );
}
