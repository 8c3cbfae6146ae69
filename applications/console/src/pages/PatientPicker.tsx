// Finding a patient as the desk does (issue 15 §3): type a name or its pinyin initials
// (`zs` finds 张三) and pick from the matches; shared by the bookings and charges pages so a
// patient is found the same way wherever the desk needs one.
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { api } from "../api";

/** A patient picked: the record id and the name shown for it. */
export interface Patient {
  id: string;
  name: string;
}

/** A search box with the matches below it; `onPick(null)` when the search is typed again. */
export function PatientPicker({ patient, onPick }: { patient: Patient | null; onPick: (p: Patient | null) => void }) {
  const { t } = useTranslation();
  const [q, setQ] = useState("");
  const [patients, setPatients] = useState<Record<string, unknown>[]>([]);
  useEffect(() => {
    if (!q) return;
    const timer = setTimeout(() => {
      void api
        .GET("/api/v1/records/{item}", { params: { path: { item: "patient" }, query: { q, limit: 8 } } })
        .then(({ data }) => setPatients((data?.items ?? []) as Record<string, unknown>[]));
    }, 200);
    return () => clearTimeout(timer);
  }, [q]);
  return (
    <>
      <label>
        {t("patient")}
        <input
          type="search"
          value={patient ? patient.name : q}
          onChange={(e) => {
            onPick(null);
            setQ(e.target.value);
          }}
          placeholder={t("search")}
        />
      </label>
      {!patient && q && (
        <ul className="choices" aria-label={t("patient")}>
          {patients.map((p) => (
            <li key={String(p.id)}>
              <button type="button" className="link" onClick={() => onPick({ id: String(p.id), name: String(p.xingming ?? p.id) })}>
                {String(p.xingming ?? "")} {String(p.record_no ?? "")}
              </button>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
