// The desk's charges (issue 15 §3): find the patient, see what she was charged (应收,
// 优惠, 实收, how it was paid, whether it stands), charge a treatment — paid at the desk,
// from her 储值卡, or from a course — and void a charge with the reason kept. Each charge
// form carries its own reference, so pressing 收费 twice (or a retry after a dropped
// answer) is one charge, not two.
import { useEffect, useMemo, useState } from "react";
import { Link } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, messageOf, type Schemas } from "../api";
import { useLabel } from "../i18n";
import { useSession } from "../session";
import { PatientPicker, type Patient } from "./PatientPicker";
import { ActionForm, ErrorLine, Pager } from "./common";

type Charge = Schemas["Charge"];
type ChargeType = Schemas["ChargeType"];
type PayMethod = Schemas["PayMethod"];

/** Charges per page. */
const PAGE = 50;
const TYPES: ChargeType[] = ["single", "prepaid", "course", "yearly"];
const METHODS: PayMethod[] = ["wechat", "alipay", "card", "cash", "transfer"];

/** A fresh reference for one charge form: what makes a retry answer the first charge. */
function newReference(): string {
  return `desk-${crypto.randomUUID()}`;
}

export function Charges() {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const { can } = useSession();
  const [patient, setPatient] = useState<Patient | null>(null);
  const [charges, setCharges] = useState<Charge[]>([]);
  const [pages, setPages] = useState<(string | undefined)[]>([undefined]);
  const [more, setMore] = useState(false);
  const [treatments, setTreatments] = useState<Schemas["Treatment"][]>([]);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const after = pages[pages.length - 1];
  const names = useMemo(() => Object.fromEntries(treatments.map((x) => [x.name, labelOf(x.label)])), [treatments, labelOf]);

  useEffect(() => {
    void api.GET("/api/v1/treatments").then(({ data }) => setTreatments(data?.items ?? []));
  }, []);
  useEffect(() => {
    void api
      .GET("/api/v1/charges", { params: { query: { holder: patient?.id, after, limit: PAGE + 1 } } })
      .then(({ data, error: e }) => {
        if (e) return setError(messageOf(e));
        const items = data?.items ?? [];
        setMore(items.length > PAGE);
        setCharges(items.slice(0, PAGE));
      });
  }, [patient, after, version]);

  const changed = (message: string) => {
    setError(null);
    setDone(message);
    setVersion((v) => v + 1);
  };
  const failed = (message: string) => {
    setDone(null);
    setError(message);
  };

  return (
    <section className="charges">
      <div className="toolbar">
        <h1>{t("charges")}</h1>
        <PatientPicker
          patient={patient}
          onPick={(p) => {
            setPatient(p);
            setPages([undefined]);
          }}
        />
      </div>
      <ErrorLine error={error} />
      {done && <p role="status">{done}</p>}
      {patient && can("money:charge") && (
        <ChargeForm key={patient.id} patient={patient} treatments={treatments} onCharged={(c) => changed(t("charged", { amount: c.received }))} onError={failed} />
      )}
      <table data-testid="charges">
        <thead>
          <tr>
            <th>{t("chargedAt")}</th>
            <th>{t("treatment")}</th>
            <th>{t("chargeType")}</th>
            <th>{t("receivable")}</th>
            <th>{t("discount")}</th>
            <th>{t("receivedAmount")}</th>
            <th>{t("chargeStatus")}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {charges.map((c) => (
            <tr key={c.id} data-charge={c.id} data-status={c.status}>
              <td>
                {c.at.slice(0, 16).replace("T", " ")} · {c.actor}
                {c.process != null && (
                  <>
                    {" "}
                    · <Link to={`/processes/${c.process}`}>#{c.process}</Link>
                  </>
                )}
              </td>
              <td>{c.treatment ? (names[c.treatment] ?? c.treatment) : t(`purpose_${c.purpose}`)}</td>
              <td>
                {t(`charge_${c.charge_type}`)}
                {c.method ? ` · ${t(`pay_${c.method}`)}` : ""}
              </td>
              <td>{c.receivable}</td>
              <td>{c.discount}</td>
              <td>{c.received}</td>
              <td>
                {t(`status_${c.status}`, { defaultValue: c.status })}
                {c.voided ? ` · ${c.voided.reason}` : ""}
              </td>
              <td>{c.status !== "void" && can("money:charge") && <Void charge={c} onVoided={() => changed(t("voidedCharge"))} onError={failed} />}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {charges.length === 0 && <p>{t("empty")}</p>}
      <Pager past={pages.length > 1} more={more} onFirst={() => setPages([undefined])} onNext={() => setPages((p) => [...p, charges[charges.length - 1]?.id])} />
    </section>
  );
}

/** Charging one treatment to the patient picked. */
function ChargeForm({
  patient,
  treatments,
  onCharged,
  onError,
}: {
  patient: Patient;
  treatments: Schemas["Treatment"][];
  onCharged: (c: Charge) => void;
  onError: (message: string) => void;
}) {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const [treatment, setTreatment] = useState("");
  const [type, setType] = useState<ChargeType>("single");
  const [method, setMethod] = useState<PayMethod>("wechat");
  const [accounts, setAccounts] = useState<Schemas["Account"][]>([]);
  const [account, setAccount] = useState("");
  const [amount, setAmount] = useState("");
  const [discount, setDiscount] = useState("");
  const [note, setNote] = useState("");
  const [reference, setReference] = useState(newReference);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    void api.GET("/api/v1/accounts", { params: { query: { holder: patient.id, limit: 50 } } }).then(({ data }) => {
      const list = data?.items ?? [];
      setAccounts(list);
      setAccount(list[0]?.id ?? "");
    });
  }, [patient]);
  const submit = async () => {
    setBusy(true);
    const { data, error } = await api.POST("/api/v1/charges", {
      body: {
        reference,
        holder: patient.id,
        treatment: treatment || undefined,
        charge_type: type,
        method: type === "single" ? method : undefined,
        account: type === "prepaid" ? account : undefined,
        amount: amount || undefined,
        discount: discount || undefined,
        note: note || undefined,
      },
    });
    setBusy(false);
    if (error || !data) return onError(messageOf(error));
    // The next charge is another one: a new reference.
    setReference(newReference());
    setAmount("");
    setDiscount("");
    setNote("");
    onCharged(data);
  };
  return (
    <ActionForm className="charge-form" label={t("newCharge")} onSubmit={() => void submit()}>
      <h2>
        {t("newCharge")} · {patient.name}
      </h2>
      <label>
        {t("treatment")}
        <select value={treatment} onChange={(e) => setTreatment(e.target.value)} required>
          <option value="" />
          {treatments.map((x) => (
            <option key={x.name} value={x.name}>
              {labelOf(x.label)}
            </option>
          ))}
        </select>
      </label>
      <label>
        {t("chargeType")}
        <select value={type} onChange={(e) => setType(e.target.value as ChargeType)}>
          {TYPES.map((x) => (
            <option key={x} value={x}>
              {t(`charge_${x}`)}
            </option>
          ))}
        </select>
      </label>
      {type === "single" && (
        <label>
          {t("payMethod")}
          <select value={method} onChange={(e) => setMethod(e.target.value as PayMethod)}>
            {METHODS.map((x) => (
              <option key={x} value={x}>
                {t(`pay_${x}`)}
              </option>
            ))}
          </select>
        </label>
      )}
      {type === "prepaid" && (
        <label>
          {t("account")}
          <select value={account} onChange={(e) => setAccount(e.target.value)} required>
            {accounts.length === 0 && <option value="">{t("noAccount")}</option>}
            {accounts.map((a) => (
              <option key={a.id} value={a.id}>
                {a.label ?? a.id} · {t("balance")} {a.balance}
              </option>
            ))}
          </select>
        </label>
      )}
      <label>
        {t("receivable")}
        <input inputMode="decimal" pattern="\d+(\.\d{1,2})?" value={amount} onChange={(e) => setAmount(e.target.value)} placeholder={t("priceByDefault")} />
      </label>
      <label>
        {t("discount")}
        <input inputMode="decimal" pattern="\d+(\.\d{1,2})?" value={discount} onChange={(e) => setDiscount(e.target.value)} placeholder="0.00" />
      </label>
      <label>
        {t("note")}
        <input value={note} onChange={(e) => setNote(e.target.value)} />
      </label>
      <button type="submit" disabled={busy}>
        {t("charge")}
      </button>
    </ActionForm>
  );
}

/** Voiding a charge: asks why, then the account and the course get back what it took. */
function Void({ charge, onVoided, onError }: { charge: Charge; onVoided: () => void; onError: (message: string) => void }) {
  const { t } = useTranslation();
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  if (!asking)
    return (
      <button type="button" className="link" onClick={() => setAsking(true)}>
        {t("void")}
      </button>
    );
  return (
    <form
      className="void"
      aria-label={t("void")}
      onSubmit={(e) => {
        e.preventDefault();
        void api.POST("/api/v1/charges/{id}/void", { params: { path: { id: charge.id } }, body: { reason } }).then(({ error }) => {
          if (error) return onError(messageOf(error));
          setAsking(false);
          onVoided();
        });
      }}
    >
      <input aria-label={t("voidReason")} value={reason} onChange={(e) => setReason(e.target.value)} required />
      <button type="submit">{t("confirmVoid")}</button>
    </form>
  );
}
