// The clinic's clock: its calendars are Shanghai time (UTC+8, no daylight saving), so the
// console shows and asks for times there whatever the browser's own zone is.

/** The clinic's offset from UTC, in milliseconds. */
const OFFSET_MS = 8 * 3600 * 1000;

/** The clinic's date of instant `ms` (YYYY-MM-DD). */
export function clinicDate(ms: number): string {
  return new Date(ms + OFFSET_MS).toISOString().slice(0, 10);
}

/** The clinic's wall-clock time of `iso` (HH:MM). */
export function clinicTime(iso: string): string {
  return new Date(Date.parse(iso) + OFFSET_MS).toISOString().slice(11, 16);
}

/** Minutes after the clinic's midnight of `iso`. */
export function clinicMinutes(iso: string): number {
  const d = new Date(Date.parse(iso) + OFFSET_MS);
  return d.getUTCHours() * 60 + d.getUTCMinutes();
}

/** The start of clinic day `date` and of the next, as RFC 3339 with the clinic's offset. */
export function dayBounds(date: string): { from: string; to: string } {
  const next = clinicDate(Date.parse(`${date}T00:00:00+08:00`) + 86_400_000);
  return { from: `${date}T00:00:00+08:00`, to: `${next}T00:00:00+08:00` };
}

/** The part of clinic day `date` still ahead: from a minute from now (or the day's start,
 * if later) to its end. */
export function aheadOf(date: string): { from: string; to: string } {
  const bounds = dayBounds(date);
  const soon = Date.now() + 60_000;
  return Date.parse(bounds.from) < soon ? { from: new Date(soon).toISOString(), to: bounds.to } : bounds;
}
