// The designer's menu (issue 15 §2): how every caller's menu is arranged — sections in
// order, each placing work lists, services to start and DataItems' lists, optionally under
// the clinic's own words (`预约` for a service). It starts from the stored layout or, when
// none is stored, from the menu the kernel generates; entries are moved, relabelled, taken
// out or placed from what is not placed yet; saving stores it (`PUT /api/v1/menus/layout`,
// the kernel's problems shown at their section and entry) and the header's menu follows at
// once; "generated" forgets it. Each caller still sees only what their grants allow.
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { api, messageOf, type ErrorBody, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { DesignerTabs } from "./DesignerTabs";
import { ErrorLine } from "./common";

type Section = Schemas["MenuLayoutSection"];
type Entry = Schemas["MenuLayoutEntry"];
type Known = Schemas["MenuItem"];

/** The window event the header's menu re-reads itself on. */
export const MENU_CHANGED = "erpos:menu-changed";

/** An entry's identity: at most once in a layout. */
const idOf = (e: { kind: string; name: string }) => `${e.kind}:${e.name}`;

/** `list` with the item at `i` moved by `by` (−1 up, +1 down). */
function moved<T>(list: T[], i: number, by: number): T[] {
  const j = i + by;
  if (j < 0 || j >= list.length) return list;
  const out = [...list];
  [out[i], out[j]] = [out[j] as T, out[i] as T];
  return out;
}

export function MenuDesigner() {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const [sections, setSections] = useState<Section[]>([]);
  const [known, setKnown] = useState<Known[]>([]);
  const [stored, setStored] = useState(false);
  const [version, setVersion] = useState(0);
  const [problems, setProblems] = useState<Record<string, string[]>>({});
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);

  useEffect(() => {
    void Promise.all([api.GET("/api/v1/menus/layout"), api.GET("/api/v1/menus")]).then(([layout, menu]) => {
      if (layout.error) return setError(messageOf(layout.error));
      const generated = menu.data?.items ?? [];
      setKnown(generated.flatMap((s) => s.items));
      setStored(layout.data?.stored ?? false);
      setSections(
        layout.data?.stored
          ? (layout.data.layout.sections ?? [])
          : generated.map((s) => ({ key: s.key, label: s.label, items: s.items.map((i) => ({ kind: i.kind as Entry["kind"], name: i.name })) })),
      );
    });
  }, [version]);

  const placed = new Set(sections.flatMap((s) => (s.items ?? []).map(idOf)));
  const unplaced = known.filter((k) => !placed.has(idOf(k)));
  const labelOfEntry = (e: Entry) => {
    const k = known.find((x) => idOf(x) === idOf(e));
    return k ? labelOf(k.label) : e.name;
  };
  const change = (i: number, patch: Partial<Section>) => setSections(sections.map((s, at) => (at === i ? { ...s, ...patch } : s)));
  const changeEntries = (i: number, items: Entry[]) => change(i, { items });

  async function save() {
    setDone(null);
    const { error: e } = await api.PUT("/api/v1/menus/layout", { body: { sections } });
    if (e) {
      const rows: Record<string, string[]> = {};
      for (const d of (e as ErrorBody).error.details) {
        const [, , section = "", , entry] = d.path.split("/");
        (rows[entry === undefined ? section : `${section}/${entry}`] ??= []).push(d.message);
      }
      setProblems(rows);
      return setError(messageOf(e));
    }
    setProblems({});
    setError(null);
    setDone(t("menuSaved"));
    setStored(true);
    window.dispatchEvent(new Event(MENU_CHANGED));
  }

  async function forget() {
    const { error: e } = await api.DELETE("/api/v1/menus/layout");
    if (e) return setError(messageOf(e));
    setDone(t("menuGenerated"));
    setVersion((v) => v + 1);
    window.dispatchEvent(new Event(MENU_CHANGED));
  }

  return (
    <section className="menu-designer">
      <DesignerTabs />
      <div className="toolbar">
        <h1>{t("menusTab")}</h1>
        <span>{stored ? t("menuStored") : t("menuIsGenerated")}</span>
        <button type="button" onClick={() => setSections([...sections, { key: `section_${sections.length + 1}`, label: { zh: t("newSection") }, items: [] }])}>
          {t("addSection")}
        </button>
        <button type="button" onClick={() => void save()}>
          {t("save")}
        </button>
        {stored && (
          <button type="button" onClick={() => void forget()}>
            {t("useGenerated")}
          </button>
        )}
      </div>
      <ErrorLine error={error} />
      {done && <p role="status">{done}</p>}
      {sections.map((s, i) => {
        const items = s.items ?? [];
        return (
          <fieldset key={i} className="panel menu-section" data-section={s.key}>
            <legend>{labelOf(s.label) || s.key}</legend>
            <label>
              {t("sectionKey")}
              <input value={s.key} onChange={(e) => change(i, { key: e.target.value })} />
            </label>
            <label>
              {t("labelZh")}
              <input value={s.label.zh ?? ""} onChange={(e) => change(i, { label: { ...s.label, zh: e.target.value } })} />
            </label>
            <button type="button" aria-label={t("moveUp", { name: labelOf(s.label) })} onClick={() => setSections(moved(sections, i, -1))}>
              ↑
            </button>
            <button type="button" aria-label={t("moveDown", { name: labelOf(s.label) })} onClick={() => setSections(moved(sections, i, 1))}>
              ↓
            </button>
            <button type="button" aria-label={t("removeSection", { name: labelOf(s.label) })} onClick={() => setSections(sections.filter((_, at) => at !== i))}>
              ✕
            </button>
            {problems[String(i)] && <p role="alert">{problems[String(i)]?.join("; ")}</p>}
            <ol>
              {items.map((e, j) => {
                const name = labelOfEntry(e);
                return (
                  <li key={idOf(e)} data-entry={idOf(e)}>
                    <span className="entry-kind">{t(`entry_${e.kind}`)}</span> {name}
                    <input
                      aria-label={t("relabel", { name })}
                      placeholder={t("relabelPlaceholder")}
                      value={e.label?.zh ?? ""}
                      onChange={(ev) => changeEntries(i, items.map((x, at) => (at === j ? { ...x, label: ev.target.value ? { zh: ev.target.value } : undefined } : x)))}
                    />
                    <button type="button" aria-label={t("moveUp", { name })} onClick={() => changeEntries(i, moved(items, j, -1))}>
                      ↑
                    </button>
                    <button type="button" aria-label={t("moveDown", { name })} onClick={() => changeEntries(i, moved(items, j, 1))}>
                      ↓
                    </button>
                    <button type="button" aria-label={t("removeEntry", { name })} onClick={() => changeEntries(i, items.filter((_, at) => at !== j))}>
                      ✕
                    </button>
                    {problems[`${i}/${j}`] && <span role="alert">{problems[`${i}/${j}`]?.join("; ")}</span>}
                  </li>
                );
              })}
            </ol>
            {unplaced.length > 0 && (
              <select
                aria-label={t("placeEntry", { name: labelOf(s.label) })}
                value=""
                onChange={(ev) => {
                  const k = unplaced.find((x) => idOf(x) === ev.target.value);
                  if (k) changeEntries(i, [...items, { kind: k.kind as Entry["kind"], name: k.name }]);
                }}
              >
                <option value="">{t("placeEntryHint")}</option>
                {unplaced.map((k) => (
                  <option key={idOf(k)} value={idOf(k)}>
                    {t(`entry_${k.kind}`)} · {labelOf(k.label)}
                  </option>
                ))}
              </select>
            )}
          </fieldset>
        );
      })}
    </section>
  );
}
