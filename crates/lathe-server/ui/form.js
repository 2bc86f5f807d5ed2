// The experiment settings form, generated from the settings schema (GET /api/schema):
// groups, tooltips, ranges, allowed values, and settings that appear only when the
// setting they depend on allows them (`shown_if`). Nothing here names a setting.

import { h } from "./dom.js";

const GROUP_TITLES = { "": "General" };

/** Whether `spec` applies under `values`, as lathe-config's `Config::applies` decides. */
export function applies(spec, values, byPath) {
  const condition = spec.shown_if;
  if (!condition) return true;
  let path = condition, op = "", expected = "";
  for (const candidate of ["!=", "<", "="]) {
    const at = condition.indexOf(candidate);
    if (at >= 0) {
      path = condition.slice(0, at);
      op = candidate;
      expected = condition.slice(at + candidate.length);
      break;
    }
  }
  const parent = byPath[path];
  if (parent && !applies(parent, values, byPath)) return false;
  const value = values[path];
  const text = Array.isArray(value) ? JSON.stringify(value) : value === null || value === undefined ? "" : String(value);
  switch (op) {
    case "=": return text === expected;
    case "!=": return text !== expected;
    case "<": return typeof value === "number" && value < Number(expected);
    default:
      if (value === null || value === undefined) return false;
      if (typeof value === "boolean") return value;
      if (typeof value === "string") return value !== "" && value !== "None";
      if (Array.isArray(value)) return value.length > 0;
      if (typeof value === "number") return value !== 0;
      return true;
  }
}

function parseValue(spec, raw) {
  switch (spec.kind) {
    case "int": return raw === "" ? null : parseInt(raw, 10);
    case "float": return raw === "" ? null : parseFloat(raw);
    case "bool": return raw === true || raw === "true";
    case "list": return Array.isArray(raw) ? raw : raw.split(",").map((s) => s.trim()).filter(Boolean);
    default: return raw;
  }
}

function control(spec, value, onInput, id) {
  const described = `${id}-help`;
  const common = { id, name: spec.path, "aria-describedby": described, title: spec.tooltip };
  switch (spec.kind) {
    case "bool": {
      const input = h("input", { ...common, type: "checkbox", checked: value === true });
      input.addEventListener("change", () => onInput(input.checked));
      return input;
    }
    case "choice": {
      if (spec.custom) {
        const listId = `${id}-options`;
        const input = h("input", { ...common, type: "text", list: listId, value: value ?? "" });
        input.addEventListener("input", () => onInput(input.value));
        return h("span", {}, input, h("datalist", { id: listId }, spec.options.map((o) => h("option", { value: o }))));
      }
      const select = h("select", common, spec.options.map((o) => h("option", { value: o, selected: o === value }, o)));
      select.addEventListener("change", () => onInput(select.value));
      return select;
    }
    case "int":
    case "float": {
      const input = h("input", { ...common, type: "number", value: value ?? "", min: spec.min ?? undefined,
        max: spec.max ?? undefined, step: spec.step ?? (spec.kind === "int" ? 1 : "any") });
      input.addEventListener("input", () => onInput(parseValue(spec, input.value)));
      return input;
    }
    case "list": {
      if (spec.options.length && !spec.custom) {
        const chosen = new Set(value || []);
        const boxes = spec.options.map((o, i) => {
          const box = h("input", { type: "checkbox", id: `${id}-${i}`, value: o, checked: chosen.has(o) });
          box.addEventListener("change", () => onInput(spec.options.filter((_, j) => boxes[j].querySelector("input").checked)));
          return h("span.check", {}, box, h("label", { for: `${id}-${i}` }, o));
        });
        return h("span.checks", { id, "aria-describedby": described }, boxes);
      }
      const input = h("input", { ...common, type: "text", value: (value || []).join(", "), placeholder: "comma-separated" });
      input.addEventListener("input", () => onInput(parseValue(spec, input.value)));
      return input;
    }
    default: {
      const input = h("input", { ...common, type: "text", value: value ?? "" });
      input.addEventListener("input", () => onInput(input.value));
      return input;
    }
  }
}

/**
 * The form. `initial` overrides defaults (`path → value`). In grid mode every
 * setting with grid values gets a field for several values. Returns
 * `{element, changed(), grid(), combinations()}`.
 */
export function settingsForm(schema, initial = {}, gridMode = false, onChange = () => {}) {
  const byPath = Object.fromEntries(schema.map((s) => [s.path, s]));
  const values = Object.fromEntries(schema.map((s) => [s.path, s.path in initial ? initial[s.path] : s.default]));
  const gridValues = {};
  const rows = [];
  const groups = [];
  for (const spec of schema) {
    if (spec.hidden) continue;
    let group = groups.find((g) => g.name === spec.group);
    if (!group) groups.push((group = { name: spec.group, specs: [] }));
    group.specs.push(spec);
  }
  const refresh = () => {
    for (const { spec, row } of rows) row.hidden = !applies(spec, values, byPath);
    onChange();
  };
  const element = h("div.settings-form");
  for (const group of groups) {
    const title = GROUP_TITLES[group.name] || group.name[0].toUpperCase() + group.name.slice(1);
    const fieldset = h("fieldset", {}, h("legend", {}, title));
    for (const spec of group.specs) {
      const id = `set-${spec.path.replace(/\./g, "-")}`;
      const input = control(spec, values[spec.path], (v) => { values[spec.path] = v; refresh(); }, id);
      const tags = [spec.gpu_only ? h("span.tag", {}, "GPU only") : null];
      let gridField = null;
      if (gridMode && spec.grid.length) {
        gridField = h("input.grid-values", { type: "text", "aria-label": `${spec.path}: values for the grid search`,
          placeholder: `grid: ${spec.grid.join(", ")}`, "data-grid": spec.path });
        gridField.addEventListener("input", () => {
          const list = gridField.value.split(",").map((s) => s.trim()).filter(Boolean);
          if (list.length) gridValues[spec.path] = list.map((v) => parseValue(spec, v));
          else delete gridValues[spec.path];
          onChange();
        });
      }
      const row = h("div.field", { "data-path": spec.path },
        h("label", { for: id }, spec.key, tags),
        input, gridField,
        h("small.help", { id: `${id}-help` }, spec.tooltip,
          spec.min !== null && spec.max !== null ? ` (${spec.min}–${spec.max})` : ""));
      rows.push({ spec, row });
      fieldset.append(row);
    }
    element.append(fieldset);
  }
  refresh();
  return {
    element,
    /** Settings that differ from their defaults. */
    changed() {
      const out = {};
      for (const spec of schema) {
        const v = values[spec.path];
        if (JSON.stringify(v) !== JSON.stringify(spec.default) && v !== null) out[spec.path] = v;
      }
      return out;
    },
    grid: () => ({ ...gridValues }),
    combinations: () => Object.values(gridValues).reduce((n, list) => n * list.length, 1),
    values: () => ({ ...values }),
  };
}
