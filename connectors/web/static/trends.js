// Trends across calls (#/trends): GET /v1/stats drawn as SVG by this module (no library),
// one bar chart per figure over the groups, a table of the same numbers, and an export of
// the charts as one SVG or PNG for a report. Group keys and rule ids come from users
// (policy names, rule ids): they reach the page as text nodes and attribute values only.
// The charts carry their colours and fonts as SVG attributes, not CSS, so an exported file
// looks the same outside the page.

const SVG_NS = "http://www.w3.org/2000/svg";
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif";
const INK = "#1d2330";
const MUTED = "#5b6474";
const GRID = "#e3e6eb";
const CHART = { width: 380, height: 230, left: 52, right: 14, top: 34, bottom: 52 };
const MAX_LABELS = 12; // x labels shown at most; every bar keeps its <title>
const PNG_SCALE = 2; // the PNG is drawn at twice the SVG's size, for print

/** One chart per figure; `median` draws the median as a mark on the mean's bar. */
const FIGURES = [
  { field: "calls", title: "Calls", unit: "count", color: "#1f5fbf" },
  { field: "escalation_rate", title: "Escalation rate", unit: "share", color: "#c62828" },
  { field: "first_escalation_mean_s", title: "Time to first escalation (mean, ◆ median)",
    unit: "s", color: "#ef6c00", median: "first_escalation_median_s" },
  { field: "satisfaction_rate", title: "Satisfaction rate", unit: "share", color: "#2e7d32" },
  { field: "handle_time_mean_s", title: "Average handle time", unit: "s", color: "#5e35b1" },
  { field: "hold_share", title: "Hold share", unit: "share", color: "#b8860b" },
  { field: "non_talk_share", title: "Non-talk share", unit: "share", color: "#546e7a" },
];

const state = { api: null, report: null, seq: 0 };
const $ = (sel) => document.querySelector(sel);

// ---------------------------------------------------------------------------------- building

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function html(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = String(value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const known = (v) => v !== null && v !== undefined && Number.isFinite(Number(v));

function fmt(value, unit) {
  if (!known(value)) return "–";
  if (unit === "share") return `${(value * 100).toFixed(1)} %`;
  if (unit === "s") return `${Number(value).toFixed(1)} s`;
  return String(value);
}

function tickText(value, unit) {
  if (unit === "share") return `${Math.round(value * 100)}%`;
  if (unit === "s") return `${+value.toFixed(1)}s`;
  return String(+value.toFixed(2));
}

function shortValue(value, unit) {
  if (unit === "share") return `${+(value * 100).toFixed(1)}%`;
  if (unit === "s") return `${+Number(value).toFixed(1)}s`;
  return String(value);
}

/** The smallest 1, 2, 2.5 or 5 times a power of ten at or above `max` (1 for nothing). */
function niceMax(max, unit) {
  if (unit === "share") return 1;
  if (!(max > 0)) return unit === "count" ? 4 : 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= max) return m * power;
  return 10 * power;
}

function shortLabel(key, groupBy) {
  if (groupBy === "day") return key.slice(5); // 2025-03-04 -> 03-04
  if (groupBy === "hour") return `${key.slice(5, 10)} ${key.slice(11, 13)}h`;
  return key.length > 14 ? `${key.slice(0, 13)}…` : key;
}

// ---------------------------------------------------------------------------------- charts

/** A bar per group that has the figure; a group without it gets a dash on the axis while
 *  the groups are few enough to label. */
function barChart(fig, report) {
  const { width: W, height: H, left: L, right: R, top: T, bottom: B } = CHART;
  const groups = report.groups;
  const values = groups.map((g) => g[fig.field]);
  const medians = fig.median ? groups.map((g) => g[fig.median]) : [];
  const top = niceMax(Math.max(0, ...[...values, ...medians].filter(known)), fig.unit);
  const plotW = W - L - R;
  const plotH = H - T - B;
  const y = (v) => T + plotH - (v / top) * plotH;
  const root = svg("svg", {
    class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    "data-figure": fig.field, "font-family": FONT, "font-size": 11,
  });
  root.append(
    svg("title", {}, `${fig.title} by ${report.group_by}`),
    svg("rect", { x: 0, y: 0, width: W, height: H, fill: "#ffffff" }),
    svg("text", { x: 8, y: 20, "font-size": 13, "font-weight": 600, fill: INK }, fig.title),
  );
  for (let i = 0; i <= 4; i += 1) {
    const v = (top * i) / 4;
    root.append(
      svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: GRID, "stroke-width": 1 }),
      svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", fill: MUTED }, tickText(v, fig.unit)),
    );
  }
  const slot = plotW / Math.max(1, groups.length);
  const barW = Math.max(1, Math.min(44, slot * 0.7));
  const every = Math.ceil(groups.length / MAX_LABELS);
  const rotate = groups.length > 6;
  const labelled = groups.length <= MAX_LABELS; // values over the bars while they fit
  groups.forEach((g, i) => {
    const cx = L + slot * (i + 0.5);
    const v = values[i];
    if (known(v)) {
      const note = fig.field === "calls" ? "" : ` (${g.calls} call${g.calls === 1 ? "" : "s"})`;
      root.append(svg("rect", {
        class: "bar", "data-key": g.key, "data-value": v, x: cx - barW / 2, y: y(v),
        width: barW, height: Math.max(0, y(0) - y(v)), fill: fig.color,
      }, svg("title", {}, `${g.key}: ${fmt(v, fig.unit)}${note}`)));
    } else if (labelled) { // with many groups the dashes would run into a line
      root.append(svg("line", {
        class: "none", x1: cx - 3, x2: cx + 3, y1: y(0) - 3, y2: y(0) - 3, stroke: MUTED,
      }, svg("title", {}, `${g.key}: no calls with this figure`)));
    }
    if (known(v) && labelled) {
      const above = Math.max(v, known(medians[i]) ? medians[i] : v);
      root.append(svg("text", {
        class: "value", x: cx, y: y(above) - (fig.median ? 8 : 4), "text-anchor": "middle",
        "font-size": 10, fill: INK,
      }, shortValue(v, fig.unit)));
    }
    if (fig.median && known(medians[i])) {
      const my = y(medians[i]);
      root.append(svg("path", {
        class: "median", d: `M${cx} ${my - 5}L${cx + 5} ${my}L${cx} ${my + 5}L${cx - 5} ${my}Z`,
        fill: INK,
      }, svg("title", {}, `${g.key}: median ${fmt(medians[i], fig.unit)}`)));
    }
    if (i % every === 0) {
      const ly = H - B + 14;
      root.append(svg("text", {
        x: cx, y: ly, fill: MUTED, "text-anchor": rotate ? "end" : "middle",
        transform: rotate ? `rotate(-35 ${cx} ${ly})` : null,
      }, shortLabel(g.key, report.group_by)));
    }
  });
  root.append(svg("line", { x1: L, x2: W - R, y1: y(0), y2: y(0), stroke: MUTED, "stroke-width": 1 }));
  return root;
}

/** The rules fired over all the calls, most first (horizontal bars). */
function rulesChart(report) {
  const rules = report.total.top_rules;
  const { width: W } = CHART;
  const L = 150;
  const rowH = 22;
  const H = Math.max(90, 44 + rules.length * rowH);
  const most = Math.max(1, ...rules.map((r) => r.count));
  const root = svg("svg", {
    class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    "data-figure": "top_rules", "font-family": FONT, "font-size": 11,
  });
  root.append(
    svg("title", {}, "Rules fired, all calls"),
    svg("rect", { x: 0, y: 0, width: W, height: H, fill: "#ffffff" }),
    svg("text", { x: 8, y: 20, "font-size": 13, "font-weight": 600, fill: INK }, "Rules fired (all calls)"),
  );
  if (!rules.length) {
    root.append(svg("text", { x: 8, y: 52, fill: MUTED }, "No rule fired."));
    return root;
  }
  rules.forEach((r, i) => {
    const top = 34 + i * rowH;
    const w = ((W - L - 40) * r.count) / most;
    const name = r.rule.length > 24 ? `${r.rule.slice(0, 23)}…` : r.rule;
    root.append(
      svg("text", { x: L - 6, y: top + 14, "text-anchor": "end", fill: INK }, name),
      svg("rect", { class: "bar", "data-key": `${r.policy}/${r.rule}`, "data-value": r.count,
                    x: L, y: top + 3, width: w, height: rowH - 8, fill: "#37474f" },
          svg("title", {}, `${r.policy}: ${r.rule} fired ${r.count} times`)),
      svg("text", { x: L + w + 5, y: top + 14, fill: MUTED }, String(r.count)),
    );
  });
  return root;
}

// ---------------------------------------------------------------------------------- table

const COLUMNS = [
  ["calls", "Calls", "count"],
  ["escalated", "Escalated", "count"],
  ["escalation_rate", "rate", "share"],
  ["first_escalation_mean_s", "1st escalation", "s"],
  ["first_escalation_median_s", "median", "s"],
  ["satisfied", "Satisfied", "count"],
  ["satisfaction_rate", "rate", "share"],
  ["handle_time_mean_s", "Handle time", "s"],
  ["hold_share", "Hold", "share"],
  ["non_talk_share", "Non-talk", "share"],
];

function row(g, cell = "td") {
  const top = g.top_rules[0];
  return html("tr", { "data-key": g.key },
    html(cell === "th" ? "th" : "td", { scope: cell === "th" ? "row" : null, text: g.key }),
    COLUMNS.map(([field, , unit]) => html("td", { class: "num", text: fmt(g[field], unit) })),
    html("td", { text: top ? `${top.rule} ×${top.count}` : "–" }),
  );
}

function renderTable(report) {
  const table = $("#trends-table");
  table.replaceChildren(
    html("caption", { class: "visually-hidden", text: `Figures by ${report.group_by}` }),
    html("thead", {}, html("tr", {},
      html("th", { scope: "col", text: report.group_by }),
      COLUMNS.map(([, title]) => html("th", { scope: "col", class: "num", text: title })),
      html("th", { scope: "col", text: "Top rule" }))),
    html("tbody", {}, report.groups.map((g) => row(g))),
    html("tfoot", {}, row(report.total, "th")),
  );
}

// ---------------------------------------------------------------------------------- export

function describe(report, { calls = true } = {}) {
  const parts = [`by ${report.group_by}`];
  if (report.since) parts.push(`from ${report.since.slice(0, 16).replace("T", " ")} UTC`);
  if (report.until) parts.push(`until ${report.until.slice(0, 16).replace("T", " ")} UTC`);
  if (report.policy) parts.push(`policy ${report.policy}`);
  if (calls) parts.push(`${report.total.calls} calls`);
  return parts.join(" · ");
}

/** Every chart on the page in one standalone SVG document, two charts a row. */
function composite(report) {
  const charts = [...document.querySelectorAll("#trends-charts svg.chart")];
  const cols = 2;
  const gap = 16;
  const head = 56;
  const W = cols * CHART.width + (cols + 1) * gap;
  const root = svg("svg", { "font-family": FONT, "font-size": 11 });
  const body = [];
  let yTop = head;
  for (let i = 0; i < charts.length; i += cols) {
    const rowCharts = charts.slice(i, i + cols);
    rowCharts.forEach((chart, j) => {
      const copy = chart.cloneNode(true);
      copy.removeAttribute("class");
      copy.setAttribute("x", String(gap + j * (CHART.width + gap)));
      copy.setAttribute("y", String(yTop));
      body.push(copy);
    });
    yTop += Math.max(...rowCharts.map((c) => Number(c.getAttribute("height")))) + gap;
  }
  const H = yTop;
  for (const [key, value] of Object.entries({ width: W, height: H, viewBox: `0 0 ${W} ${H}` })) {
    root.setAttribute(key, String(value));
  }
  root.append(
    svg("rect", { x: 0, y: 0, width: W, height: H, fill: "#f5f6f8" }),
    svg("text", { x: gap, y: 26, "font-size": 17, "font-weight": 700, fill: INK }, "callsense · trends across calls"),
    svg("text", { x: gap, y: 44, fill: MUTED }, describe(report)),
    ...body,
  );
  return { text: new XMLSerializer().serializeToString(root), width: W, height: H };
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = html("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000); // the download has started by then
}

/** The SVG drawn into a canvas (through a blob: image, which the CSP allows) as PNG. */
async function svgToPng({ text, width, height }) {
  const url = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
  try {
    const img = new Image();
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = () => reject(new Error("the browser could not draw the SVG"));
      img.src = url;
    });
    const canvas = document.createElement("canvas");
    canvas.width = width * PNG_SCALE;
    canvas.height = height * PNG_SCALE;
    const ctx = canvas.getContext("2d");
    ctx.scale(PNG_SCALE, PNG_SCALE);
    ctx.drawImage(img, 0, 0, width, height);
    return await new Promise((resolve, reject) => {
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("PNG encoding failed"))), "image/png");
    });
  } finally {
    URL.revokeObjectURL(url);
  }
}

async function exportAs(kind) {
  const report = state.report;
  if (!report) return;
  const status = $("#trends-status");
  const doc = composite(report);
  const name = `callsense-trends-${report.group_by}.${kind}`;
  try {
    const blob = kind === "svg"
      ? new Blob([doc.text], { type: "image/svg+xml" })
      : await svgToPng(doc);
    download(blob, name);
    status.textContent = `Saved ${name}.`;
    status.dataset.kind = "ok";
  } catch (err) {
    status.textContent = `Could not export: ${err.message}`;
    status.dataset.kind = "error";
  }
}

// ---------------------------------------------------------------------------------- view

/** The form as /v1/stats parameters: dates are whole UTC days, "to" included. */
function params() {
  const out = new URLSearchParams({ group_by: $("#trends-group").value });
  const since = $("#trends-since").value;
  const until = $("#trends-until").value;
  const policy = $("#trends-policy").value;
  if (since) out.set("since", `${since}T00:00:00Z`);
  if (until) {
    const next = new Date(`${until}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    out.set("until", next.toISOString().replace(".000Z", "Z"));
  }
  if (policy) out.set("policy", policy);
  return out;
}

function render(report) {
  const charts = $("#trends-charts");
  charts.replaceChildren(
    ...FIGURES.map((fig) => html("figure", { class: "chart-box" }, barChart(fig, report))),
    html("figure", { class: "chart-box" }, rulesChart(report)),
  );
  renderTable(report);
}

async function fillPolicies() {
  const select = $("#trends-policy");
  if (select.options.length > 1) return;
  try {
    const items = await state.api("/v1/policies");
    for (const p of items) select.append(html("option", { value: p.name, text: p.name }));
  } catch {
    // the report says what is wrong with the key; the list stays "all policies"
  }
}

async function load() {
  const seq = ++state.seq;
  const status = $("#trends-status");
  status.textContent = "Loading…";
  status.dataset.kind = "busy";
  try {
    const report = await state.api(`/v1/stats?${params()}`);
    if (seq !== state.seq) return; // a newer request is on its way
    state.report = report;
    render(report);
    const n = report.groups.length;
    const groups = `${n} group${n === 1 ? "" : "s"}`;
    status.textContent = `${report.total.calls} finished calls in ${groups}: ${describe(report, { calls: false })}.`;
    status.dataset.kind = "ok";
    $("#view-trends").dataset.state = "ready";
  } catch (err) {
    if (seq !== state.seq) return;
    state.report = null;
    $("#trends-charts").replaceChildren();
    $("#trends-table").replaceChildren();
    status.textContent = `Could not load the trends: ${err.message}`;
    status.dataset.kind = "error";
    $("#view-trends").dataset.state = "error";
  }
  $("#trends-export-svg").disabled = !state.report;
  $("#trends-export-png").disabled = !state.report;
}

/** Wire the form once; `api` is the page's authenticated fetch (app.js). */
export function initTrends(api) {
  state.api = api;
  $("#trends-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  $("#trends-export-svg").addEventListener("click", () => exportAs("svg"));
  $("#trends-export-png").addEventListener("click", () => exportAs("png"));
}

export function showTrends() {
  fillPolicies();
  load();
}
