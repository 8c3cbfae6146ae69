// The filters of a record list, as the kernel's list takes them (`field=v` or
// `field__op=v`, see GET /api/v1/records/{item}): one row to add a filter — a field of the
// DataItem, an operator that fits its type, a value (the options of an enum, yes/no of a
// boolean, a date picker of a date) — and a chip per filter that removes it. The filters
// live in the page's address, so a filtered list can be bookmarked or linked from a menu.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import type { Schemas } from "../api";
import { useLabel } from "../i18n";

type Field = Schemas["LayoutField"];

/** The operators the kernel accepts for a field of this type (records.rs `Op`). */
export function operatorsOf(type: Field["type"]): string[] {
  switch (type) {
    case "text":
      return ["eq", "ne", "contains", "in", "null"];
    case "enum":
      return ["eq", "ne", "in", "contains", "null"];
    case "boolean":
      return ["eq", "null"];
    case "json":
      return ["null"];
    case "reference":
      return ["eq", "ne", "in", "null"];
    default:
      return ["eq", "ne", "lt", "lte", "gt", "gte", "in", "null"];
  }
}

/** The query key of a filter: `field` for equality, else `field__op`. */
export function keyOf(field: string, op: string): string {
  return op === "eq" ? field : `${field}__${op}`;
}

/** A query key split back into its field and operator. */
export function splitKey(key: string): { field: string; op: string } {
  const at = key.indexOf("__");
  return at < 0 ? { field: key, op: "eq" } : { field: key.slice(0, at), op: key.slice(at + 2) };
}

/** The input a value of this field is typed in. */
function ValueInput({ field, op, value, onChange }: { field: Field; op: string; value: string; onChange: (v: string) => void }) {
  const { t } = useTranslation();
  if (op === "null" || field.type === "boolean") {
    return (
      <select aria-label={t("filterValue")} value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="" />
        <option value="true">{op === "null" ? t("filterEmpty") : t("yes")}</option>
        <option value="false">{op === "null" ? t("filterFilled") : t("no")}</option>
      </select>
    );
  }
  if (field.type === "enum" && (op === "eq" || op === "ne") && (field.options ?? []).length > 0) {
    return (
      <select aria-label={t("filterValue")} value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="" />
        {(field.options ?? []).map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    );
  }
  const type = op === "in" ? "text" : field.type === "date" ? "date" : field.type === "integer" || field.type === "decimal" || field.type === "money" ? "number" : "text";
  return (
    <input
      aria-label={t("filterValue")}
      type={type}
      step="any"
      value={value}
      placeholder={op === "in" ? t("filterList") : ""}
      onChange={(e) => onChange(e.target.value)}
    />
  );
}

/** The filters of a list: `filters` maps query keys to values; `onChange` gets the new map. */
export function FilterBar({ fields, filters, onChange }: { fields: Field[]; filters: Record<string, string>; onChange: (next: Record<string, string>) => void }) {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const [name, setName] = useState("");
  const [op, setOp] = useState("eq");
  const [value, setValue] = useState("");
  const field = fields.find((f) => f.name === name);
  const ops = field ? operatorsOf(field.type) : [];

  function add() {
    if (!field || value === "") return;
    onChange({ ...filters, [keyOf(field.name, op)]: value });
    setValue("");
  }

  return (
    <div className="filters" role="group" aria-label={t("filters")}>
      <select
        aria-label={t("filterField")}
        value={name}
        onChange={(e) => {
          setName(e.target.value);
          setOp("eq");
          setValue("");
        }}
      >
        <option value="">{t("filterAdd")}</option>
        {fields.map((f) => (
          <option key={f.name} value={f.name}>
            {labelOf(f.label)}
          </option>
        ))}
      </select>
      {field && (
        <>
          <select aria-label={t("filterOp")} value={op} onChange={(e) => setOp(e.target.value)}>
            {ops.map((o) => (
              <option key={o} value={o}>
                {t(`op_${o}`)}
              </option>
            ))}
          </select>
          <ValueInput field={field} op={op} value={value} onChange={setValue} />
          <button type="button" onClick={add} disabled={value === ""}>
            {t("filterApply")}
          </button>
        </>
      )}
      {Object.entries(filters).map(([key, v]) => {
        const { field: f, op: o } = splitKey(key);
        const def = fields.find((x) => x.name === f);
        const label = def?.label;
        // Yes / no and empty / not empty read as words, not as the query's true / false.
        const shown = o === "null" ? (v === "true" ? t("filterEmpty") : t("filterFilled")) : def?.type === "boolean" ? (v === "true" ? t("yes") : t("no")) : v;
        return (
          <span className="chip" key={key}>
            {label ? labelOf(label) : f} {o === "null" ? "" : t(`op_${o}`)} {shown}
            <button
              type="button"
              className="link"
              aria-label={t("filterRemove", { name: label ? labelOf(label) : f })}
              onClick={() => {
                const next = { ...filters };
                delete next[key];
                onChange(next);
              }}
            >
              ×
            </button>
          </span>
        );
      })}
    </div>
  );
}
