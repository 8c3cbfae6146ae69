// The frame of every page: the caller's generated menu (`GET /api/v1/menus`, already
// limited to what their grants allow), who is logged in, the zh/en switch and logging out.
import { useEffect, useState } from "react";
import { NavLink, Outlet } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { api, type Schemas } from "../api";
import { setLanguage, useLabel } from "../i18n";
import { useSession } from "../session";
import { MENU_CHANGED } from "./MenuDesigner";

/** Where a menu entry opens in the console. */
function routeOf(entry: Schemas["MenuItem"]): string {
  switch (entry.kind) {
    case "tasks":
      return `/work/${entry.name}`;
    case "service":
      return `/services/${entry.name}`;
    default:
      return `/records/${entry.name}`;
  }
}

/** The button that switches between Chinese and English. */
export function LanguageSwitch() {
  const { t } = useTranslation();
  const { lang } = useLabel();
  return (
    <button type="button" className="link" onClick={() => setLanguage(lang === "zh" ? "en" : "zh")}>
      {t("language")}
    </button>
  );
}

export function Shell() {
  const { t } = useTranslation();
  const { labelOf } = useLabel();
  const { who, logout, can } = useSession();
  const [menu, setMenu] = useState<Schemas["MenuSection"][]>([]);

  useEffect(() => {
    const read = () => void api.GET("/api/v1/menus").then(({ data }) => setMenu(data?.items ?? []));
    read();
    // The designer's menu page says when the layout changed: the menu follows at once.
    window.addEventListener(MENU_CHANGED, read);
    return () => window.removeEventListener(MENU_CHANGED, read);
  }, []);

  return (
    <div className="shell">
      <header>
        <NavLink to="/" className="brand">
          {t("product")}
        </NavLink>
        {can("design") && <NavLink to="/designer">{t("designer")}</NavLink>}
        {can("bookings:read") && <NavLink to="/bookings">{t("bookings")}</NavLink>}
        {can("money:read") && <NavLink to="/charges">{t("charges")}</NavLink>}
        {can("stock:read") && <NavLink to="/stock">{t("stock")}</NavLink>}
        {can("monitor") && <NavLink to="/dashboard">{t("dashboard")}</NavLink>}
        <span className="who">{who?.user}</span>
        <LanguageSwitch />
        <button type="button" className="link" onClick={() => void logout()}>
          {t("logout")}
        </button>
      </header>
      <nav aria-label="menu">
        {menu.map((section) => (
          <section key={section.key}>
            <h2>{labelOf(section.label)}</h2>
            <ul>
              {section.items.map((entry) => (
                <li key={`${entry.kind}:${entry.name}`}>
                  <NavLink to={routeOf(entry)}>{labelOf(entry.label)}</NavLink>
                </li>
              ))}
            </ul>
          </section>
        ))}
      </nav>
      <main>
        <Outlet />
      </main>
    </div>
  );
}
