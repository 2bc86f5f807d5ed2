// Datasets: list, import (upload with progress, local path, Hub, S3), view (rows,
// conversations, statistics, summary), mapping edits, delete.

import { call, get, upload } from "./api.js";
import { h, toast, date, tabs, confirmed, num } from "./dom.js";
import { histogram } from "./charts.js";
import { query } from "./app.js";

const enc = encodeURIComponent;

export async function datasetsPage(page) {
  const datasets = await get("/api/datasets");
  const filter = h("input", { type: "search", placeholder: "Filter by name", "aria-label": "Filter datasets" });
  const body = h("tbody");
  const draw = () => {
    const f = filter.value.toLowerCase();
    body.replaceChildren(...datasets.filter((d) => d.name.toLowerCase().includes(f)).map((d) => h("tr", {},
      h("td", {}, h("a", { href: `#/datasets/${enc(d.name)}` }, d.name)),
      h("td", {}, d.problem_type.replace("text_", "").replace(/_/g, " ")),
      h("td.num", {}, String(d.rows)), h("td.num", {}, String(d.samples)),
      h("td", {}, d.validation ? h("span.badge.s-failed", { title: d.validation }, "needs mapping") : h("span.badge.s-finished", {}, "valid")),
      h("td", {}, date(d.created)),
      h("td.actions", {},
        h("a.button.small", { href: `#/experiments/new?dataset=${enc(d.name)}` }, "New experiment"),
        h("button.small.danger", { type: "button", "aria-label": `Delete dataset ${d.name}`, onclick: async () => {
          if (!confirmed(`Delete dataset ${d.name}?`)) return;
          try { await call("DELETE", `/api/datasets/${enc(d.name)}`); toast(`Deleted ${d.name}`); location.reload(); }
          catch (e) { toast(e.message, true); }
        } }, "Delete")))));
  };
  filter.addEventListener("input", draw);
  draw();
  page.append(h("div.head", {}, h("h1", {}, "Datasets"), h("a.button", { href: "#/datasets/import" }, "Import dataset")),
    datasets.length ? h("div", {}, filter, h("table", {}, h("thead", {}, h("tr", {},
      ...["Name", "Problem type", "Rows", "Samples", "Check", "Created", ""].map((t) => h("th", {}, t)))), body))
      : h("p.muted", {}, "No datasets yet. Import one to start."));
}

export async function importPage(page) {
  const name = h("input#ds-name", { type: "text", required: true, placeholder: "my-data" });
  const error = h("p.error", { role: "alert" });
  const done = (record) => { toast(`Imported ${record.name}`); location.hash = `#/datasets/${enc(record.name)}`; };
  const fail = (e) => { error.textContent = e.message; };
  const needName = () => {
    if (!name.value.trim()) { error.textContent = "Give the dataset a name."; name.focus(); return false; }
    error.textContent = ""; return true;
  };
  const file = h("input#ds-file", { type: "file", accept: ".csv,.parquet,.pq,.json,.jsonl,.zip" });
  const bar = h("progress#ds-progress", { max: 1, value: 0, hidden: true, "aria-label": "upload progress" });
  const path = h("input#ds-path", { type: "text", placeholder: "/data/train.csv" });
  const hub = h("input#ds-hub", { type: "text", placeholder: "org/dataset" });
  const split = h("input#ds-split", { type: "text", value: "train" });
  const s3 = h("input#ds-s3", { type: "text", placeholder: "s3://bucket/key.csv" });
  const s3endpoint = h("input#ds-s3-endpoint", { type: "text" });
  const s3region = h("input#ds-s3-region", { type: "text" });
  const submit = (source) => async () => {
    if (!needName()) return;
    try { done(await call("POST", "/api/datasets", { name: name.value.trim(), source })); } catch (e) { fail(e); }
  };
  page.append(h("h1", {}, "Import a dataset"),
    h("div.field", {}, h("label", { for: "ds-name" }, "Name"), name),
    tabs([
      { id: "upload", label: "Upload", render: (p) => p.append(
        h("div.field", {}, h("label", { for: "ds-file" }, "File (CSV, Parquet, JSON, JSONL or a zip of them)"), file),
        bar,
        h("button#ds-upload", { type: "button", onclick: async () => {
          if (!needName()) return;
          if (!file.files.length) { error.textContent = "Choose a file."; return; }
          bar.hidden = false;
          try { done(await upload(name.value.trim(), file.files[0], (f) => (bar.value = f))); }
          catch (e) { fail(e); } finally { bar.hidden = true; }
        } }, "Upload")) },
      { id: "path", label: "Local path", render: (p) => p.append(
        h("div.field", {}, h("label", { for: "ds-path" }, "Path on the studio's machine"), path),
        h("button", { type: "button", onclick: () => submit({ path: path.value })() }, "Import")) },
      { id: "hub", label: "Hugging Face", render: (p) => p.append(
        h("div.field", {}, h("label", { for: "ds-hub" }, "Dataset id"), hub),
        h("div.field", {}, h("label", { for: "ds-split" }, "Split"), split),
        h("button", { type: "button", onclick: () => submit({ hub: { id: hub.value, split: split.value } })() }, "Import")) },
      { id: "s3", label: "S3", render: (p) => p.append(
        h("div.field", {}, h("label", { for: "ds-s3" }, "Object URL"), s3),
        h("div.field", {}, h("label", { for: "ds-s3-endpoint" }, "Endpoint (empty: AWS)"), s3endpoint),
        h("div.field", {}, h("label", { for: "ds-s3-region" }, "Region"), s3region),
        h("p.muted", {}, "Keys come from Settings → Credentials."),
        h("button", { type: "button", onclick: () => submit({ s3: { url: s3.value, endpoint: s3endpoint.value, region: s3region.value } })() }, "Import")) },
    ], "upload"),
    error);
}

function mappingEditor(record, schema, onSaved) {
  const specs = schema.filter((s) => s.group === "dataset" && s.key.endsWith("_column"));
  const values = { ...record.mapping };
  const columns = ["None", ...record.columns];
  const problem = h("select#ds-problem", {}, (schema.find((s) => s.path === "problem_type").options).map((o) =>
    h("option", { value: o, selected: o === record.problem_type }, o)));
  const fields = specs.map((spec) => {
    const id = `map-${spec.key}`;
    const current = values[spec.path] ?? spec.default;
    let input;
    if (spec.kind === "list") {
      input = h("select", { id, multiple: true, size: Math.min(columns.length, 6) },
        record.columns.map((c) => h("option", { value: c, selected: (current || []).includes(c) }, c)));
      input.addEventListener("change", () => (values[spec.path] = [...input.selectedOptions].map((o) => o.value)));
    } else {
      input = h("select", { id }, columns.map((c) => h("option", { value: c, selected: c === (current ?? "None") }, c)));
      input.addEventListener("change", () => (values[spec.path] = input.value));
    }
    return h("div.field", {}, h("label", { for: id }, spec.key), input, h("small.help", {}, spec.tooltip));
  });
  const error = h("p.error", { role: "alert" });
  return h("section.card", {}, h("h2", {}, "Problem type and columns"),
    h("div.field", {}, h("label", { for: "ds-problem" }, "Problem type"), problem), fields,
    h("button", { type: "button", onclick: async () => {
      try {
        await call("PATCH", `/api/datasets/${enc(record.name)}`, { mapping: values, problem_type: problem.value });
        toast("Saved"); onSaved();
      } catch (e) { error.textContent = e.message; }
    } }, "Save and check"), error);
}

export async function datasetPage(page, name) {
  const [record, schema] = await Promise.all([get(`/api/datasets/${enc(name)}`), get("/api/schema")]);
  const reload = () => {
    page.replaceChildren();
    return datasetPage(page, name);
  };
  page.append(h("div.head", {}, h("h1", {}, name),
    h("a.button", { href: `#/experiments/new?dataset=${enc(name)}` }, "New experiment"),
    h("button.danger", { type: "button", onclick: async () => {
      if (!confirmed(`Delete dataset ${name}?`)) return;
      try { await call("DELETE", `/api/datasets/${enc(name)}`); location.hash = "#/datasets"; }
      catch (e) { toast(e.message, true); }
    } }, "Delete")),
    record.validation ? h("p.error", { role: "alert" }, `Check failed: ${record.validation}`) : h("p.ok", {}, "The mapping passes the checks."),
    tabs([
      { id: "rows", label: "Sample rows", render: (p) => rowsView(p, name) },
      { id: "conversations", label: "Conversations", render: (p) => conversationsView(p, name) },
      { id: "statistics", label: "Statistics", render: (p) => statisticsView(p, name) },
      { id: "summary", label: "Summary", render: (p) => p.append(
        h("dl.grid2", {},
          h("dt", {}, "Files"), h("dd", {}, record.files.join(", ")),
          h("dt", {}, "Training file"), h("dd", {}, record.train_file),
          h("dt", {}, "Problem type"), h("dd", {}, record.problem_type),
          h("dt", {}, "Rows"), h("dd", {}, String(record.rows)),
          h("dt", {}, "Samples"), h("dd", {}, String(record.samples)),
          h("dt", {}, "Columns"), h("dd", {}, record.columns.join(", ")),
          h("dt", {}, "Mapping"), h("dd", {}, h("code", {}, JSON.stringify(record.mapping))),
          h("dt", {}, "Imported"), h("dd", {}, date(record.created)))) },
      { id: "edit", label: "Edit", render: (p) => p.append(mappingEditor(record, schema, reload)) },
    ], query().get("tab") || (record.validation ? "edit" : "rows")));
}

async function rowsView(panel, name, offset = 0) {
  const data = await get(`/api/datasets/${enc(name)}/rows?offset=${offset}&limit=20`);
  const pager = h("div.pager", {},
    h("button.small", { type: "button", disabled: offset === 0, onclick: () => { panel.replaceChildren(); rowsView(panel, name, Math.max(0, offset - 20)); } }, "Previous"),
    h("span", {}, `${offset + 1}–${Math.min(offset + 20, data.total)} of ${data.total}`),
    h("button.small", { type: "button", disabled: offset + 20 >= data.total, onclick: () => { panel.replaceChildren(); rowsView(panel, name, offset + 20); } }, "Next"));
  panel.append(h("div.scroll", {}, h("table.rows", {},
    h("thead", {}, h("tr", {}, data.columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, data.rows.map((r) => h("tr", {}, r.map((v) => h("td", {}, v ?? h("span.muted", {}, "null")))))))), pager);
}

async function conversationsView(panel, name, offset = 0) {
  const data = await get(`/api/datasets/${enc(name)}/conversations?offset=${offset}&limit=5`);
  panel.append(...data.conversations.map((c) => h("article.conversation", {},
    h("header", {}, `Conversation ending at row ${c.row + 1} · ${c.turns.length} turn${c.turns.length === 1 ? "" : "s"}`),
    c.system ? h("div.msg.system", {}, h("b", {}, "system"), h("p", {}, c.system)) : null,
    c.turns.map((t) => [h("div.msg.user", {}, h("b", {}, "prompt"), h("p", {}, t.prompt)),
      h("div.msg.assistant", {}, h("b", {}, "answer"), h("p", {}, t.answer))]))),
  h("div.pager", {},
    h("button.small", { type: "button", disabled: offset === 0, onclick: () => { panel.replaceChildren(); conversationsView(panel, name, Math.max(0, offset - 5)); } }, "Previous"),
    h("span", {}, `${Math.min(offset + 1, data.total)}–${Math.min(offset + 5, data.total)} of ${data.total}`),
    h("button.small", { type: "button", disabled: offset + 5 >= data.total, onclick: () => { panel.replaceChildren(); conversationsView(panel, name, offset + 5); } }, "Next")));
}

async function statisticsView(panel, name) {
  const s = await get(`/api/datasets/${enc(name)}/statistics`);
  const dist = (title, d) => d && d.count ? h("div", {}, histogram(title, d),
    h("small.muted", {}, `mean ${num(d.mean)} · median ${num(d.p50)} · p90 ${num(d.p90)} · max ${num(d.max)}`)) : null;
  panel.append(h("dl.grid2", {},
    h("dt", {}, "Rows"), h("dd", {}, String(s.rows)),
    h("dt", {}, "Samples"), h("dd", {}, String(s.samples)),
    h("dt", {}, "Conversations"), h("dd", {}, String(s.conversations)),
    h("dt", {}, "Rows without prompt"), h("dd", {}, String(s.dropped_without_prompt))),
  h("div.charts", {},
    dist("Turns per conversation", s.turns),
    dist("Prompt length (words)", s.prompt_words),
    dist("Answer length (words)", s.answer_words),
    dist("Conversation length (words)", s.conversation_words)));
}
