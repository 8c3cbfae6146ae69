// What the handler of a process's current step fills in before agreeing or rejecting: the
// bound record's fields the step lets them change (`form.editable`, sent as `fields`) and
// what the step's instructions take from the handling (`form.inputs`, sent as
// `context.<key>` — the consent step's patient signature and the risks explained). It is
// one @rjsf/core form over a schema put together from the DataItems' own JSON Schemas
// (their types, bounds and options) with their layouts' labels and widgets; the kernel's
// 422 details (`/fields/phone`, `/context/signed_name`) are shown at their inputs.
import { useEffect, useMemo, useState } from "react";
import Form from "@rjsf/core";
import type { ErrorSchema, RJSFSchema, UiSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { api, type ErrorBody, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { drawable, uiSchemaOf } from "./RecordForm";

/** What the step form holds: the record's fields and the context's inputs. */
export type StepValues = { fields: Record<string, unknown>; context: Record<string, unknown> };

type Forms = Record<string, Schemas["Form"]>;
type JsonSchema = { properties?: Record<string, unknown>; required?: string[]; $defs?: Record<string, unknown> };

/** The DataItems whose forms the step needs: the bound record's and each input's. */
function itemsOf(form: Schemas["StepForm"], bound: string | undefined): string[] {
  const names = new Set<string>();
  if (bound && form.editable.length > 0) names.add(bound);
  for (const i of form.inputs) {
    const item = i.item ?? bound;
    if (item) names.add(item);
  }
  return [...names];
}

/**
 * One part of the schema (`fields` or `context`): each entry's own field schema. An entry's
 * `required` is the step's word when it has one (the record's fields); else (an input) the
 * DataItem's.
 */
function part(entries: { key: string; item: string; field: string; required?: boolean }[], forms: Forms, labelOf: (l: Schemas["Label"]) => string) {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  const ui: UiSchema = {};
  const defs: Record<string, unknown> = {};
  // In the order the DataItem's layout shows its fields.
  const at = (e: { item: string; field: string }) => {
    const names = (forms[e.item]?.layout ?? []).flatMap((s) => s.fields.map((x) => x.name));
    const i = names.indexOf(e.field);
    return i < 0 ? names.length : i;
  };
  // Each DataItem's uiSchema, made once.
  const uis: Record<string, UiSchema> = {};
  for (const e of [...entries].sort((a, b) => at(a) - at(b))) {
    const f = forms[e.item];
    const schema = f?.schema as JsonSchema | undefined;
    const own = schema?.properties?.[e.field];
    if (!f || !own) continue;
    Object.assign(defs, schema?.$defs ?? {});
    properties[e.key] = own;
    if (e.required ?? (schema?.required ?? []).includes(e.field)) required.push(e.key);
    uis[e.item] ??= uiSchemaOf(f.layout, labelOf);
    const fieldUi = uis[e.item]?.[e.field] as UiSchema | undefined;
    if (fieldUi) ui[e.key] = fieldUi;
  }
  return { schema: { type: "object", properties, required }, ui, defs };
}

/** The kernel's details as errors of the step form (`/fields/x`, `/context/k`). */
export function stepErrorsOf(body: ErrorBody): ErrorSchema | undefined {
  const root: Record<string, Record<string, { __errors: string[] }>> = {};
  for (const d of body.error.details) {
    const [, group, key] = d.path.split("/");
    if ((group !== "fields" && group !== "context") || !key) continue;
    root[group] ??= {};
    const errors = root[group][key]?.__errors ?? [];
    root[group][key] = { __errors: [...errors, d.message] };
  }
  return Object.keys(root).length > 0 ? (root as unknown as ErrorSchema) : undefined;
}

/** Whether the step asks the handler for anything. */
export function asksFor(form: Schemas["StepForm"] | undefined): boolean {
  return !!form && (form.editable.length > 0 || form.inputs.length > 0);
}

export function StepForm({
  form,
  bound,
  values,
  errors,
  onChange,
}: {
  form: Schemas["StepForm"];
  bound: string | undefined;
  values: StepValues;
  errors: ErrorSchema | undefined;
  onChange: (v: StepValues) => void;
}) {
  const { labelOf } = useLabel();
  const [forms, setForms] = useState<Forms>({});
  const wanted = itemsOf(form, bound).join(",");

  useEffect(() => {
    const names = wanted ? wanted.split(",") : [];
    void Promise.all(names.map((name) => api.GET("/api/v1/data-items/{name}/form", { params: { path: { name } } }))).then((answers) => {
      const found: Forms = {};
      answers.forEach(({ data }) => {
        if (data) found[data.item] = data;
      });
      setForms(found);
    });
  }, [wanted]);

  const drawn = useMemo(() => {
    const fields = part(
      form.editable.map((name) => ({ key: name, item: bound ?? "", field: name, required: form.required.includes(name) })),
      forms,
      labelOf,
    );
    const context = part(
      form.inputs.map((i) => ({ key: i.key, item: i.item ?? bound ?? "", field: i.field })),
      forms,
      labelOf,
    );
    const properties: Record<string, unknown> = {};
    if (Object.keys(fields.schema.properties).length > 0) properties.fields = fields.schema;
    if (Object.keys(context.schema.properties).length > 0) properties.context = context.schema;
    if (Object.keys(properties).length === 0) return null;
    const schema = drawable({ type: "object", properties, $defs: { ...fields.defs, ...context.defs } }) as RJSFSchema;
    const ui: UiSchema = {
      fields: { ...fields.ui, "ui:label": false },
      context: { ...context.ui, "ui:label": false },
      "ui:submitButtonOptions": { norender: true },
    };
    return { schema, ui };
  }, [form, forms, bound, labelOf]);

  if (!drawn) return null;
  return (
    <div className="step-form" data-testid="step-form">
      <Form
        schema={drawn.schema}
        uiSchema={drawn.ui}
        formData={values}
        validator={validator}
        noValidate
        showErrorList={false}
        extraErrors={errors}
        onChange={(e) => {
          const next = e.formData as Partial<StepValues>;
          onChange({ fields: next.fields ?? {}, context: next.context ?? {} });
        }}
      />
    </div>
  );
}
