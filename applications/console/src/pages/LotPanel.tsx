// One lot of the stock page, opened from its row: its movements in order (received, used,
// counted, written off — with who, when, the reference and why), and, for those who may
// move stock, correcting it: a count corrected after a stock-take (signed) or some written
// off (a broken vial), a reason always required. Beside it, taking a material out of a
// branch for use (first-expiring-first, as the kernel picks the lots). Each form carries
// its own reference, renewed after each success, so a double submit is one movement.
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { api, messageOf, type Schemas } from "../api";
import { ActionForm, BranchPicker, MaterialPicker } from "./common";

type Lot = Schemas["Lot"];

/** A fresh reference for one stock form: a retry answers the first movement. */
function newReference(): string {
  return `stock-${crypto.randomUUID()}`;
}

/** The movements of `lot` and, with `canMove`, correcting it. */
export function LotPanel({ lot, unit, canMove, onMoved }: { lot: Lot; unit: string; canMove: boolean; onMoved: (message: string) => void }) {
  const { t } = useTranslation();
  const [movements, setMovements] = useState<Schemas["Movement"][]>([]);
  const [kind, setKind] = useState<"adjust" | "write_off">("write_off");
  const [quantity, setQuantity] = useState("");
  const [note, setNote] = useState("");
  const [reference] = useState(newReference);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  // Read when the panel opens: the stock page opens it afresh after every movement.
  useEffect(() => {
    void api.GET("/api/v1/stock/lots/{id}/movements", { params: { path: { id: lot.id } } }).then(({ data, error: e }) => {
      if (e) return setError(messageOf(e));
      setMovements(data?.items ?? []);
    });
  }, [lot.id]);

  async function correct() {
    setBusy(true);
    setError(null);
    const { data, error: e } = await api.POST("/api/v1/stock/lots/{id}/movements", {
      params: { path: { id: lot.id } },
      body: { kind, quantity: Number(quantity), note, reference },
    });
    setBusy(false);
    if (e || !data) return setError(messageOf(e));
    // The page opens the panel afresh (its movements read again, a new reference).
    onMoved(t(kind === "adjust" ? "adjusted" : "writtenOff", { lot: lot.lot_number, quantity: kind === "write_off" ? Math.abs(data.quantity) : data.quantity, unit }));
  }

  return (
    <div className="panel lot" role="region" aria-label={t("lotPanel", { lot: lot.lot_number })} data-testid="lot-panel">
      <h2>{t("lotPanel", { lot: lot.lot_number })}</h2>
      <table>
        <thead>
          <tr>
            <th>#</th>
            <th>{t("movementKind")}</th>
            <th>{t("quantity")}</th>
            <th>{t("onHand")}</th>
            <th>{t("by")}</th>
            <th>{t("at")}</th>
            <th>{t("reference")}</th>
            <th>{t("note")}</th>
          </tr>
        </thead>
        <tbody>
          {movements.map((m) => (
            <tr key={m.seq} data-kind={m.kind}>
              <td>{m.seq}</td>
              <td>{t(`movement_${m.kind}`)}</td>
              <td>{m.quantity > 0 ? `+${m.quantity}` : m.quantity}</td>
              <td>{m.on_hand}</td>
              <td>{m.actor}</td>
              <td>{m.at.slice(0, 16).replace("T", " ")}</td>
              <td>{m.reference}</td>
              <td>{m.note ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {error && <p role="alert">{error}</p>}
      {canMove && (
        <ActionForm className="receive" label={t("correctLot")} onSubmit={() => void correct()}>
          <label>
            {t("movementKind")}
            <select value={kind} onChange={(e) => setKind(e.target.value as "adjust" | "write_off")}>
              <option value="write_off">{t("movement_write_off")}</option>
              <option value="adjust">{t("movement_adjust")}</option>
            </select>
          </label>
          <label>
            {t(kind === "adjust" ? "adjustBy" : "quantity")}
            <input type="number" step={1} min={kind === "write_off" ? 1 : undefined} value={quantity} onChange={(e) => setQuantity(e.target.value)} required />
          </label>
          <label>
            {t("why")}
            <input value={note} onChange={(e) => setNote(e.target.value)} required />
          </label>
          <button type="submit" disabled={busy}>
            {t("correct")}
          </button>
        </ActionForm>
      )}
    </div>
  );
}

/** Taking `material` out of a branch for use: the kernel picks the lots, soonest expiry first. */
export function Consume({
  materials,
  branches,
  onConsumed,
  onError,
}: {
  materials: Schemas["Material"][];
  branches: string[];
  onConsumed: (op: Schemas["Operation"]) => void;
  onError: (message: string) => void;
}) {
  const { t } = useTranslation();
  const [material, setMaterial] = useState("");
  const [picked, setBranch] = useState<string | null>(null);
  const branch = picked ?? branches[0] ?? "";
  const [quantity, setQuantity] = useState("");
  const [note, setNote] = useState("");
  const [reference, setReference] = useState(newReference);
  const [busy, setBusy] = useState(false);
  async function submit() {
    setBusy(true);
    const { data, error } = await api.POST("/api/v1/stock/consumptions", {
      body: { material, branch, quantity: Number(quantity), reference, note: note || undefined },
    });
    setBusy(false);
    if (error || !data) return onError(messageOf(error));
    setQuantity("");
    setNote("");
    setReference(newReference());
    onConsumed(data);
  }
  return (
    <ActionForm className="receive" label={t("consumeStock")} onSubmit={() => void submit()}>
      <h2>{t("consumeStock")}</h2>
      <MaterialPicker materials={materials} value={material} onChange={setMaterial} />
      <BranchPicker branches={branches} value={branch} onChange={setBranch} />
      <label>
        {t("quantity")}
        <input type="number" min={1} step={1} value={quantity} onChange={(e) => setQuantity(e.target.value)} required />
      </label>
      <label>
        {t("note")}
        <input value={note} onChange={(e) => setNote(e.target.value)} />
      </label>
      <button type="submit" disabled={busy}>
        {t("consume")}
      </button>
    </ActionForm>
  );
}
