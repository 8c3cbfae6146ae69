// A list of any DataItem's records (`GET /api/v1/records/{item}`): the columns are the
// first fields of its form layout, the search box is the kernel's own search (names and
// their pinyin initials: `zs` finds 张三), a column's header sorts by it (again: the other
// way; Chinese in pinyin order, as the kernel sorts), the filter bar narrows it by any field
// (kept in the address: `?gender=女&birthday__gte=1990-01-01`), pages follow the list's cursor. "New"
// is only offered to a caller whose grants allow creating one.
import { useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, messageOf, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { ErrorLine } from "./common";
import { FilterBar } from "./FilterBar";
import { useSession } from "../session";

/** How many columns a list shows. */
const COLUMNS = 6;
/** Records per page. */
const PAGE = 20;
/** The list's own query keys, never taken as filters from the address. */
const LIST_KEYS = ["q", "sort", "cursor", "page", "limit"];

type Row = Record<string, unknown>;

/** A value as a cell shows it. */
export function cell(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "boolean") return value ? "✓" : "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function RecordList() {
  const { item = "" } = useParams();
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const { can } = useSession();
  const navigate = useNavigate();
  const [fields, setFields] = useState<Schemas["LayoutField"][]>([]);
  const [allFields, setAllFields] = useState<Schemas["LayoutField"][]>([]);
  const [params, setParams] = useSearchParams();
  const filterKey = params.toString();
  // The address's filters; the list's own keys (search, sort, paging) are the page's state.
  const filters = useMemo(
    () => Object.fromEntries([...new URLSearchParams(filterKey).entries()].filter(([key]) => !LIST_KEYS.includes(key))),
    [filterKey],
  );
  const [title, setTitle] = useState("");
  const [q, setQ] = useState("");
  const [sort, setSort] = useState<string | null>(null);
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [rows, setRows] = useState<Row[]>([]);
  const [total, setTotal] = useState(0);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    void api.GET("/api/v1/data-items/{name}/form", { params: { path: { name: item } } }).then(({ data }) => {
      const layout = data?.layout ?? [];
      const own = layout.filter((s) => s.kind === "fields").flatMap((s) => s.fields);
      setAllFields(own);
      setFields(own.slice(0, COLUMNS));
      const schemaTitle = (data?.schema as { title?: unknown } | undefined)?.title;
      setTitle(typeof schemaTitle === "string" ? schemaTitle : item);
    });
  }, [item]);

  const cursor = cursors[cursors.length - 1];
  useEffect(() => {
    const timer = setTimeout(() => {
      void api
        .GET("/api/v1/records/{item}", {
          // The filters are query keys of their own (`field__op=v`), beside the list's.
          params: { path: { item }, query: { ...filters, q: q || undefined, sort: sort ?? undefined, limit: PAGE, cursor } },
        })
        .then(({ data, error: e }) => {
          if (e) {
            setError(messageOf(e));
            return;
          }
          setError(null);
          setRows((data?.items ?? []) as Row[]);
          setTotal(data?.total ?? 0);
          setNext(data?.next_cursor ?? null);
        });
    }, 200);
    return () => clearTimeout(timer);
  }, [item, q, sort, cursor, filters]);

  return (
    <section>
      <div className="toolbar">
        <h1>{title}</h1>
        <input
          type="search"
          aria-label={t("search")}
          placeholder={t("search")}
          value={q}
          onChange={(e) => {
            setQ(e.target.value);
            setCursors([undefined]);
          }}
        />
        {can(`records:${item}:create`) && (
          <Link className="button" to={`/records/${item}/new`}>
            {t("new")}
          </Link>
        )}
      </div>
      <FilterBar
        fields={allFields}
        filters={filters}
        onChange={(next) => {
          setParams(next);
          setCursors([undefined]);
        }}
      />
      <ErrorLine error={error} />
      <table>
        <thead>
          <tr>
            {fields.map((f) => (
              <th key={f.name} aria-sort={sort === f.name ? "ascending" : sort === `-${f.name}` ? "descending" : undefined}>
                <button
                  type="button"
                  className="link"
                  onClick={() => {
                    setSort(sort === f.name ? `-${f.name}` : f.name);
                    setCursors([undefined]);
                  }}
                >
                  {labelOf(f.label)}
                  {sort === f.name ? " ▲" : sort === `-${f.name}` ? " ▼" : ""}
                </button>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={cell(r.id)} onClick={() => navigate(`/records/${item}/${cell(r.id)}`)} className="clickable">
              {fields.map((f) => (
                <td key={f.name}>{cell(r[f.name])}</td>
              ))}
            </tr>
          ))}
          {rows.length === 0 && (
            <tr>
              <td colSpan={Math.max(fields.length, 1)}>{t("empty")}</td>
            </tr>
          )}
        </tbody>
      </table>
      <div className="pager">
        <span>{t("total", { count: total })}</span>
        {cursors.length > 1 && (
          <button type="button" onClick={() => setCursors([undefined])}>
            {t("first")}
          </button>
        )}
        {next && (
          <button type="button" onClick={() => setCursors([...cursors, next])}>
            {t("next")}
          </button>
        )}
      </div>
    </section>
  );
}
