// Home: counts, running experiments, the machine, recent datasets and experiments.

import { get } from "./api.js";
import { h, bytes, badge, progressBar, duration, date } from "./dom.js";
import { onLeave } from "./app.js";

export async function homePage(page) {
  const draw = async () => {
    const [datasets, experiments, system] = await Promise.all([
      get("/api/datasets"), get("/api/experiments"), get("/api/system")]);
    const running = experiments.filter((e) => e.status === "running" || e.status === "queued");
    const count = (label, value, href) => h("a.stat", { href }, h("strong", {}, String(value)), h("span", {}, label));
    page.replaceChildren(
      h("h1", {}, "Lathe studio"),
      h("div.stats", {},
        count("datasets", datasets.length, "#/datasets"),
        count("experiments", experiments.length, "#/experiments"),
        count("running or queued", running.length, "#/experiments"),
        count("finished", experiments.filter((e) => e.status === "finished").length, "#/experiments")),
      h("div.actions", {},
        h("a.button", { href: "#/datasets/import" }, "Import dataset"),
        h("a.button.secondary", { href: "#/experiments/new" }, "New experiment")),
      h("section.card", {}, h("h2", {}, "Running"),
        running.length ? h("ul.plain", {}, running.map((e) => h("li", {},
          h("a", { href: `#/experiments/${encodeURIComponent(e.name)}` }, e.name), " ", badge(e.status),
          progressBar(e.progress.fraction, `${e.name} progress`),
          h("small.muted", {}, `ETA ${duration(e.progress.eta_seconds)}`))))
          : h("p.muted", {}, "Nothing is training.")),
      h("section.card", {}, h("h2", {}, "Machine"),
        h("dl.grid2", {},
          h("dt", {}, "CPU"), h("dd", {}, `${system.cpu_percent.toFixed(0)} % of ${system.cpus} cores`),
          h("dt", {}, "Memory"), h("dd", {}, `${bytes(system.memory_used)} of ${bytes(system.memory_total)}`),
          h("dt", {}, "Disk"), h("dd", {}, `${bytes(system.disk_used)} of ${bytes(system.disk_total)} (${system.workspace})`),
          h("dt", {}, "GPUs"), h("dd", {}, system.gpus.length ? system.gpus.map((g) => `${g.name} ${bytes(g.memory_used)} / ${bytes(g.memory_total)}`).join("; ") : "none (training runs on the CPU)"),
          h("dt", {}, "Parallel jobs"), h("dd", {}, String(system.max_jobs)))),
      h("div.two", {},
        h("section.card", {}, h("h2", {}, "Recent datasets"),
          h("ul.plain", {}, datasets.slice(0, 5).map((d) => h("li", {},
            h("a", { href: `#/datasets/${encodeURIComponent(d.name)}` }, d.name), h("small.muted", {}, ` ${d.rows} rows · ${date(d.created)}`))))),
        h("section.card", {}, h("h2", {}, "Recent experiments"),
          h("ul.plain", {}, experiments.slice(-5).reverse().map((e) => h("li", {},
            h("a", { href: `#/experiments/${encodeURIComponent(e.name)}` }, e.name), " ", badge(e.status)))))));
  };
  await draw();
  const timer = setInterval(() => draw().catch(() => {}), 3000);
  onLeave(() => clearInterval(timer));
}
