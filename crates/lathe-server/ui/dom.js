// Small DOM helpers: element building, escaping, formatting, toasts.

/** `h("div.card#id", {attr…}, children…)`: an element; strings become text. */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...rest] = spec.split(/(?=[.#])/);
  const el = document.createElement(tag || "div");
  for (const part of rest) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "html") el.innerHTML = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces the children of `el`, skipping absent ones (null, undefined, false). */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

/** Seconds as `1h 02m`, `3m 04s` or `12s`. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** A number with `digits` significant digits, or `–`. */
export function num(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toPrecision(digits).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

export function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function date(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "–";
}

/** Shows a message for a few seconds; `error` styles it as a failure. */
export function toast(message, error = false) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = error ? "show error" : "show";
  clearTimeout(el._timer);
  el._timer = setTimeout(() => (el.className = ""), error ? 8000 : 3000);
}

/** A status badge. */
export function badge(status) {
  return h(`span.badge.s-${status}`, {}, status);
}

/** A progress bar with a label. */
export function progressBar(fraction, label) {
  const pct = Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
  return h("div.progress", { role: "progressbar", "aria-valuenow": pct, "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": label || "progress" },
    h("div.bar", { style: `width:${pct}%` }), h("span", {}, `${pct}%`));
}

/** Tabs: `[{id, label, render(panel)}]`; the active one is kept in the hash query. */
export function tabs(items, active, onSelect) {
  const list = h("div.tabs", { role: "tablist" });
  const panel = h("div.tabpanel", { role: "tabpanel" });
  const select = (id) => {
    for (const b of list.children) b.setAttribute("aria-selected", b.dataset.tab === id);
    panel.replaceChildren();
    const item = items.find((t) => t.id === id) || items[0];
    onSelect && onSelect(item.id);
    item.render(panel);
  };
  for (const t of items) {
    list.append(h("button", { role: "tab", type: "button", "data-tab": t.id, onclick: () => select(t.id) }, t.label));
  }
  setTimeout(() => select(active || items[0].id));
  return h("div", {}, list, panel);
}

/** Asks before a destructive action when the app setting says so. */
export function confirmed(message) {
  return window.__latheNoDialogs || confirm(message);
}
