// The designer's working calendars (issue 15 §2): the hours deadlines, reminders and
// resources count in — each calendar's weekly hours, holidays and exceptional dates, at its
// UTC offset — listed, opened into the editor, saved (`POST /api/v1/calendars` creates or
// replaces) and deleted (a calendar still used by a service or a person is refused with
// what uses it). Hours are typed as staff say them, `09:00-12:00, 13:00-18:00`; the
// kernel checks them and its problems are shown at the weekday, the holidays or the
// exceptions they name.
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { api, messageOf, type ErrorBody, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { DesignerTabs } from "./DesignerTabs";
import { ActionForm, ErrorLine } from "./common";

type Calendar = Schemas["WorkingCalendar"];
type Interval = Schemas["Interval"];
type Day = keyof Schemas["Weekly"];

/** The weekdays, Monday first, as the calendar's JSON names them. */
const DAYS: Day[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** Hours as typed (`09:00-12:00, 13:00-18:00`) as intervals; a piece without a dash is sent as it is, for the kernel to name. */
export function intervalsOf(text: string): Interval[] {
  return text
    .split(/[,，;；\s]+/)
    .filter(Boolean)
    .map((piece) => {
      const [from = "", to = ""] = piece.split(/[-–~～]/);
      return [from, to];
    });
}

/** Intervals as staff type them. */
export function hoursOf(list: Interval[] | undefined): string {
  return (list ?? []).map(([from, to]) => `${from}-${to}`).join(", ");
}

/** Exceptional dates as typed, one per line (`2026-09-27: 09:00-18:00`; nothing after the colon: a day off). */
function exceptionsOf(text: string): Record<string, Interval[]> {
  const out: Record<string, Interval[]> = {};
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const at = line.search(/[:：]/);
    const day = (at < 0 ? line : line.slice(0, at)).trim();
    out[day] = at < 0 ? [] : intervalsOf(line.slice(at + 1));
  }
  return out;
}

/** The editor's text fields for `c` (empty for a new calendar). */
function draftOf(c: Calendar | null) {
  return {
    name: c?.name ?? "",
    zh: c?.label.zh ?? "",
    en: c?.label.en ?? "",
    offset: String(c?.utc_offset_minutes ?? 480),
    weekly: Object.fromEntries(DAYS.map((d) => [d, hoursOf(c?.weekly?.[d])])) as Record<Day, string>,
    holidays: (c?.holidays ?? []).join(" "),
    exceptions: Object.entries(c?.exceptions ?? {})
      .map(([day, list]) => `${day}: ${hoursOf(list)}`)
      .join("\n"),
  };
}

/** Where on the editor a detail of the kernel's answer belongs: `weekly/mon`, `holidays`, … */
function rowOf(path: string): string {
  const [, first = "", second = ""] = path.split("/");
  return first === "weekly" ? `weekly/${second}` : first;
}

/** The kernel's problems with one row of the editor. */
function Problems({ messages }: { messages: string[] | undefined }) {
  return messages ? (
    <span className="problem" role="alert">
      {messages.join("; ")}
    </span>
  ) : null;
}

export function Calendars() {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const [calendars, setCalendars] = useState<Calendar[]>([]);
  const [version, setVersion] = useState(0);
  const [draft, setDraft] = useState(draftOf(null));
  const [editing, setEditing] = useState<string | null>(null);
  const [problems, setProblems] = useState<Record<string, string[]>>({});
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  useEffect(() => {
    void api.GET("/api/v1/calendars").then(({ data, error: e }) => {
      if (e) return setError(messageOf(e));
      setCalendars(data?.items ?? []);
    });
  }, [version]);

  function open(c: Calendar | null) {
    setDraft(draftOf(c));
    setEditing(c?.name ?? null);
    setProblems({});
    setError(null);
    setDone(null);
  }

  function answer(e: unknown) {
    const body = e as ErrorBody;
    const rows: Record<string, string[]> = {};
    for (const d of body.error?.details ?? []) (rows[rowOf(d.path)] ??= []).push(d.message);
    setProblems(rows);
    setError(messageOf(e));
  }

  async function save() {
    setDone(null);
    const weekly: Schemas["Weekly"] = {};
    for (const d of DAYS) if (draft.weekly[d].trim()) weekly[d] = intervalsOf(draft.weekly[d]);
    const { data, error: e } = await api.POST("/api/v1/calendars", {
      body: {
        name: draft.name.trim() || undefined,
        label: draft.en.trim() ? { zh: draft.zh.trim(), en: draft.en.trim() } : { zh: draft.zh.trim() },
        utc_offset_minutes: Number(draft.offset),
        weekly,
        holidays: draft.holidays.split(/[,，\s]+/).filter(Boolean),
        exceptions: exceptionsOf(draft.exceptions),
      },
    });
    if (e || !data) return answer(e);
    setProblems({});
    setError(null);
    setEditing(data.name ?? null);
    setDraft(draftOf(data));
    setDone(t("calendarSaved", { name: labelOf(data.label) }));
    setVersion((v) => v + 1);
  }

  async function remove() {
    if (!editing) return;
    const { error: e } = await api.DELETE("/api/v1/calendars/{name}", { params: { path: { name: editing } } });
    if (e) return answer(e);
    open(null);
    setDone(t("calendarDeleted", { name: draft.zh || editing }));
    setVersion((v) => v + 1);
  }

  const set = (patch: Partial<typeof draft>) => setDraft({ ...draft, ...patch });

  return (
    <section className="calendars">
      <DesignerTabs />
      <div className="toolbar">
        <h1>{t("calendarsTab")}</h1>
        <button type="button" onClick={() => open(null)}>
          {t("newCalendar")}
        </button>
      </div>
      <table data-testid="calendars">
        <thead>
          <tr>
            <th>{t("calendarId")}</th>
            <th>{t("label")}</th>
            {DAYS.map((d) => (
              <th key={d}>{t(`day_${d}`)}</th>
            ))}
            <th>{t("holidays")}</th>
          </tr>
        </thead>
        <tbody>
          {calendars.map((c) => (
            <tr key={c.name} data-calendar={c.name} className={editing === c.name ? "clickable selected" : "clickable"} onClick={() => open(c)}>
              <td>
                <button type="button" className="link" onClick={() => open(c)}>
                  {c.name}
                </button>
              </td>
              <td>{labelOf(c.label)}</td>
              {DAYS.map((d) => (
                <td key={d}>{hoursOf(c.weekly?.[d])}</td>
              ))}
              <td>{(c.holidays ?? []).length}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <ErrorLine error={error} />
      {done && <p role="status">{done}</p>}
      <ActionForm className="panel calendar-form" label={t("calendarEditor")} onSubmit={() => void save()}>
        <h2>{editing ? t("editCalendar", { name: editing }) : t("newCalendar")}</h2>
        <label>
          {t("calendarId")}
          <input value={draft.name} onChange={(e) => set({ name: e.target.value })} readOnly={!!editing} placeholder={t("nameFromLabel")} />
          <Problems messages={problems["name"]} />
        </label>
        <label>
          {t("labelZh")}
          <input value={draft.zh} onChange={(e) => set({ zh: e.target.value })} required />
          <Problems messages={problems["label"]} />
        </label>
        <label>
          {t("labelEn")}
          <input value={draft.en} onChange={(e) => set({ en: e.target.value })} />
        </label>
        <label>
          {t("utcOffset")}
          <input type="number" step={15} value={draft.offset} onChange={(e) => set({ offset: e.target.value })} required />
          <Problems messages={problems["utc_offset_minutes"]} />
        </label>
        <Problems messages={problems["weekly/"]} />
        {DAYS.map((d) => (
          <label key={d}>
            {t(`day_${d}`)}
            <input value={draft.weekly[d]} placeholder="09:00-12:00, 13:00-18:00" onChange={(e) => set({ weekly: { ...draft.weekly, [d]: e.target.value } })} />
            <Problems messages={problems[`weekly/${d}`]} />
          </label>
        ))}
        <label>
          {t("holidays")}
          <input value={draft.holidays} placeholder="2027-02-17 2027-02-18" onChange={(e) => set({ holidays: e.target.value })} />
          <Problems messages={problems["holidays"]} />
        </label>
        <label>
          {t("exceptions")}
          <textarea value={draft.exceptions} placeholder="2027-02-20: 09:00-18:00" onChange={(e) => set({ exceptions: e.target.value })} />
          <Problems messages={problems["exceptions"]} />
        </label>
        <div className="actions">
          <button type="submit">{t("save")}</button>
          {editing && (
            <button type="button" onClick={() => void remove()}>
              {t("delete")}
            </button>
          )}
        </div>
      </ActionForm>
    </section>
  );
}
