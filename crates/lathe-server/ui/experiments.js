// Experiments: list with multi-select actions, the create form (schema-generated,
// cfg.yaml import, clone, grid search), and the experiment view (live charts,
// summary, prediction insights, logs, config, chat, actions and downloads).

import { call, get, stream, downloadUrl } from "./api.js";
import { h, fill, toast, badge, progressBar, duration, num, date, bytes, tabs, confirmed } from "./dom.js";
import { lineChart } from "./charts.js";
import { settingsForm } from "./form.js";
import { onLeave, query } from "./app.js";

const enc = encodeURIComponent;

export async function experimentsPage(page) {
  const selected = new Set();
  const status = h("select", { "aria-label": "Filter by status" },
    ["all", "queued", "running", "finished", "failed", "stopped", "created"].map((s) => h("option", { value: s }, s)));
  const filter = h("input", { type: "search", placeholder: "Filter by name or dataset", "aria-label": "Filter experiments" });
  const body = h("tbody");
  let experiments = [];
  const act = (label, fn, cls = "") => h(`button.small${cls}`, { type: "button", onclick: async () => {
    if (!selected.size) return toast("Select experiments first", true);
    try { await fn([...selected]); } catch (e) { toast(e.message, true); }
    await draw();
  } }, label);
  const draw = async () => {
    experiments = await get("/api/experiments");
    const f = filter.value.toLowerCase();
    const shown = experiments.filter((e) => (status.value === "all" || e.status === status.value) &&
      (e.name.toLowerCase().includes(f) || e.dataset.toLowerCase().includes(f)));
    body.replaceChildren(...shown.map((e) => {
      const box = h("input", { type: "checkbox", "aria-label": `Select ${e.name}`, checked: selected.has(e.name) });
      box.addEventListener("change", () => (box.checked ? selected.add(e.name) : selected.delete(e.name)));
      return h("tr", {}, h("td", {}, box),
        h("td", {}, h("a", { href: `#/experiments/${enc(e.name)}` }, e.name)),
        h("td", {}, e.dataset), h("td", {}, e.backbone), h("td", {}, badge(e.status)),
        h("td", {}, progressBar(e.progress.fraction, `${e.name} progress`)),
        h("td", {}, e.status === "running" ? duration(e.progress.eta_seconds) : "–"),
        h("td.num", {}, e.progress.validation_metric !== null ? `${e.progress.metric} ${num(e.progress.validation_metric)}` : "–"),
        h("td", {}, date(e.record?.created ?? e.created)));
    }));
  };
  filter.addEventListener("input", draw);
  status.addEventListener("change", draw);
  page.append(h("div.head", {}, h("h1", {}, "Experiments"), h("a.button", { href: "#/experiments/new" }, "New experiment")),
    h("div.toolbar", {}, filter, status,
      act("Stop", (names) => Promise.all(names.map((n) => call("POST", `/api/experiments/${enc(n)}/stop`)))),
      act("Delete", async (names) => {
        if (!confirmed(`Delete ${names.join(", ")}?`)) return;
        await Promise.all(names.map((n) => call("DELETE", `/api/experiments/${enc(n)}`)));
        names.forEach((n) => selected.delete(n));
      }, ".danger"),
      act("Compare", async (names) => { location.hash = `#/compare?names=${enc(names.join(","))}`; })),
    h("table", {}, h("thead", {}, h("tr", {}, ...["", "Name", "Dataset", "Backbone", "Status", "Progress", "ETA", "Metric", "Created"].map((t) => h("th", {}, t)))), body));
  await draw();
  const timer = setInterval(() => draw().catch(() => {}), 2000);
  onLeave(() => clearInterval(timer));
}

export async function newExperimentPage(page) {
  const [schema, datasets, experiments] = await Promise.all([get("/api/schema"), get("/api/datasets"), get("/api/experiments")]);
  const q = query();
  const name = h("input#exp-name", { type: "text", required: true, value: q.get("name") || "" });
  const dataset = h("select#exp-dataset", {}, datasets.map((d) => h("option", { value: d.name, selected: d.name === q.get("dataset") }, d.name)));
  const yamlFile = h("input#exp-yaml", { type: "file", accept: ".yaml,.yml" });
  const cloneFrom = h("select#exp-clone", {}, h("option", { value: "" }, "(none)"), experiments.map((e) => h("option", { value: e.name, selected: e.name === q.get("clone") }, e.name)));
  const withWeights = h("input#exp-weights", { type: "checkbox" });
  const gridMode = h("input#exp-grid", { type: "checkbox", checked: q.get("grid") === "1" });
  const estimate = h("p.muted#exp-count");
  const error = h("p.error", { role: "alert" });
  let form;
  const holder = h("div");
  const cost = h("p.estimate#exp-estimate", { "aria-live": "polite" });
  let pending = null;
  const estimateCost = () => {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      if (!form || cloneFrom.value) return (cost.textContent = "");
      try {
        const body = { dataset: dataset.value, settings: form.changed() };
        if (yamlFile.files.length) body.yaml = await yamlFile.files[0].text();
        const e = await call("POST", "/api/experiments/estimate", body);
        cost.textContent = `Estimate: about ${bytes(e.memory_bytes)} peak memory and ${duration(e.seconds)} of training ` +
          `(${(e.parameters / 1e6).toFixed(0)} M parameters, ${(e.train_tokens / 1e3).toFixed(0)} k tokens). ${e.basis}.`;
      } catch (e) { cost.textContent = `No estimate: ${e.message}`; }
    }, 600);
  };
  const count = () => {
    estimateCost();
    if (!form || !gridMode.checked) return (estimate.textContent = "");
    const n = form.combinations();
    estimate.textContent = `This makes ${n} experiment${n === 1 ? "" : "s"}.`;
  };
  dataset.addEventListener("change", estimateCost);
  yamlFile.addEventListener("change", estimateCost);
  onLeave(() => clearTimeout(pending));
  const build = async (initial = {}) => {
    form = null;
    form = settingsForm(schema, initial, gridMode.checked, count);
    holder.replaceChildren(form.element);
    count();
  };
  const fromClone = async () => {
    if (!cloneFrom.value) return build();
    const detail = await get(`/api/experiments/${enc(cloneFrom.value)}`);
    if (!name.value) name.value = `${cloneFrom.value}-copy`;
    const sel = [...dataset.options].find((o) => o.value === detail.dataset);
    if (sel) sel.selected = true;
    await build(detail.settings);
  };
  cloneFrom.addEventListener("change", fromClone);
  gridMode.addEventListener("change", () => build(form ? form.values() : {}));
  if (!datasets.length) {
    page.append(h("h1", {}, "New experiment"), h("p", {}, "Import a dataset first: ", h("a", { href: "#/datasets/import" }, "Import dataset")));
    return;
  }
  page.append(h("h1", {}, "New experiment"),
    h("section.card", {},
      h("div.field", {}, h("label", { for: "exp-name" }, "Name"), name),
      h("div.field", {}, h("label", { for: "exp-dataset" }, "Dataset"), dataset),
      h("div.field", {}, h("label", { for: "exp-yaml" }, "Start from a cfg.yaml (H2O LLM Studio's experiment file)"), yamlFile),
      h("div.field", {}, h("label", { for: "exp-clone" }, "Clone settings from"), cloneFrom,
        h("span.check", {}, withWeights, h("label", { for: "exp-weights" }, "and start from its trained weights"))),
      h("div.field", {}, h("span.check", {}, gridMode, h("label", { for: "exp-grid" }, "Grid search: several values for some settings")))),
    holder, estimate, cost, error,
    h("div.actions", {}, h("button#exp-create", { type: "button", onclick: async () => {
      error.textContent = "";
      const settings = form.changed();
      try {
        if (cloneFrom.value) {
          await call("POST", `/api/experiments/${enc(cloneFrom.value)}/clone`, { new_name: name.value.trim(), with_weights: withWeights.checked, settings, start: true });
          location.hash = `#/experiments/${enc(name.value.trim())}`;
          return;
        }
        const experiment = { name: name.value.trim(), dataset: dataset.value, settings };
        if (yamlFile.files.length) experiment.yaml = await yamlFile.files[0].text();
        if (gridMode.checked && Object.keys(form.grid()).length) {
          const n = form.combinations();
          if (!confirmed(`This makes ${n} experiments. Create and queue them?`)) return;
          const made = await call("POST", "/api/experiments/grid", { experiment, grid: form.grid() });
          toast(`Created ${made.length} experiments`);
          location.hash = "#/experiments";
          return;
        }
        await call("POST", "/api/experiments", experiment);
        location.hash = `#/experiments/${enc(experiment.name)}`;
      } catch (e) { error.textContent = e.message; }
    } }, "Create and start")));
  if (q.get("clone")) await fromClone(); else await build();
}

function chartsOf(charts) {
  return h("div.charts", {},
    lineChart("Training loss", [{ name: "train loss", points: charts.train_loss }]),
    lineChart("Validation loss", [{ name: "validation loss", points: charts.validation_loss }]),
    lineChart(`Validation ${charts.metric}`, [{ name: charts.metric, points: charts.validation_metric }]),
    lineChart("Learning rate", [{ name: "learning rate", points: charts.learning_rate }]));
}

export async function experimentPage(page, name) {
  let detail = await get(`/api/experiments/${enc(name)}`);
  const head = h("div.head");
  const statusLine = h("div.status-line");
  const chartsPanel = h("div#charts");
  const logBox = h("pre.log#log", { tabindex: 0, "aria-label": "Log" });
  const failureTail = h("pre.log.tail#failure-tail");
  const drawHead = () => {
    if (detail.status === "failed" && !failureTail.textContent) {
      get(`/api/experiments/${enc(name)}/logs?lines=12`).then((l) => (failureTail.textContent = l.lines.join("\n"))).catch(() => {});
    }
    const st = detail.status;
    const action = (label, fn, cls = "") => h(`button${cls}`, { type: "button", onclick: async () => {
      try { await fn(); } catch (e) { toast(e.message, true); }
    } }, label);
    const live = st === "running" || st === "queued";
    fill(head, h("h1", {}, name), badge(st),
      live ? action("Stop", async () => { await call("POST", `/api/experiments/${enc(name)}/stop`); toast("Stopping after the current step"); }) : null,
      !live && detail.has_checkpoint && st !== "finished" ? action("Resume", async () => { await call("POST", `/api/experiments/${enc(name)}/resume`); location.reload(); }) : null,
      !live && !detail.has_checkpoint ? action("Start", async () => { await call("POST", `/api/experiments/${enc(name)}/start`); location.reload(); }) : null,
      h("a.button.secondary", { href: `#/experiments/new?clone=${enc(name)}` }, "Clone"),
      action("Rename", async () => {
        const to = prompt("New name", name);
        if (!to || to === name) return;
        await call("POST", `/api/experiments/${enc(name)}/rename`, { new_name: to });
        location.hash = `#/experiments/${enc(to)}`;
      }, ".secondary"),
      action("Delete", async () => {
        if (!confirmed(`Delete experiment ${name} and its run folder?`)) return;
        await call("DELETE", `/api/experiments/${enc(name)}`);
        location.hash = "#/experiments";
      }, ".danger"));
    const p = detail.progress;
    fill(statusLine, progressBar(p.fraction, "training progress"),
      h("span", {}, `step ${p.step} of ${p.total_steps || "?"} · epoch ${num(p.epoch, 3)} · ETA ${live ? duration(p.eta_seconds) : "–"}`),
      detail.status === "failed" ? h("div.error", { role: "alert" }, h("b", {}, "Failed: "), detail.info, failureTail) : null,
      detail.info && detail.status !== "failed" ? h("small.muted", {}, detail.info) : null);
  };
  drawHead();
  const downloads = () => h("section.card", {}, h("h2", {}, "Downloads"),
    detail.has_checkpoint && !["running", "queued"].includes(detail.status)
      ? h("div.actions", {},
        h("a.button.secondary", { href: downloadUrl(`/api/experiments/${enc(name)}/download/model`), download: "" }, "Model (Hugging Face)"),
        h("a.button.secondary", { href: downloadUrl(`/api/experiments/${enc(name)}/download/adapter`), download: "" }, "Adapter (PEFT)"),
        h("a.button.secondary", { href: downloadUrl(`/api/experiments/${enc(name)}/download/gguf?quant=q8_0`), download: "" }, "GGUF (Q8_0)"),
        h("a.button.secondary", { href: downloadUrl(`/api/experiments/${enc(name)}/download/gguf?quant=q4_k_m`), download: "" }, "GGUF (Q4_K_M)"),
        h("a.button.secondary", { href: downloadUrl(`/api/experiments/${enc(name)}/download/gguf?quant=f16`), download: "" }, "GGUF (F16)"))
      : h("p.muted", {}, "The model can be downloaded once the run has a checkpoint and is not training."),
    h("div.actions", {},
      h("a.button.secondary", { href: downloadUrl(`/api/experiments/${enc(name)}/download/logs`), download: "" }, "Logs and config"),
      h("a.button.secondary", { href: downloadUrl(`/api/experiments/${enc(name)}/download/predictions`), download: "" }, "Predictions")));
  const summary = (p) => fill(p,
    h("dl.grid2", {},
      h("dt", {}, "Dataset"), h("dd", {}, h("a", { href: `#/datasets/${enc(detail.dataset)}` }, detail.dataset)),
      h("dt", {}, "Backbone"), h("dd", {}, detail.backbone),
      h("dt", {}, "Status"), h("dd", {}, `${detail.status}${detail.info ? ` — ${detail.info}` : ""}`),
      h("dt", {}, "Train loss"), h("dd", {}, num(detail.progress.train_loss)),
      h("dt", {}, "Validation loss"), h("dd", {}, num(detail.progress.validation_loss)),
      h("dt", {}, `Validation ${detail.progress.metric}`), h("dd", {}, num(detail.progress.validation_metric)),
      h("dt", {}, "Learning rate"), h("dd", {}, num(detail.progress.learning_rate)),
      h("dt", {}, "Created"), h("dd", {}, date(detail.created)),
      h("dt", {}, "Started"), h("dd", {}, date(detail.started)),
      h("dt", {}, "Finished"), h("dd", {}, date(detail.finished))),
    detail.warnings.length ? h("ul.warnings", {}, detail.warnings.map((w) => h("li", {}, w))) : null,
    downloads());
  page.append(head, statusLine, tabs([
    { id: "charts", label: "Charts", render: (p) => { chartsPanel.replaceChildren(chartsOf(detail.charts)); p.append(chartsPanel); } },
    { id: "summary", label: "Summary", render: summary },
    { id: "insights", label: "Validation insights", render: (p) => predictionsView(p, name) },
    { id: "train-insights", label: "Train data insights", render: (p) => trainInsightsView(p, name) },
    { id: "logs", label: "Logs", render: (p) => p.append(logBox) },
    { id: "config", label: "Config", render: (p) => p.append(h("pre.config", {}, detail.config_yaml)) },
    { id: "chat", label: "Chat", render: (p) => chatView(p, name, detail) },
  ], query().get("tab")));
  // The log from its last lines, then live.
  const logs = await get(`/api/experiments/${enc(name)}/logs?lines=200`);
  logBox.textContent = logs.lines.join("\n");
  let redraw = null;
  const refresh = async () => {
    detail = await get(`/api/experiments/${enc(name)}`);
    drawHead();
    if (chartsPanel.isConnected) chartsPanel.replaceChildren(chartsOf(detail.charts));
  };
  const watcher = stream(`/api/experiments/${enc(name)}/stream`, (event, data) => {
    if (event === "log") {
      logBox.textContent += (logBox.textContent ? "\n" : "") + data;
      logBox.scrollTop = logBox.scrollHeight;
    } else if (event === "event" || event === "status" || event === "end") {
      clearTimeout(redraw);
      redraw = setTimeout(() => refresh().catch(() => {}), 300);
    }
  });
  onLeave(() => { watcher.abort(); clearTimeout(redraw); });
}

async function predictionsView(panel, name) {
  let rows;
  try { rows = (await get(`/api/experiments/${enc(name)}/predictions`)).rows; }
  catch (e) { panel.append(h("p.muted", {}, e.message)); return; }
  if (!rows.length) { panel.append(h("p.muted", {}, "No validation predictions yet.")); return; }
  const columns = Object.keys(rows[0]);
  const search = h("input", { type: "search", placeholder: "Search prompts, targets and predictions", "aria-label": "Search predictions" });
  const body = h("tbody");
  const draw = () => {
    const s = search.value.toLowerCase();
    body.replaceChildren(...rows.filter((r) => !s || columns.some((c) => String(r[c] ?? "").toLowerCase().includes(s)))
      .map((r) => h("tr", {}, columns.map((c) => h("td", {}, String(r[c] ?? ""))))));
  };
  search.addEventListener("input", draw);
  draw();
  panel.append(search, h("div.scroll", {}, h("table.predictions", {}, h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))), body)));
}

async function trainInsightsView(panel, name, offset = 0) {
  let data;
  try { data = await get(`/api/experiments/${enc(name)}/insights?offset=${offset}&limit=3`); }
  catch (e) { panel.append(h("p.muted", {}, e.message)); return; }
  panel.append(h("p.muted", {}, "How training sees its samples: highlighted tokens carry loss; the rest are context."),
    ...data.samples.map((sample) => h("article.tokens", {},
      h("header", {}, `Sample ${sample.index + 1} (row ${sample.row + 1}) · ${sample.tokens.length} tokens${sample.truncated ? " · cut to max_length" : ""}`),
      h("p.token-line", {}, sample.tokens.map((t) => h(`span.tok.r-${t.role}${t.loss ? ".loss" : ""}`, { title: `${t.role} · id ${t.id}${t.loss ? " · loss" : ""}` }, t.text))))),
    h("div.pager", {},
      h("button.small", { type: "button", disabled: offset === 0, onclick: () => { panel.replaceChildren(); trainInsightsView(panel, name, Math.max(0, offset - 3)); } }, "Previous"),
      h("span", {}, `${Math.min(offset + 1, data.total)}–${Math.min(offset + 3, data.total)} of ${data.total}`),
      h("button.small", { type: "button", disabled: offset + 3 >= data.total, onclick: () => { panel.replaceChildren(); trainInsightsView(panel, name, offset + 3); } }, "Next")));
}

function chatView(panel, name, detail) {
  if (!detail.has_checkpoint) {
    panel.append(h("p.muted", {}, "Chat opens once the run has a checkpoint."));
    return;
  }
  const history = [];
  const log = h("div.chat-log#chat-log", { "aria-live": "polite" });
  const input = h("textarea#chat-input", { rows: 3, placeholder: "Write a message…", "aria-label": "Message" });
  const settings = {
    max_new_tokens: h("input#chat-max", { type: "number", value: 128, min: 1, max: 4096 }),
    temperature: h("input#chat-temp", { type: "number", value: 0, min: 0, max: 2, step: 0.05 }),
    top_k: h("input#chat-topk", { type: "number", value: 0, min: 0 }),
    top_p: h("input#chat-topp", { type: "number", value: 1, min: 0.05, max: 1, step: 0.05 }),
    repetition_penalty: h("input#chat-rep", { type: "number", value: 1, min: 1, max: 3, step: 0.05 }),
  };
  let running = null;
  const send = h("button#chat-send", { type: "button" }, "Send");
  const stop = h("button#chat-stop.secondary", { type: "button", disabled: true, onclick: () => running && running.abort() }, "Stop");
  const finish = () => { running = null; send.disabled = false; stop.disabled = true; };
  send.addEventListener("click", () => {
    const text = input.value.trim();
    if (!text || running) return;
    input.value = "";
    history.push({ role: "user", content: text });
    log.append(h("div.msg.user", {}, h("b", {}, "you"), h("p", {}, text)));
    const answer = h("p");
    const bubble = h("div.msg.assistant", {}, h("b", {}, name), answer);
    log.append(bubble);
    const body = { messages: history.slice() };
    for (const [k, el] of Object.entries(settings)) body[k] = Number(el.value);
    send.disabled = true; stop.disabled = false;
    running = stream(`/api/experiments/${enc(name)}/chat`, (event, data) => {
      const d = JSON.parse(data);
      if (event === "token") answer.textContent += d.text;
      else if (event === "done") { history.push({ role: "assistant", content: d.text }); bubble.append(h("small.muted", {}, `${d.tokens} tokens in ${d.seconds.toFixed(1)} s`)); bubble.dataset.done = "1"; finish(); }
      else if (event === "error") { bubble.append(h("p.error", {}, d.error)); finish(); }
    }, body, (e) => { if (e) bubble.append(h("p.error", {}, e.message)); finish(); });
    running.signal.addEventListener("abort", () => { history.push({ role: "assistant", content: answer.textContent }); finish(); });
  });
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send.click(); } });
  panel.append(h("div.chat", {},
    h("div", {}, log, input, h("div.actions", {}, send, stop,
      h("button.secondary", { type: "button", onclick: () => { history.length = 0; log.replaceChildren(); } }, "Clear"))),
    h("aside.card", {}, h("h3", {}, "Generation"),
      Object.entries(settings).map(([k, el]) => h("div.field", {}, h("label", { for: el.id }, k.replace(/_/g, " ")), el)))));
  onLeave(() => running && running.abort());
}
