// The designer's resources (issue 15 §2): the rooms, devices and stock a process needs and
// the scheduler allocates all-or-nothing — each with its type, capacity, skills, branch and
// working calendar, and what holds it now — and defining a new one, checked by the kernel
// (an unknown type or calendar is named at its field), or changing one: its row's 编辑 puts
// it in the form (saving replaces it under the same id).
import { useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, messageOf, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { useSession } from "../session";
import { DesignerTabs } from "./DesignerTabs";
import { BranchOptions, ErrorLine, useBranchName } from "./common";

type Resource = Schemas["ResourceShown"];

export function Resources() {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const { can, who } = useSession();
  const branchOf = useBranchName();
  const [resources, setResources] = useState<Resource[]>([]);
  const [types, setTypes] = useState<Schemas["ResourceType"][]>([]);
  const [calendars, setCalendars] = useState<Schemas["WorkingCalendar"][]>([]);
  const [version, setVersion] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [id, setId] = useState("");
  const [zh, setZh] = useState("");
  const [type, setType] = useState("");
  const [capacity, setCapacity] = useState("1");
  const [skills, setSkills] = useState("");
  const [branch, setBranch] = useState("");
  const [calendar, setCalendar] = useState("");
  useEffect(() => {
    void api.GET("/api/v1/resource-types").then(({ data }) => setTypes(data?.items ?? []));
    void api.GET("/api/v1/calendars").then(({ data }) => setCalendars(data?.items ?? []));
  }, []);
  useEffect(() => {
    void api.GET("/api/v1/resources").then(({ data, error: e }) => {
      if (e) return setError(messageOf(e));
      setResources(data?.items ?? []);
    });
  }, [version]);
  const typeLabel = (name: string) => {
    const found = types.find((x) => x.name === name);
    return found ? labelOf(found.label as Schemas["Label"]) : name;
  };
  const taken = resources.some((r) => r.id === id.trim());
  /** Puts `r` in the form, to be changed and saved under its id. */
  function edit(r: Resource) {
    setId(r.id);
    setZh(r.label?.zh ?? "");
    setType(r.type);
    setCapacity(String(r.capacity));
    setSkills(r.skills.join(", "));
    setBranch(r.branch ?? "");
    setCalendar(r.calendar ?? "");
    setDone(null);
  }

  async function save() {
    setDone(null);
    const { data, error: e } = await api.POST("/api/v1/resources", {
      body: {
        id: id.trim(),
        type,
        capacity: Number(capacity),
        skills: skills.split(/[,，、\s]+/).filter(Boolean),
        label: zh ? { zh } : undefined,
        branch: branch || undefined,
        calendar: calendar || undefined,
      },
    });
    if (e || !data) return setError(messageOf(e));
    setError(null);
    setDone(t("resourceSaved", { id: data.id }));
    setId("");
    setZh("");
    setVersion((v) => v + 1);
  }

  return (
    <section className="resources-designer">
      <DesignerTabs />
      <div className="toolbar">
        <h1>{t("resourcesTab")}</h1>
      </div>
      <ErrorLine error={error} />
      {done && <p role="status">{done}</p>}
      {can("organisation") && (
        <form
          className="define-resource"
          aria-label={t("newResource")}
          onSubmit={(e) => {
            e.preventDefault();
            void save();
          }}
        >
          <h2>{t("newResource")}</h2>
          <label>
            {t("resourceId")}
            <input value={id} onChange={(e) => setId(e.target.value)} required pattern="[a-z0-9][a-z0-9_-]*" aria-invalid={taken} />
          </label>
          <label>
            {t("labelZh")}
            <input value={zh} onChange={(e) => setZh(e.target.value)} />
          </label>
          <label>
            {t("resourceType")}
            <select value={type} onChange={(e) => setType(e.target.value)} required>
              <option value="" />
              {types.map((x) => (
                <option key={x.name} value={x.name}>
                  {typeLabel(x.name)}
                </option>
              ))}
            </select>
          </label>
          <label>
            {t("capacity")}
            <input type="number" min={1} step={1} value={capacity} onChange={(e) => setCapacity(e.target.value)} required />
          </label>
          <label>
            {t("skills")}
            <input value={skills} onChange={(e) => setSkills(e.target.value)} placeholder="laser, ipl" />
          </label>
          <label>
            {t("branch")}
            <select value={branch} onChange={(e) => setBranch(e.target.value)}>
              <option value="">{t("everyBranch")}</option>
              <BranchOptions branches={who?.branches ?? []} />
            </select>
          </label>
          <label>
            {t("calendar")}
            <select value={calendar} onChange={(e) => setCalendar(e.target.value)}>
              <option value="" />
              {calendars.map((c) => (
                <option key={c.name} value={c.name}>
                  {labelOf(c.label)}
                </option>
              ))}
            </select>
          </label>
          {taken && <p className="error">{t("resourceReplaces", { id: id.trim() })}</p>}
          <button type="submit">{t("save")}</button>
        </form>
      )}
      <table data-testid="resources">
        <thead>
          <tr>
            <th>{t("resourceId")}</th>
            <th>{t("labelZh")}</th>
            <th>{t("resourceType")}</th>
            <th>{t("capacity")}</th>
            <th>{t("skills")}</th>
            <th>{t("branch")}</th>
            <th>{t("calendar")}</th>
            <th>{t("heldBy")}</th>
            {can("organisation") && <th>{t("edit")}</th>}
          </tr>
        </thead>
        <tbody>
          {resources.map((r) => (
            <tr key={r.id} data-resource={r.id}>
              <td>{r.id}</td>
              <td>{r.label ? labelOf(r.label) : ""}</td>
              <td>{typeLabel(r.type)}</td>
              <td>
                {r.in_use}/{r.capacity}
              </td>
              <td>{r.skills.join("、")}</td>
              <td>{r.branch ? branchOf(r.branch) : t("everyBranch")}</td>
              <td>{r.calendar ?? ""}</td>
              <td>
                {r.allocations.map((a) => (
                  <Link key={a.process} to={`/processes/${a.process}`}>
                    #{a.process}{" "}
                  </Link>
                ))}
              </td>
              {can("organisation") && (
                <td>
                  <button type="button" className="link" aria-label={t("editResource", { id: r.id })} onClick={() => edit(r)}>
                    {t("edit")}
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
