// The front desk's day (issue 15 §3): the day's bookings on a grid, one column per room,
// device and practitioner, one row per quarter hour of the clinic's day; a slot search for
// a treatment and a patient (found by the kernel's pinyin search), each slot with what it
// would hold, booked with one click (taken meanwhile: 409 with the next free starts); and
// check-in of a booked visit that is waiting at reception (claim, then agree).
import { useCallback, useEffect, useMemo, useState } from "react";
import { Link } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, messageOf, type ErrorBody, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { useSession } from "../session";
import { aheadOf, clinicDate, clinicMinutes, clinicTime, dayBounds } from "../clinic";
import { PatientPicker, type Patient } from "./PatientPicker";
import { ErrorLine } from "./common";

type Booking = Schemas["Booking"];
type Slot = Schemas["SlotShown"];

/** The grid's first and last hour (the longest opening of the branches). */
const OPENS = 9 * 60;
const CLOSES = 21 * 60;
const STEP = 15;

function Grid({ bookings, names }: { bookings: Booking[]; names: Record<string, string> }) {
  const columns = useMemo(() => {
    const held = new Set<string>();
    for (const b of bookings) for (const h of [...b.resources, ...b.operators]) held.add(h);
    return [...held].sort();
  }, [bookings]);
  const rows = (CLOSES - OPENS) / STEP;
  const row = (iso: string) => Math.min(rows, Math.max(0, Math.round((clinicMinutes(iso) - OPENS) / STEP))) + 2;
  if (columns.length === 0) return null;
  return (
    <div className="day-grid" style={{ gridTemplateColumns: `56px repeat(${columns.length}, minmax(90px, 1fr))`, gridTemplateRows: `auto repeat(${rows}, 14px)` }} data-testid="day-grid">
      {columns.map((c, i) => (
        <div key={c} className="head" style={{ gridColumn: i + 2, gridRow: 1 }}>
          {c}
        </div>
      ))}
      {Array.from({ length: (CLOSES - OPENS) / 60 }, (_, h) => (
        <div key={h} className="hour" style={{ gridColumn: 1, gridRow: `${h * 4 + 2} / span 4` }}>
          {String(9 + h).padStart(2, "0")}:00
        </div>
      ))}
      {bookings.flatMap((b) =>
        [...b.resources, ...b.operators].map((h) => (
          <div
            key={`${b.id}:${h}`}
            className={`block state-${b.state}`}
            style={{ gridColumn: columns.indexOf(h) + 2, gridRow: `${row(b.start)} / ${Math.max(row(b.end), row(b.start) + 1)}` }}
            title={`${clinicTime(b.start)}–${clinicTime(b.end)}`}
          >
            {clinicTime(b.start)} {names[b.treatment ?? ""] ?? b.treatment}
          </div>
        )),
      )}
    </div>
  );
}

export function Bookings() {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const { can } = useSession();
  const [date, setDate] = useState(() => clinicDate(Date.now()));
  const [treatments, setTreatments] = useState<Schemas["Treatment"][]>([]);
  const [treatment, setTreatment] = useState("");
  const [patient, setPatient] = useState<Patient | null>(null);
  const [slots, setSlots] = useState<Slot[] | null>(null);
  const [bookings, setBookings] = useState<Booking[]>([]);
  const [arrivals, setArrivals] = useState<Record<number, boolean>>({});
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);

  const names = useMemo(() => Object.fromEntries(treatments.map((x) => [x.name, labelOf(x.label)])), [treatments, labelOf]);

  useEffect(() => {
    void api.GET("/api/v1/treatments").then(({ data }) => setTreatments(data?.items ?? []));
  }, []);

  const loadDay = useCallback(
    () =>
      api.GET("/api/v1/bookings", { params: { query: { ...dayBounds(date), state: "booked", limit: 500 } } }).then(async ({ data, error: e }) => {
        if (e) setError(messageOf(e));
        const list = data?.items ?? [];
        setBookings(list);
        // Which visits wait at reception for this desk: those her to-do list offers her to
        // claim (one request, however many bookings the day has).
        const { data: todo } = await api.GET("/api/v1/work-items", { params: { query: { view: "todo", limit: 500 } } });
        const waiting: Record<number, boolean> = {};
        for (const p of todo?.items ?? []) {
          if (p.work.some((w) => w.state === "offered")) waiting[p.id] = true;
        }
        setArrivals(waiting);
      }),
    [date],
  );
  useEffect(() => {
    void loadDay();
  }, [loadDay]);

  async function search() {
    setError(null);
    setDone(null);
    const { data, error: e } = await api.GET("/api/v1/bookings/slots", { params: { query: { treatment, ...aheadOf(date), limit: 8 } } });
    if (e) setError(messageOf(e));
    setSlots(data?.slots ?? []);
  }

  async function book(slot: Slot) {
    if (!patient) return;
    setError(null);
    const { data, error: e } = await api.POST("/api/v1/bookings", {
      body: {
        resources: slot.resources,
        operators: slot.operators,
        start: slot.start,
        end: slot.end,
        buffer_before_minutes: slot.buffer_before_minutes,
        buffer_after_minutes: slot.buffer_after_minutes,
        treatment,
        patient: patient.id,
      },
    });
    if (e) {
      const body = e as ErrorBody;
      const next = body.error.details.filter((d) => d.path.startsWith("/alternatives")).map((d) => d.message);
      // The slots are searched again (the one refused may be gone), then the refusal is
      // told: the search clears the page's error line, which would hide why.
      await search();
      setError(next.length ? `${body.error.message} — ${t("alternatives")}: ${next.join(", ")}` : messageOf(e));
      return;
    }
    setDone(t("booked", { time: clinicTime(data?.start ?? slot.start), name: patient.name }));
    setSlots(null);
    await loadDay();
  }

  async function checkIn(b: Booking) {
    if (b.process == null) return;
    setError(null);
    const pid = b.process;
    const claimed = await api.POST("/api/v1/processes/{id}/{action}", { params: { path: { id: pid, action: "claim" } }, body: {} });
    const handled = claimed.error
      ? claimed
      : await api.POST("/api/v1/processes/{id}/{action}", { params: { path: { id: pid, action: "handle" } }, body: { attribute: "agree" } });
    if (handled.error) setError(messageOf(handled.error));
    else setDone(t("checkedIn"));
    await loadDay();
  }

  const mayBook = can("bookings:book");
  return (
    <section className="bookings">
      <div className="toolbar">
        <h1>{t("bookings")}</h1>
        <input type="date" aria-label={t("day")} value={date} onChange={(e) => setDate(e.target.value)} />
      </div>
      <ErrorLine error={error} />
      {done && <p role="status">{done}</p>}
      {mayBook && (
        <form
          className="slot-search"
          aria-label={t("findSlot")}
          onSubmit={(e) => {
            e.preventDefault();
            void search();
          }}
        >
          <label>
            {t("treatment")}
            <select value={treatment} onChange={(e) => setTreatment(e.target.value)} required>
              <option value="" />
              {treatments.map((x) => (
                <option key={x.name} value={x.name}>
                  {labelOf(x.label)}
                </option>
              ))}
            </select>
          </label>
          <PatientPicker patient={patient} onPick={setPatient} />
          <button type="submit" disabled={!treatment || !patient}>
            {t("findSlot")}
          </button>
        </form>
      )}
      {slots && (
        <table data-testid="slots">
          <tbody>
            {slots.map((s) => (
              <tr key={`${s.start}:${s.resources.join(",")}`}>
                <td>
                  {clinicTime(s.start)}–{clinicTime(s.end)}
                </td>
                <td>{[...s.resources, ...s.operators].join("、")}</td>
                <td>
                  <button type="button" onClick={() => void book(s)}>
                    {t("book")}
                  </button>
                </td>
              </tr>
            ))}
            {slots.length === 0 && (
              <tr>
                <td>{t("noSlot")}</td>
              </tr>
            )}
          </tbody>
        </table>
      )}
      <Grid bookings={bookings} names={names} />
      <table data-testid="day-list">
        <tbody>
          {bookings.map((b) => (
            <tr key={b.id}>
              <td>
                {clinicTime(b.start)}–{clinicTime(b.end)}
              </td>
              <td>{names[b.treatment ?? ""] ?? b.treatment}</td>
              <td>{[...b.resources, ...b.operators].join("、")}</td>
              <td>{b.process != null && <Link to={`/processes/${b.process}`}>#{b.process}</Link>}</td>
              <td>
                {b.process != null && arrivals[b.process] && (
                  <button type="button" onClick={() => void checkIn(b)}>
                    {t("checkIn")}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
