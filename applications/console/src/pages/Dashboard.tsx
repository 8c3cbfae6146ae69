// The operator dashboard (issue 15 §4), for those with `monitor`: processes per state and
// per wait reason, the ready queue in dispatch order, the processes past their deadline,
// each resource's use and holders, and the latest changes — all live from the WebSocket (live.ts), with suspend and resume on
// the processes of services the caller administers (the API still checks).
import { Link as RouterLink } from "react-router-dom";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { api, messageOf } from "../api";
import { useQueueStream, type Change } from "../live";
import { useSession } from "../session";
import { ErrorLine } from "./common";
import { Timeline } from "./Timeline";

const STATES = ["NEW", "READY", "RUNNING", "WAITING", "SUSPENDED", "TERMINATED"] as const;

function time(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}:${String(d.getSeconds()).padStart(2, "0")}`;
}

export function Dashboard() {
  const { t } = useTranslation();
  const { can } = useSession();
  const { queues, feed, link, seq } = useQueueStream();
  const [error, setError] = useState<string | null>(null);

  async function act(c: Change, action: "suspend" | "resume" | "prioritize") {
    setError(null);
    const body =
      action === "prioritize" ? { priority: Math.min(100, (c.pcb?.priority ?? 0) + 10) } : { reason: t("fromDashboard") };
    const { error: e } = await api.POST("/api/v1/processes/{id}/{action}", {
      params: { path: { id: c.process, action } },
      body,
    });
    if (e) setError(messageOf(e));
  }

  return (
    <section className="dashboard">
      <div className="toolbar">
        <h1>{t("dashboard")}</h1>
        <span data-testid="link" className={`link-state link-${link}`}>
          {t(`link_${link}`)}
        </span>
        {seq !== null && <span className="seq">seq {seq}</span>}
      </div>
      <ErrorLine error={error} />
      <div className="counts">
        {STATES.map((s) => (
          <div key={s} className={`count state-${s}`} data-testid={`count-${s}`}>
            <span className="n">{queues?.states[s] ?? "–"}</span>
            <span>{s}</span>
          </div>
        ))}
      </div>
      <div className="panels">
        <section>
          <h2>{t("readyQueue")}</h2>
          <ol data-testid="ready-queue">
            {(queues?.ready_queue ?? []).map((p) => (
              <li key={p}>
                <RouterLink to={`/processes/${p}`}>#{p}</RouterLink>
              </li>
            ))}
          </ol>
          <h2>{t("waitReasons")}</h2>
          <table>
            <tbody>
              {Object.entries(queues?.waiting ?? {}).map(([reason, n]) => (
                <tr key={reason}>
                  <td>{reason}</td>
                  <td>{n}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section>
          <h2>
            {t("lateProcesses")} <small data-testid="late-total">{queues?.late_total ?? 0}</small>
          </h2>
          <table data-testid="late">
            <thead>
              <tr>
                <th>{t("process")}</th>
                <th>{t("step")}</th>
                <th>{t("operator")}</th>
                <th>{t("lateBy")}</th>
              </tr>
            </thead>
            <tbody>
              {(queues?.late ?? []).map((l) => (
                <tr key={l.process} data-process={l.process}>
                  <td>
                    <RouterLink to={`/processes/${l.process}`}>#{l.process}</RouterLink> {l.service}
                  </td>
                  <td>{l.step ?? ""}</td>
                  <td>{l.operator ?? ""}</td>
                  <td>{t("minutesLate", { count: l.late_minutes })}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section>
          <h2>{t("resources")}</h2>
          <table>
            <thead>
              <tr>
                <th>{t("resource")}</th>
                <th>{t("inUse")}</th>
                <th>{t("holders")}</th>
                <th>{t("waitingFor")}</th>
              </tr>
            </thead>
            <tbody>
              {(queues?.resources ?? []).map((r) => (
                <tr key={r.id}>
                  <td>
                    {r.id} <small>{r.type}</small>
                  </td>
                  <td>
                    <meter min={0} max={r.capacity} value={r.in_use} /> {r.in_use}/{r.capacity}
                  </td>
                  <td>
                    {r.holders.map((h) => (
                      <RouterLink key={h.process} to={`/processes/${h.process}`}>
                        #{h.process}{" "}
                      </RouterLink>
                    ))}
                  </td>
                  <td>{r.waiting}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      </div>
      {can("bookings:read") && <Timeline version={seq} />}
      <h2>{t("changes")}</h2>
      <table data-testid="feed">
        <tbody>
          {feed.map((c) => {
            const service = c.pcb?.service ?? "";
            const administers = service !== "" && can(`services:${service}:administer`);
            return (
              <tr key={c.seq} data-seq={c.seq} data-process={c.process} data-to={c.to}>
                <td>{time(c.at_ms)}</td>
                <td>
                  <RouterLink to={`/processes/${c.process}`}>#{c.process}</RouterLink> {service}
                </td>
                <td>
                  {c.from} → {c.to}
                </td>
                <td>{c.step ?? ""}</td>
                <td>{c.by}</td>
                <td>
                  {administers && c.to !== "SUSPENDED" && c.to !== "TERMINATED" && (
                    <button type="button" onClick={() => void act(c, "suspend")}>
                      {t("suspend")}
                    </button>
                  )}
                  {administers && c.to === "SUSPENDED" && (
                    <button type="button" onClick={() => void act(c, "resume")}>
                      {t("resume")}
                    </button>
                  )}
                  {administers && c.to !== "TERMINATED" && (c.pcb?.priority ?? 0) < 100 && (
                    <button type="button" className="link" onClick={() => void act(c, "prioritize")}>
                      {t("raisePriority")} ({c.pcb?.priority ?? 0})
                    </button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
