// The first page after logging in.
import { useTranslation } from "react-i18next";
import { useSession } from "../session";

export function Home() {
  const { t } = useTranslation();
  const { who } = useSession();
  return (
    <section>
      <h1>{t("welcome", { user: who?.user ?? "" })}</h1>
      <p>{t("home")}</p>
    </section>
  );
}
