// The designer's sections side by side — DataItems, services, rules, resources, calendars, menus — so an analyst moves
// between what a business is made of without going back to the menu; and the list page
// each section opens on.
import type { ReactNode } from "react";
import { Link, NavLink } from "react-router-dom";
import { useTranslation } from "react-i18next";

/** The tabs above every designer page. */
export function DesignerTabs() {
  const { t } = useTranslation();
  return (
    <nav className="tabs" aria-label={t("designer")}>
      <NavLink to="/designer" end>
        {t("dataItems")}
      </NavLink>
      <NavLink to="/designer/services">{t("services")}</NavLink>
      <NavLink to="/designer/rules">{t("rules")}</NavLink>
      <NavLink to="/designer/resources">{t("resourcesTab")}</NavLink>
      <NavLink to="/designer/calendars">{t("calendarsTab")}</NavLink>
      <NavLink to="/designer/menus">{t("menusTab")}</NavLink>
    </nav>
  );
}

/** A designer section's list: its tabs, title, "new" button and a table of what exists. */
export function DesignerList({ title, newLabel, newTo, head, children }: { title: string; newLabel: string; newTo: string; head: string[]; children: ReactNode }) {
  return (
    <section>
      <DesignerTabs />
      <div className="toolbar">
        <h1>{title}</h1>
        <Link className="button" to={newTo}>
          {newLabel}
        </Link>
      </div>
      <table>
        <thead>
          <tr>
            {head.map((h) => (
              <th key={h}>{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </section>
  );
}
