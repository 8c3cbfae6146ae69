// What several pages show the same way: an error line, a branch's name, and an image the API serves behind
// the session (a service's flowchart), as a blob URL released when the page leaves.
import { useEffect, useState, type ReactNode } from "react";
import { useTranslation } from "react-i18next";
import { blobUrl, type Schemas } from "../api";
import { useLabel } from "../i18n";

/** An error the page reports, announced to screen readers. */
export function ErrorLine({ error }: { error: string | null }) {
  if (!error) return null;
  return (
    <p role="alert" className="error">
      {error}
    </p>
  );
}

/**
 * A flowchart the API draws (`/api/v1/services/{name}/flowchart.svg`, or a process's own
 * with where it is outlined) as a blob URL: null until loaded, or if refused.
 */
export function useFlowchart(path: string | undefined): string | null {
  const [chart, setChart] = useState<string | null>(null);
  useEffect(() => {
    if (!path) return;
    let url: string | null = null;
    void blobUrl(path)
      .then((u) => {
        url = u;
        setChart(u);
      })
      .catch(() => setChart(null));
    return () => {
      if (url) URL.revokeObjectURL(url);
    };
  }, [path]);
  return chart;
}

/**
 * A branch's name as staff say it (徐汇店 for `xuhui`), or its identifier for a branch the
 * catalogue has no name for — so a branch added later still shows.
 */
export function useBranchName(): (branch: string) => string {
  const { t } = useTranslation();
  return (branch) => t(`branch_${branch}`, { defaultValue: branch });
}

/**
 * A list's pager over an `after` cursor: back to the first page once past it, on to the next
 * while the page read one item more than it shows.
 */
export function Pager({ past, more, onFirst, onNext }: { past: boolean; more: boolean; onFirst: () => void; onNext: () => void }) {
  const { t } = useTranslation();
  return (
    <div className="pager">
      {past && (
        <button type="button" onClick={onFirst}>
          {t("first")}
        </button>
      )}
      {more && (
        <button type="button" onClick={onNext}>
          {t("next")}
        </button>
      )}
    </div>
  );
}

/** The `<option>`s of a branch picker: the branches given, by the names staff say. */
export function BranchOptions({ branches }: { branches: string[] }) {
  const branchOf = useBranchName();
  return (
    <>
      {branches.map((b) => (
        <option key={b} value={b}>
          {branchOf(b)}
        </option>
      ))}
    </>
  );
}

/** A required material picker, each material with its unit (the stock page's forms). */
export function MaterialPicker({ materials, value, onChange }: { materials: Schemas["Material"][]; value: string; onChange: (m: string) => void }) {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  return (
    <label>
      {t("material")}
      <select value={value} onChange={(e) => onChange(e.target.value)} required>
        <option value="" />
        {materials.map((m) => (
          <option key={m.name} value={m.name}>
            {labelOf(m.label)} ({m.unit})
          </option>
        ))}
      </select>
    </label>
  );
}

/** A form named for screen readers (`label`) whose submit runs `onSubmit` instead of a page load. */
export function ActionForm({ label, className, onSubmit, children }: { label: string; className: string; onSubmit: () => void; children: ReactNode }) {
  return (
    <form
      className={className}
      aria-label={label}
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit();
      }}
    >
      {children}
    </form>
  );
}

/** A labelled branch picker over the branches given. */
export function BranchPicker({ branches, value, onChange }: { branches: string[]; value: string; onChange: (b: string) => void }) {
  const { t } = useTranslation();
  return (
    <label>
      {t("branch")}
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        <BranchOptions branches={branches} />
      </select>
    </label>
  );
}
