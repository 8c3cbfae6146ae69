// The pages: the login until there is a session, then the shell (menu, header) around
// the staff workspace's lists, forms and processes.
import { Navigate, Route, Routes } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { useSession } from "./session";
import { Login } from "./pages/Login";
import { Shell } from "./pages/Shell";
import { Home } from "./pages/Home";
import { RecordList } from "./pages/RecordList";
import { RecordForm } from "./pages/RecordForm";
import { WorkList } from "./pages/WorkList";
import { ProcessDetail } from "./pages/ProcessDetail";
import { ServicePage } from "./pages/ServicePage";
import { Dashboard } from "./pages/Dashboard";
import { Bookings } from "./pages/Bookings";
import { Stock } from "./pages/Stock";
import { Resources } from "./pages/ResourceDesigner";
import { Calendars } from "./pages/CalendarDesigner";
import { MenuDesigner } from "./pages/MenuDesigner";
import { Charges } from "./pages/Charges";
import { DataItemEditor, DataItems } from "./pages/Designer";
import { ServiceEditor, Services } from "./pages/ServiceDesigner";
import { RuleEditor, Rules } from "./pages/RuleDesigner";

export function App() {
  const { who, checking } = useSession();
  const { t } = useTranslation();
  if (checking) return <p className="loading">{t("loading")}</p>;
  if (!who) return <Login />;
  return (
    <Routes>
      <Route element={<Shell />}>
        <Route index element={<Home />} />
        <Route path="records/:item" element={<RecordList />} />
        <Route path="records/:item/new" element={<RecordForm />} />
        <Route path="records/:item/:id" element={<RecordForm />} />
        <Route path="work/:view" element={<WorkList />} />
        <Route path="processes/:id" element={<ProcessDetail />} />
        <Route path="services/:name" element={<ServicePage />} />
        <Route path="dashboard" element={<Dashboard />} />
        <Route path="bookings" element={<Bookings />} />
        <Route path="stock" element={<Stock />} />
        <Route path="charges" element={<Charges />} />
        <Route path="designer" element={<DataItems />} />
        <Route path="designer/services" element={<Services />} />
        <Route path="designer/services/new" element={<ServiceEditor />} />
        <Route path="designer/services/:name" element={<ServiceEditor />} />
        <Route path="designer/rules" element={<Rules />} />
        <Route path="designer/resources" element={<Resources />} />
        <Route path="designer/calendars" element={<Calendars />} />
        <Route path="designer/menus" element={<MenuDesigner />} />
        <Route path="designer/rules/new" element={<RuleEditor />} />
        <Route path="designer/rules/:name" element={<RuleEditor />} />
        <Route path="designer/new" element={<DataItemEditor />} />
        <Route path="designer/:name" element={<DataItemEditor />} />
        <Route path="*" element={<Navigate to="/" replace />} />
      </Route>
    </Routes>
  );
}
