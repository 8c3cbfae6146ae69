// One process (`GET /api/v1/processes/{id}`): where it is, the bound record, the actions
// the caller may take now — only those the kernel offers them (agree / reject by the
// transition's own label, claim, withdraw, forward and add a signer to a person, return to
// an earlier step), each sent as `POST /api/v1/processes/{id}/{action}` — what the step
// asks its handler for (the record's fields it may change, the inputs of its instructions:
// the consent step's signature), its history and its service's flowchart.
import { useCallback, useEffect, useState } from "react";
import { useParams } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, messageOf, type ErrorBody, type Schemas } from "../api";
import type { ErrorSchema } from "@rjsf/utils";
import { useLabel } from "../i18n";
import { ErrorLine, useFlowchart } from "./common";
import { nameOf } from "./WorkList";
import { asksFor, StepForm, stepErrorsOf, type StepValues } from "./StepForm";

type Action = Schemas["ProcessAction"];

export function ProcessDetail() {
  const { id = "" } = useParams();
  const pid = Number(id);
  const { t } = useTranslation();
  const [p, setP] = useState<Schemas["ProcessDetail"] | null>(null);
  const [comment, setComment] = useState("");
  const [target, setTarget] = useState("");
  const [returnStep, setReturnStep] = useState("");
  const [returnTo, setReturnTo] = useState("");
  const [users, setUsers] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [steps, setSteps] = useState<Record<string, Schemas["Label"]>>({});
  const { labelOf } = useLabel();
  const [values, setValues] = useState<StepValues>({ fields: {}, context: {} });
  const [stepErrors, setStepErrors] = useState<ErrorSchema | undefined>(undefined);

  const load = useCallback(
    () =>
      api.GET("/api/v1/processes/{id}", { params: { path: { id: pid } } }).then(({ data, error: e }) => {
        setP(data ?? null);
        // Each time the process is read the step form starts from the record as it is.
        if (data) {
          const record = data.form.record as Record<string, unknown>;
          setValues({ fields: Object.fromEntries(data.form.editable.filter((f) => record[f] != null).map((f) => [f, record[f]])), context: {} });
          setStepErrors(undefined);
        }
        if (e) setError(messageOf(e));
      }),
    [pid],
  );

  useEffect(() => {
    void load();
  }, [load]);
  const form = p?.form;
  const offersPeople = p?.actions.some((a) => a.action === "forward" || a.action === "add_signer") ?? false;
  // The people one may forward to or add, when the caller may list them (else typed).
  useEffect(() => {
    if (!offersPeople) return;
    void api.GET("/api/v1/users").then(({ data }) => setUsers((data?.items ?? []).map((u) => u.id)));
  }, [offersPeople]);
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

  /** The body an action is sent with, from what the panel holds. */
  function bodyOf(a: Action): Schemas["ActionBody"] {
    const why = comment || undefined;
    switch (a.action) {
      case "handle": {
        // What the step asks for goes with it: the record's fields, the instructions' inputs.
        const filled = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== ""));
        const fields = (form?.editable.length ?? 0) > 0 ? filled(values.fields) : undefined;
        const context = (form?.inputs.length ?? 0) > 0 ? filled(values.context) : undefined;
        return {
          transition: a.transition ?? undefined,
          attribute: (a.attribute as Schemas["TransitionAttribute"] | null) ?? undefined,
          comment: why,
          fields: fields && Object.keys(fields).length > 0 ? fields : undefined,
          context: context && Object.keys(context).length > 0 ? context : undefined,
        };
      }
      case "claim":
        return {};
      case "forward":
        return { to: target, reason: why };
      case "add_signer":
        return { signer: target, reason: why };
      case "return":
        return { step: returnStep || a.steps?.[0], to: returnTo || undefined, reason: why };
      default:
        return { reason: why };
    }
  }

  async function take(a: Action) {
    setError(null);
    if ((a.action === "forward" || a.action === "add_signer") && !target) {
      setError(t("chooseUser"));
      return;
    }
    const { error: e } = await api.POST("/api/v1/processes/{id}/{action}", {
      params: { path: { id: pid, action: a.action } },
      body: bodyOf(a),
    });
    if (e) {
      setError(messageOf(e));
      setStepErrors(a.action === "handle" ? stepErrorsOf(e as ErrorBody) : undefined);
      return;
    }
    setComment("");
    setTarget("");
    await load();
  }

  if (!p) return <p className="loading">{error ?? t("loading")}</p>;
  const label = (a: Action) => {
    if (a.action === "handle") {
      const word = a.attribute === "reject" ? t("reject") : a.attribute === "other" ? t("other") : t("agree");
      const own = a.label ? labelOf(a.label) : "";
      return own && own !== word ? `${word} · ${own}` : word;
    }
    return t(`action_${a.action}`);
  };
  const simple = p.actions.filter((a) => ["claim", "handle", "withdraw", "set_aside", "suspend", "resume"].includes(a.action));
  const forward = p.actions.find((a) => a.action === "forward");
  const addSigner = p.actions.find((a) => a.action === "add_signer");
  const back = p.actions.find((a) => a.action === "return");
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
        <div className="actions-panel">
          {asksFor(p.form) && p.actions.some((a) => a.action === "handle") && (
            <StepForm form={p.form} bound={p.record?.item} values={values} errors={stepErrors} onChange={setValues} />
          )}
          <textarea aria-label={t("comment")} placeholder={t("comment")} value={comment} onChange={(e) => setComment(e.target.value)} />
          <div className="actions">
            {simple.map((a) => (
              <button key={`${a.action}:${a.transition ?? a.attribute ?? ""}`} type="button" onClick={() => void take(a)}>
                {label(a)}
              </button>
            ))}
          </div>
          {(forward || addSigner) && (
            <div className="actions">
              <input aria-label={t("toWhom")} list="process-users" value={target} placeholder={t("toWhom")} onChange={(e) => setTarget(e.target.value)} />
              <datalist id="process-users">
                {users.map((u) => (
                  <option key={u} value={u} />
                ))}
              </datalist>
              {forward && (
                <button type="button" onClick={() => void take(forward)}>
                  {t("action_forward")}
                </button>
              )}
              {addSigner && (
                <button type="button" onClick={() => void take(addSigner)}>
                  {t("action_add_signer")}
                </button>
              )}
            </div>
          )}
          {back && (
            <div className="actions">
              <select aria-label={t("returnStep")} value={returnStep || back.steps?.[0] || ""} onChange={(e) => setReturnStep(e.target.value)}>
                {(back.steps ?? []).map((st) => (
                  <option key={st} value={st}>
                    {labelOf(steps[st]) || st}
                  </option>
                ))}
              </select>
              {(back.to?.length ?? 0) > 1 && (
                <select aria-label={t("returnTo")} value={returnTo} onChange={(e) => setReturnTo(e.target.value)}>
                  <option value="">{t("returnTo")}</option>
                  {(back.to ?? []).map((to) => (
                    <option key={to} value={to}>
                      {t(`returnTo_${to}`)}
                    </option>
                  ))}
                </select>
              )}
              <button type="button" onClick={() => void take(back)}>
                {t("action_return")}
              </button>
            </div>
          )}
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
