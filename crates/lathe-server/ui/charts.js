// SVG charts: line charts with a value readout under the cursor, and histograms.

const COLORS = ["#2f6fde", "#e0662c", "#1e9e6a", "#b23cc8", "#c9a100", "#d0344f", "#3aa6b9"];
const W = 640, H = 260, PAD = { l: 56, r: 16, t: 16, b: 34 };

function ticks(min, max, count) {
  if (min === max) return [min];
  const step = Math.pow(10, Math.floor(Math.log10((max - min) / count)));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (max - min) / s <= count) || step * 10;
  const out = [];
  for (let v = Math.ceil(min / nice) * nice; v <= max + nice * 1e-9; v += nice) out.push(+v.toPrecision(12));
  return out;
}

function label(v) {
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(1) : String(+v.toPrecision(4));
}

const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, text) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * A line chart of `lines` (`[{name, points: [[x, y], …]}]`) titled `title`, x being
 * the step. Hovering shows the nearest values of every line.
 */
export function lineChart(title, lines, xLabel = "step") {
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.append(Object.assign(document.createElement("figcaption"), { textContent: title }));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  figure.append(svg);
  const all = lines.flatMap((l) => l.points);
  if (!all.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no data yet"));
    figure.dataset.points = "0";
    return figure;
  }
  figure.dataset.points = String(all.length);
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const X = (x) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const Y = (y) => H - PAD.b - ((y - y0) / (y1 - y0)) * (H - PAD.t - PAD.b);
  const grid = s("g", { class: "grid" });
  for (const t of ticks(y0, y1, 5)) {
    grid.append(s("line", { x1: PAD.l, x2: W - PAD.r, y1: Y(t), y2: Y(t) }));
    grid.append(s("text", { x: PAD.l - 6, y: Y(t) + 4, "text-anchor": "end" }, label(t)));
  }
  for (const t of ticks(x0, x1, 6)) {
    grid.append(s("text", { x: X(t), y: H - PAD.b + 16, "text-anchor": "middle" }, label(t)));
  }
  grid.append(s("text", { x: W - PAD.r, y: H - 4, "text-anchor": "end" }, xLabel));
  svg.append(grid);
  lines.forEach((line, i) => {
    if (!line.points.length) return;
    const d = line.points.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    svg.append(s("path", { d, class: "line", stroke: COLORS[i % COLORS.length], "data-name": line.name }));
    if (line.points.length < 30) {
      for (const p of line.points) svg.append(s("circle", { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: COLORS[i % COLORS.length] }));
    }
  });
  if (lines.length > 1) {
    const legend = document.createElement("div");
    legend.className = "legend";
    lines.forEach((l, i) => {
      const item = document.createElement("span");
      item.innerHTML = `<i style="background:${COLORS[i % COLORS.length]}"></i>`;
      item.append(l.name);
      legend.append(item);
    });
    figure.append(legend);
  }
  const cursor = s("line", { class: "cursor", y1: PAD.t, y2: H - PAD.b, visibility: "hidden" });
  svg.append(cursor);
  const readout = document.createElement("div");
  readout.className = "readout";
  figure.append(readout);
  svg.addEventListener("mousemove", (e) => {
    const box = svg.getBoundingClientRect();
    const x = x0 + (((e.clientX - box.left) / box.width) * W - PAD.l) / (W - PAD.l - PAD.r) * (x1 - x0);
    const parts = lines.map((l) => {
      if (!l.points.length) return null;
      const p = l.points.reduce((a, b) => (Math.abs(b[0] - x) < Math.abs(a[0] - x) ? b : a));
      return { name: l.name, p };
    }).filter(Boolean);
    if (!parts.length) return;
    cursor.setAttribute("x1", X(parts[0].p[0]));
    cursor.setAttribute("x2", X(parts[0].p[0]));
    cursor.setAttribute("visibility", "visible");
    readout.textContent = parts.map((q) => `${q.name}: ${label(q.p[1])} @ ${xLabel} ${label(q.p[0])}`).join("   ");
  });
  svg.addEventListener("mouseleave", () => { cursor.setAttribute("visibility", "hidden"); readout.textContent = ""; });
  return figure;
}

/** A histogram of a distribution (`bin_counts` with their left `bin_edges`, `min`, `max`). */
export function histogram(title, dist) {
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.append(Object.assign(document.createElement("figcaption"), { textContent: title }));
  const svg = s("svg", { viewBox: `0 0 ${W} 200`, role: "img", "aria-label": title });
  figure.append(svg);
  const counts = dist.bin_counts || [];
  const edges = dist.bin_edges || [];
  if (!counts.length) return figure;
  const max = Math.max(...counts, 1);
  const bw = (W - PAD.l - PAD.r) / counts.length;
  counts.forEach((c, i) => {
    const hgt = (c / max) * (200 - PAD.t - PAD.b);
    const rect = s("rect", { x: PAD.l + i * bw + 1, y: 200 - PAD.b - hgt, width: Math.max(bw - 2, 1), height: hgt, class: "bin" });
    const right = i + 1 < edges.length ? edges[i + 1] : dist.max;
    rect.append(s("title", {}, `${label(edges[i] ?? dist.min)}–${label(right ?? dist.max)}: ${c}`));
    svg.append(rect);
  });
  svg.append(s("text", { x: PAD.l, y: 200 - 12, class: "axis" }, label(dist.min)));
  svg.append(s("text", { x: W - PAD.r, y: 200 - 12, "text-anchor": "end", class: "axis" }, label(dist.max)));
  svg.append(s("text", { x: PAD.l - 6, y: PAD.t + 8, "text-anchor": "end", class: "axis" }, String(max)));
  return figure;
}
