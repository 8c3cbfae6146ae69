// The clinic's stock (issue 15 §3), for the nurses who receive and use it: what needs
// attention first (lots that stop being usable soon, materials under their reorder level),
// then the lots on hand per material and branch, a page at a time, and receiving a
// delivery — lot number and expiry kept for traceability, the delivery note as the
// reference so a double submit is one receipt.
import { useEffect, useMemo, useState } from "react";
import { useTranslation } from "react-i18next";
import { api, messageOf, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { useSession } from "../session";
import { ActionForm, BranchOptions, BranchPicker, ErrorLine, MaterialPicker, Pager, useBranchName } from "./common";
import { Consume, LotPanel } from "./LotPanel";

type Lot = Schemas["Lot"];
type Material = Schemas["Material"];

/** Lots per page of the list. */
const PAGE = 50;

/** A lot's day of expiry and, once opened, until when it may be used. */
function usable(lot: Lot): string {
  return lot.opened_at ? `${lot.expires_on} (${lot.usable_until.slice(0, 16).replace("T", " ")})` : lot.expires_on;
}

export function Stock() {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const { can, who } = useSession();
  const branches = who?.branches ?? [];
  const branchOf = useBranchName();
  const [materials, setMaterials] = useState<Material[]>([]);
  const [alerts, setAlerts] = useState<Schemas["Alerts"] | null>(null);
  const [lots, setLots] = useState<Lot[]>([]);
  const [material, setMaterial] = useState("");
  const [branch, setBranch] = useState("");
  const [inStock, setInStock] = useState(true);
  // The cursors of the pages read so far: the last is the page shown.
  const [pages, setPages] = useState<(string | undefined)[]>([undefined]);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const [opened, setOpened] = useState<Lot | null>(null);
  const after = pages[pages.length - 1];
  const names = useMemo(() => Object.fromEntries(materials.map((m) => [m.name ?? "", m])), [materials]);
  const nameOf = (m: string) => (names[m] ? labelOf(names[m].label) : m);
  const unitOf = (m: string) => names[m]?.unit ?? "";

  useEffect(() => {
    void api.GET("/api/v1/stock/materials").then(({ data, error: e }) => {
      if (e) return setError(messageOf(e));
      setMaterials(data?.items ?? []);
    });
  }, []);
  useEffect(() => {
    void api.GET("/api/v1/stock/alerts", { params: { query: { branch: branch || undefined } } }).then(({ data }) => setAlerts(data ?? null));
  }, [branch, version]);
  useEffect(() => {
    void api
      .GET("/api/v1/stock/lots", {
        params: { query: { material: material || undefined, branch: branch || undefined, in_stock: inStock || undefined, after, limit: PAGE + 1 } },
      })
      .then(({ data, error: e }) => {
        if (e) return setError(messageOf(e));
        const items = data?.items ?? [];
        setMore(items.length > PAGE);
        setLots(items.slice(0, PAGE));
      });
  }, [material, branch, inStock, after, version]);
  const filter = (set: () => void) => {
    set();
    setPages([undefined]);
  };

  return (
    <section className="stock">
      <div className="toolbar">
        <h1>{t("stock")}</h1>
        <label>
          {t("material")}
          <select value={material} onChange={(e) => filter(() => setMaterial(e.target.value))}>
            <option value="">{t("all")}</option>
            {materials.map((m) => (
              <option key={m.name} value={m.name}>
                {labelOf(m.label)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("branch")}
          <select value={branch} onChange={(e) => filter(() => setBranch(e.target.value))}>
            <option value="">{t("all")}</option>
            <BranchOptions branches={branches} />
          </select>
        </label>
        <label>
          <input type="checkbox" checked={inStock} onChange={(e) => filter(() => setInStock(e.target.checked))} />
          {t("onlyInStock")}
        </label>
      </div>
      <ErrorLine error={error} />
      {done && <p role="status">{done}</p>}
      {alerts && (alerts.expiring.length > 0 || alerts.low.length > 0) && (
        <div className="panel alerts" role="region" aria-label={t("stockAlerts")} data-testid="stock-alerts">
          <h2>{t("stockAlerts")}</h2>
          <ul>
            {alerts.low.map((l) => (
              <li key={`low:${l.branch}:${l.material}`} className="low">
                {t("lowStock", { material: nameOf(l.material), branch: branchOf(l.branch), on_hand: l.on_hand, level: l.reorder_level, unit: unitOf(l.material) })}
              </li>
            ))}
            {alerts.expiring.map((l) => (
              <li key={`exp:${l.id}`} className="expiring">
                {t("expiringLot", { material: nameOf(l.material), lot: l.lot_number, branch: branchOf(l.branch), day: usable(l), on_hand: l.on_hand, unit: unitOf(l.material) })}
              </li>
            ))}
          </ul>
        </div>
      )}
      {can("stock:move") && (
        <Receive
          materials={materials}
          branches={branches}
          onReceived={(op) => {
            setError(null);
            setDone(t("received", { quantity: op.quantity, unit: unitOf(op.material), material: nameOf(op.material) }));
            setVersion((v) => v + 1);
          }}
          onError={(m) => {
            setDone(null);
            setError(m);
          }}
        />
      )}
      {can("stock:move") && (
        <Consume
          materials={materials}
          branches={branches}
          onConsumed={(op) => {
            setError(null);
            setDone(t("consumed", { quantity: op.quantity, unit: unitOf(op.material), material: nameOf(op.material), lots: op.lots.length }));
            setVersion((v) => v + 1);
          }}
          onError={(m) => {
            setDone(null);
            setError(m);
          }}
        />
      )}
      <table data-testid="lots">
        <thead>
          <tr>
            <th>{t("material")}</th>
            <th>{t("lotNumber")}</th>
            <th>{t("branch")}</th>
            <th>{t("expiresOn")}</th>
            <th>{t("onHand")}</th>
          </tr>
        </thead>
        <tbody>
          {lots.map((l) => (
            <tr key={l.id} data-lot={l.lot_number} className={opened?.id === l.id ? "clickable selected" : "clickable"} onClick={() => setOpened(l)}>
              <td>{nameOf(l.material)}</td>
              <td>
                <button type="button" className="link" onClick={() => setOpened(l)}>
                  {l.lot_number}
                </button>
              </td>
              <td>{branchOf(l.branch)}</td>
              <td>{usable(l)}</td>
              <td>
                {l.on_hand} {unitOf(l.material)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {lots.length === 0 && <p>{t("empty")}</p>}
      {opened && (
        <LotPanel
          key={`${opened.id}:${version}`}
          lot={opened}
          unit={unitOf(opened.material)}
          canMove={can("stock:move")}
          onMoved={(message) => {
            setError(null);
            setDone(message);
            setVersion((v) => v + 1);
          }}
        />
      )}
      <Pager past={pages.length > 1} more={more} onFirst={() => setPages([undefined])} onNext={() => setPages((p) => [...p, lots[lots.length - 1]?.id])} />
    </section>
  );
}

/** Receiving a delivery: one lot of one material into one branch. */
function Receive({
  materials,
  branches,
  onReceived,
  onError,
}: {
  materials: Material[];
  branches: string[];
  onReceived: (op: Schemas["Operation"]) => void;
  onError: (message: string) => void;
}) {
  const { t } = useTranslation();
  const [material, setMaterial] = useState("");
  // The caller's first branch until another is picked (the list arrives with the session).
  const [picked, setBranch] = useState<string | null>(null);
  const branch = picked ?? branches[0] ?? "";
  const [lot, setLot] = useState("");
  const [expires, setExpires] = useState("");
  const [quantity, setQuantity] = useState("");
  const [reference, setReference] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setBusy(true);
    const { data, error } = await api.POST("/api/v1/stock/receipts", {
      body: { material, branch, lot_number: lot, expires_on: expires, quantity: Number(quantity), reference },
    });
    setBusy(false);
    if (error || !data) return onError(messageOf(error));
    setLot("");
    setQuantity("");
    setReference("");
    onReceived(data);
  };
  return (
    <ActionForm className="receive" label={t("receiveStock")} onSubmit={() => void submit()}>
      <h2>{t("receiveStock")}</h2>
      <MaterialPicker materials={materials} value={material} onChange={setMaterial} />
      <BranchPicker branches={branches} value={branch} onChange={setBranch} />
      <label>
        {t("lotNumber")}
        <input value={lot} onChange={(e) => setLot(e.target.value)} required />
      </label>
      <label>
        {t("expiresOn")}
        <input type="date" value={expires} onChange={(e) => setExpires(e.target.value)} required />
      </label>
      <label>
        {t("quantity")}
        <input type="number" min={1} step={1} value={quantity} onChange={(e) => setQuantity(e.target.value)} required />
      </label>
      <label>
        {t("deliveryNote")}
        <input value={reference} onChange={(e) => setReference(e.target.value)} required />
      </label>
      <button type="submit" disabled={busy}>
        {t("receive")}
      </button>
    </ActionForm>
  );
}
