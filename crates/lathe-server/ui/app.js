// Lathe studio: a hash router over the pages; each page renders into <main>.

import { h, toast } from "./dom.js";
import { homePage } from "./home.js";
import { datasetsPage, datasetPage, importPage } from "./datasets.js";
import { experimentsPage, experimentPage, newExperimentPage } from "./experiments.js";
import { comparePage } from "./compare.js";
import { settingsPage } from "./settings.js";

const routes = [
  [/^#?\/?$/, homePage, "home"],
  [/^#\/datasets$/, datasetsPage, "datasets"],
  [/^#\/datasets\/import$/, importPage, "datasets"],
  [/^#\/datasets\/([^/?]+)$/, datasetPage, "datasets"],
  [/^#\/experiments$/, experimentsPage, "experiments"],
  [/^#\/experiments\/new$/, newExperimentPage, "experiments"],
  [/^#\/experiments\/([^/?]+)$/, experimentPage, "experiments"],
  [/^#\/compare$/, comparePage, "compare"],
  [/^#\/settings$/, settingsPage, "settings"],
];

/** Work a page leaves running (streams, timers), stopped when another page opens. */
let cleanups = [];
export function onLeave(fn) {
  cleanups.push(fn);
}

/** The current hash's query parameters. */
export function query() {
  const hash = location.hash;
  const at = hash.indexOf("?");
  return new URLSearchParams(at >= 0 ? hash.slice(at + 1) : "");
}

async function render() {
  for (const fn of cleanups.splice(0)) {
    try { fn(); } catch (_) { /* already stopped */ }
  }
  const path = location.hash.split("?")[0];
  const main = document.getElementById("main");
  const route = routes.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.toggleAttribute("aria-current", route && a.dataset.nav === route[2]);
  }
  if (!route) {
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Home")));
    return;
  }
  const params = path.match(route[0]).slice(1).map(decodeURIComponent);
  const page = h("div.page");
  main.replaceChildren(page);
  try {
    await route[1](page, ...params);
  } catch (e) {
    page.replaceChildren(h("h1", {}, "Something went wrong"), h("p.error", { role: "alert" }, e.message));
  }
  main.focus({ preventScroll: true });
}

function theme() {
  const saved = localStorage.getItem("lathe-theme");
  if (saved) document.documentElement.dataset.theme = saved;
  document.getElementById("theme").addEventListener("click", () => {
    const dark = document.documentElement.dataset.theme !== "dark" &&
      !(document.documentElement.dataset.theme === undefined && matchMedia("(prefers-color-scheme: dark)").matches);
    document.documentElement.dataset.theme = dark ? "dark" : "light";
    localStorage.setItem("lathe-theme", document.documentElement.dataset.theme);
  });
}

window.addEventListener("hashchange", render);
window.addEventListener("unhandledrejection", (e) => toast(e.reason && e.reason.message ? e.reason.message : String(e.reason), true));
theme();
render();
