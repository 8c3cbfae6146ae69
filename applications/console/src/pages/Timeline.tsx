// The day's bookings on a timeline (issue 15 §4), for the operator's dashboard: one lane per
// room, device or practitioner holding a booking that day (today unless the operator picks
// another, e.g. to see tomorrow's load the evening before), 09:00–21:00 Shanghai time, each
// visit a bar where it is held, and a line where "now" is when the day is today. Read again when the dashboard's
// stream reports changes (a visit started, checked in, finished), never on a timer.
import { useEffect, useMemo, useState } from "react";
import { Link } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, type Schemas } from "../api";
import { clinicDate, clinicMinutes, clinicTime, dayBounds } from "../clinic";

type Booking = Schemas["Booking"];

/** The timeline's first and last minute of the clinic's day. */
const OPENS = 9 * 60;
const CLOSES = 21 * 60;

/** Where minute `m` of the clinic's day lies on the timeline, in percent. */
function at(m: number): number {
  return (100 * (Math.min(CLOSES, Math.max(OPENS, m)) - OPENS)) / (CLOSES - OPENS);
}

/**
 * Today's bookings as lanes. `version` is the stream's last sequence number: a new one
 * reads the day again (a moment later, so a burst of changes is one read).
 */
export function Timeline({ version }: { version: number | null }) {
  const { t } = useTranslation();
  const [bookings, setBookings] = useState<Booking[]>([]);
  // "Now" as of the last read: the line moves when the day is read again.
  const [nowMs, setNow] = useState(() => Date.now());
  const today = clinicDate(nowMs);
  const [picked, setPicked] = useState<string | null>(null);
  const day = picked ?? today;
  useEffect(() => {
    const timer = setTimeout(() => {
      void api
        .GET("/api/v1/bookings", { params: { query: { ...dayBounds(day), state: "booked", limit: 500 } } })
        .then(({ data }) => {
          setBookings(data?.items ?? []);
          setNow(Date.now());
        });
    }, 300);
    return () => clearTimeout(timer);
  }, [day, version]);
  const lanes = useMemo(() => {
    const by = new Map<string, Booking[]>();
    for (const b of bookings) for (const h of [...b.resources, ...b.operators]) by.set(h, [...(by.get(h) ?? []), b]);
    return [...by.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [bookings]);
  const now = at(clinicMinutes(new Date(nowMs).toISOString()));
  return (
    <section className="timeline" aria-label={t("todaysBookings")}>
      <h2>
        {t("todaysBookings")} <small data-testid="timeline-count">{bookings.length}</small>
      </h2>
      <label className="timeline-day">
        {t("day")}
        <input type="date" value={day} onChange={(e) => setPicked(e.target.value || null)} data-testid="timeline-day" />
      </label>
      <div className="hours" aria-hidden="true">
        {Array.from({ length: (CLOSES - OPENS) / 60 + 1 }, (_, h) => (
          <span key={h} style={{ left: `${at(OPENS + h * 60)}%` }}>
            {String(9 + h).padStart(2, "0")}
          </span>
        ))}
      </div>
      {lanes.map(([holder, list]) => (
        <div key={holder} className="lane" data-testid="lane" data-holder={holder}>
          <span className="holder">{holder}</span>
          <div className="track">
            {day === today && <span className="now" style={{ left: `${now}%` }} />}
            {list.map((b) => {
              const left = at(clinicMinutes(b.start));
              const width = Math.max(0.6, at(clinicMinutes(b.end)) - left);
              const label = `${clinicTime(b.start)}–${clinicTime(b.end)} ${b.treatment ?? ""}`;
              return b.process != null ? (
                <Link key={b.id} className="bar" to={`/processes/${b.process}`} style={{ left: `${left}%`, width: `${width}%` }} title={label} aria-label={label} />
              ) : (
                <span key={b.id} className="bar" style={{ left: `${left}%`, width: `${width}%` }} title={label} />
              );
            })}
          </div>
        </div>
      ))}
      {lanes.length === 0 && <p>{t("empty")}</p>}
    </section>
  );
}
