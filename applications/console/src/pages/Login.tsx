// Logging in with the existing sessions (`POST /api/v1/sessions`): a wrong password and a
// throttled user are told apart, and nothing else about the account is revealed.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { useSession } from "../session";
import { LanguageSwitch } from "./Shell";

export function Login() {
  const { t } = useTranslation();
  const { login } = useSession();
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const status = await login(user.trim(), password);
    setBusy(false);
    if (status === 429) setError(t("throttled"));
    else if (status !== 201) setError(t("loginFailed"));
  }

  return (
    <main className="login">
      <form onSubmit={(e) => void submit(e)} aria-label={t("login")}>
        <h1>{t("product")}</h1>
        <label>
          {t("user")}
          <input name="user" autoComplete="username" value={user} onChange={(e) => setUser(e.target.value)} required />
        </label>
        <label>
          {t("password")}
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {t("login")}
        </button>
        <LanguageSwitch />
      </form>
    </main>
  );
}
