// Compare: overlaid charts of several experiments and their settings side by side.

import { get } from "./api.js";
import { h } from "./dom.js";
import { lineChart } from "./charts.js";
import { query } from "./app.js";

export async function comparePage(page) {
  const experiments = await get("/api/experiments");
  const chosen = new Set((query().get("names") || "").split(",").filter(Boolean));
  const picker = h("fieldset.picker", {}, h("legend", {}, "Experiments"),
    experiments.map((e, i) => {
      const box = h("input", { type: "checkbox", id: `cmp-${i}`, value: e.name, checked: chosen.has(e.name) });
      box.addEventListener("change", () => {
        box.checked ? chosen.add(e.name) : chosen.delete(e.name);
        location.hash = `#/compare?names=${encodeURIComponent([...chosen].join(","))}`;
      });
      return h("span.check", {}, box, h("label", { for: `cmp-${i}` }, e.name));
    }));
  page.append(h("h1", {}, "Compare experiments"), picker);
  if (chosen.size < 1) {
    page.append(h("p.muted", {}, "Pick experiments to compare."));
    return;
  }
  const c = await get(`/api/compare?names=${encodeURIComponent([...chosen].join(","))}`);
  const series = (key) => c.names.map((n) => ({ name: n, points: (c.series[n] && c.series[n][key]) || [] }));
  const onlyDiff = h("input#cmp-diff", { type: "checkbox", checked: true });
  const body = h("tbody");
  const draw = () => body.replaceChildren(...c.settings.filter((r) => !onlyDiff.checked || r.differs)
    .map((r) => h(`tr${r.differs ? ".differs" : ""}`, {}, h("th", { scope: "row" }, r.key),
      r.values.map((v) => h("td", {}, typeof v === "string" ? v : JSON.stringify(v))))));
  onlyDiff.addEventListener("change", draw);
  draw();
  page.append(h("div.charts", {},
    lineChart("Training loss", series("train_loss")),
    lineChart("Validation loss", series("validation_loss")),
    lineChart("Validation metric", series("validation_metric")),
    lineChart("Learning rate", series("learning_rate"))),
  h("section.card", {}, h("h2", {}, "Settings"),
    h("span.check", {}, onlyDiff, h("label", { for: "cmp-diff" }, "Differences only")),
    h("div.scroll", {}, h("table#cmp-settings", {}, h("thead", {}, h("tr", {}, h("th", {}, "setting"), c.names.map((n) => h("th", {}, n)))), body))));
}
