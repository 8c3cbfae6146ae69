// A service as staff see it from the "start" menu: its name and its flowchart.
import { useEffect, useState } from "react";
import { useParams } from "react-router-dom";
import { api } from "../api";
import { useLabel } from "../i18n";
import { useFlowchart } from "./common";

export function ServicePage() {
  const { name = "" } = useParams();
  const { labelOf } = useLabel();
  const [title, setTitle] = useState(name);
  const chart = useFlowchart(`/api/v1/services/${encodeURIComponent(name)}/flowchart.svg`);

  useEffect(() => {
    void api.GET("/api/v1/services/{name}", { params: { path: { name } } }).then(({ data }) => {
      const label = (data?.published ?? data?.draft)?.label;
      setTitle(label ? labelOf(label) : name);
    });
  }, [name, labelOf]);

  return (
    <section>
      <h1>{title}</h1>
      {chart && <img className="flowchart" src={chart} alt={title} />}
    </section>
  );
}
