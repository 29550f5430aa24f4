// The supervisor wall (#/wall): every call in progress and the alert queue, pushed over
// WS /v1/wall (a snapshot, then the latest state of whatever changed; see connectors/wall).
// Messages only change the state; one animation frame draws what changed since the last, so
// a burst of updates from many calls costs one layout, never one per message.
import { $, el, clear, fmtTime, getKey, api, ApiError, problemMessages } from "./common.js";

const PRIORITIES = ["urgent", "high", "normal", "low"];
const ACKED_SHOWN = 50;
const SVG = "http://www.w3.org/2000/svg";
const SPARK_W = 100;
const SPARK_H = 24;
const SPARK_POINTS = 60; // the server sends at most this many (connectors/wall/board.py)

const wall = {
  ws: null, key: "", retryMs: 1000, retryTimer: null, ticker: null,
  role: null, keyName: null, seq: 0, resent: 0, offset: 0,
  calls: new Map(), alerts: new Map(), rows: new Map(), items: new Map(),
  dirtyCalls: new Set(), dirtyAlerts: new Set(), fresh: new Set(), full: false, frame: 0,
  filter: { policy: "", priority: "", queue: "" }, policies: new Set(), queues: new Set(),
  sound: false, audio: null,
};

const now = () => Date.now() / 1000 + wall.offset; // the server's clock

// ---------------------------------------------------------------------------------- socket

/** Show the wall: connect (or keep the connection if the key did not change). */
export function showWall() {
  const key = getKey();
  clearInterval(wall.ticker);
  wall.ticker = setInterval(tickElapsed, 1000);
  if (wall.ws && wall.key === key) return;
  disconnect();
  if (wall.key !== key) {
    // another key sees with another role: nothing drawn for the old one stays (its
    // Acknowledge buttons were enabled or not by that key's role) until the new snapshot
    Object.assign(wall, { role: null, keyName: null, calls: new Map(), alerts: new Map(), full: true });
    if (!wall.frame) wall.frame = requestAnimationFrame(draw);
  }
  wall.key = key;
  if (!key) {
    state("Enter an API key to watch the calls.", "error");
    return;
  }
  connect();
}

function connect() {
  clearTimeout(wall.retryTimer);
  const params = new URLSearchParams({ api_key: wall.key }); // browsers cannot set headers here
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/wall?${params}`);
  wall.ws = ws;
  state("Connecting…", "busy");
  ws.addEventListener("message", (m) => {
    if (wall.ws === ws) onMessage(JSON.parse(m.data));
  });
  ws.addEventListener("close", (e) => {
    if (wall.ws !== ws) return;
    wall.ws = null;
    const wait = wall.retryMs;
    wall.retryMs = Math.min(10_000, wall.retryMs * 2);
    state(`Disconnected${e.code === 1006 ? " (is the API key valid?)" : ` (${e.code})`}; retrying in ${wait / 1000} s.`, "error");
    wall.retryTimer = setTimeout(connect, wait);
  });
}

function disconnect() {
  clearTimeout(wall.retryTimer);
  const ws = wall.ws;
  wall.ws = null;
  ws?.close(1000);
}

function leave() {
  if (location.hash.replace(/^#\/?/, "").split("/")[0] === "wall") return;
  disconnect();
  clearInterval(wall.ticker);
}

function state(message, kind = "") {
  const node = $("#wall-state");
  node.textContent = message;
  node.dataset.kind = kind;
}

function onMessage(msg) {
  if (msg.type === "snapshot") {
    wall.retryMs = 1000;
    Object.assign(wall, { role: msg.role, keyName: msg.key, offset: msg.now - Date.now() / 1000, full: true });
    if (msg.resent) wall.resent += 1;
    wall.calls = new Map(msg.calls.map((c) => [c.call_id, c]));
    wall.alerts = new Map(msg.alerts.map((a) => [a.id, a]));
    state(`Live · key ${msg.key} (${msg.role})`, "ok");
  } else if (msg.type === "update") {
    for (const item of msg.items) {
      if (item.type === "call") wall.calls.set(item.call.call_id, item.call);
      else if (item.type === "ended") wall.calls.delete(item.call_id);
      if (item.type !== "alert") {
        wall.dirtyCalls.add(item.call_id ?? item.call.call_id);
        continue;
      }
      const a = item.alert;
      if (!wall.alerts.has(a.id) && a.state === "open") wall.fresh.add(a.id);
      wall.alerts.set(a.id, a);
      wall.dirtyAlerts.add(a.id);
    }
  }
  wall.seq = msg.seq;
  if (!wall.frame) wall.frame = requestAnimationFrame(draw);
}

// ---------------------------------------------------------------------------------- drawing

function draw() {
  wall.frame = 0;
  for (const c of wall.calls.values()) {
    for (const p of c.policies) wall.policies.add(p);
    if (c.queue) wall.queues.add(c.queue);
  }
  for (const a of wall.alerts.values()) {
    wall.policies.add(a.policy);
    if (a.queue) wall.queues.add(a.queue);
  }
  fillOptions($("#wall-policy"), wall.policies);
  fillOptions($("#wall-queue"), wall.queues);
  if (wall.full) {
    wall.full = false;
    clear($("#wall-calls"));
    clear($("#wall-alerts"));
    clear($("#wall-acked"));
    wall.rows.clear();
    wall.items.clear();
    for (const id of wall.calls.keys()) drawCall(id);
    const newest = [...wall.alerts.values()].sort(byNewest);
    for (const a of newest) drawAlert(a.id);
  } else {
    for (const id of wall.dirtyCalls) drawCall(id);
    for (const id of wall.dirtyAlerts) drawAlert(id);
  }
  wall.dirtyCalls.clear();
  wall.dirtyAlerts.clear();
  const shownAt = String(Math.round(performance.timeOrigin + performance.now()));
  for (const id of wall.fresh) {
    const li = wall.items.get(id);
    if (!li) continue;
    li.dataset.shownAt = shownAt; // when it reached the screen (the bench reads it)
    li.classList.add("fresh");
    cue(wall.alerts.get(id));
  }
  wall.fresh.clear();
  trimAcked();
  const open = [...wall.alerts.values()].filter((a) => a.state === "open").length;
  $("#wall-open").textContent = `${open} open`;
  $("#wall-open").dataset.count = String(open);
  $("#wall-count").textContent = `(${wall.calls.size})`;
  $("#wall-empty").hidden = wall.calls.size > 0;
  const view = $("#view-wall");
  view.dataset.seq = String(wall.seq);
  view.dataset.resent = String(wall.resent);
  view.dataset.role = wall.role ?? "";
}

const byNewest = (a, b) => b.fired_at - a.fired_at || (a.id < b.id ? 1 : -1);

function fillOptions(select, values) {
  const have = new Set([...select.options].map((o) => o.value));
  for (const v of [...values].sort()) if (!have.has(v)) select.append(el("option", { value: v, text: v }));
}

function callMatches(c) {
  const f = wall.filter;
  return (!f.policy || c.policies.includes(f.policy)) && (!f.priority || c.top_priority === f.priority)
    && (!f.queue || c.queue === f.queue);
}

function alertMatches(a) {
  const f = wall.filter;
  return (!f.policy || a.policy === f.policy) && (!f.priority || a.priority === f.priority)
    && (!f.queue || a.queue === f.queue);
}

function emotionCell(speaker) {
  const emo = speaker?.emotion;
  return emo ? el("span", { class: `tag tag-emotion emo-${emo}`, text: emo }) : el("span", { class: "muted", text: "–" });
}

function drawCall(id) {
  const c = wall.calls.get(id);
  const old = wall.rows.get(id);
  if (!c) {
    old?.remove();
    wall.rows.delete(id);
    return;
  }
  const s = c.speakers ?? {};
  const last = c.last;
  const temp = c.temperature ?? { now: 0, points: [] };
  const row = el("tr", {
    class: `wall-call${c.escalated ? " escalated" : ""}`,
    dataset: { callId: id, utterances: String(c.utterances), decisions: String(c.decisions) },
    tabindex: "0",
    title: `Follow call ${id}`,
    onclick: (ev) => { if (!ev.target.closest("a")) location.hash = `#/calls/${encodeURIComponent(id)}`; },
    onkeydown: (ev) => { if (ev.key === "Enter") location.hash = `#/calls/${encodeURIComponent(id)}`; },
  },
  el("td", {}, el("a", { href: `#/calls/${encodeURIComponent(id)}`, class: "mono", text: id }),
    el("div", { class: "muted small", text: `${c.protocol} · ${c.language}` })),
  el("td", { class: "mono elapsed", dataset: { startedAt: String(c.started_at) }, text: elapsed(c.started_at) }),
  el("td", {}, emotionCell(s.customer)),
  el("td", {}, emotionCell(s.agent)),
  el("td", { class: "temp" }, sparkline(temp, c.position),
    el("span", { class: `temp-now ${heatClass(temp.now)}`, text: signed(temp.now) })),
  el("td", {}, talkRatio(s)),
  el("td", { class: "last" }, last
    ? [el("span", { class: "last-speaker", text: `${last.speaker}: ` }), el("span", { class: "last-text", text: last.text || "…" })]
    : el("span", { class: "muted", text: "–" })),
  el("td", {}, el("span", { class: "count", text: String(c.decisions) }),
    c.escalated ? el("span", { class: "badge action-escalate", text: c.top_priority ?? "escalated" }) : null,
    c.queue ? el("span", { class: "badge action-route", text: c.queue }) : null));
  row.hidden = !callMatches(c);
  if (old) old.replaceWith(row);
  else $("#wall-calls").append(row);
  wall.rows.set(id, row);
}

const signed = (v) => `${v > 0 ? "+" : ""}${Number(v).toFixed(2)}`;
const heatClass = (v) => (v > 0.5 ? "hot" : v > 0.2 ? "warm" : v < -0.2 ? "pleased" : "calm");

function elapsed(startedAt) {
  const s = Math.max(0, Math.floor(now() - startedAt));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function tickElapsed() {
  for (const cell of document.querySelectorAll("#wall-calls .elapsed")) {
    cell.textContent = elapsed(Number(cell.dataset.startedAt));
  }
}

/** The customer's temperature over the call so far (-1 pleased .. +1 heated), to now. */
function sparkline(temp, position) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${SPARK_W} ${SPARK_H}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `temperature ${signed(temp.now)}`);
  const y = (v) => (SPARK_H / 2 - v * (SPARK_H / 2 - 1)).toFixed(1);
  const zero = document.createElementNS(SVG, "line");
  for (const [k, v] of [["x1", 0], ["x2", SPARK_W], ["y1", y(0)], ["y2", y(0)], ["class", "zero"]]) zero.setAttribute(k, v);
  svg.append(zero);
  // from the call's start (0 at 0 s) to now, cooled since; a long call: its latest points
  const end = Math.max(position, temp.points.at(-1)?.[0] ?? 0);
  const trimmed = temp.points.length >= SPARK_POINTS;
  const points = [...(trimmed ? [] : [[0, 0]]), ...temp.points, [end, temp.now]];
  const t0 = points[0][0];
  const span = Math.max(1, end - t0);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.map(([t, v]) => `${(((t - t0) / span) * SPARK_W).toFixed(1)},${y(v)}`).join(" "));
  line.setAttribute("class", `line ${heatClass(temp.now)}`);
  svg.append(line);
  return svg;
}

function talkRatio(speakers) {
  const c = speakers.customer?.talk_ratio;
  const a = speakers.agent?.talk_ratio;
  if (c === null || c === undefined) return el("span", { class: "muted", text: "–" });
  const pct = (x) => `${Math.round((x ?? 0) * 100)}%`;
  return el("div", { class: "ratio", title: `customer ${pct(c)}, agent ${pct(a)}` },
    el("div", { class: "ratio-bar" }, el("span", { class: "ratio-customer", style: { width: pct(c) } }),
      el("span", { class: "ratio-agent", style: { width: pct(a) } })),
    el("span", { class: "small", text: `${pct(c)} / ${pct(a)}` }));
}

function drawAlert(id) {
  const a = wall.alerts.get(id);
  wall.items.get(id)?.remove();
  if (!a) return;
  const acked = a.state !== "open";
  const label = [a.action, a.priority].filter(Boolean).join(" · ");
  const details = [`rule ${a.rule}`, `policy ${a.policy}`, `at ${fmtTime(a.at)}`, a.queue ? `queue ${a.queue}` : null];
  const li = el("li", {
    class: `alert alert-${a.action}${a.priority ? ` prio-${a.priority}` : ""}${acked ? " acked" : ""}`,
    dataset: { alertId: id, callId: a.call_id, action: a.action, state: a.state, firedAt: String(a.fired_at) },
  },
  el("div", { class: "alert-head" },
    el("span", { class: `badge action-${a.action}`, text: label }),
    el("a", { href: `#/calls/${encodeURIComponent(a.call_id)}`, class: "mono", text: a.call_id }),
    el("time", { class: "muted small", datetime: new Date(a.fired_at * 1000).toISOString(), text: new Date(a.fired_at * 1000).toLocaleTimeString() })),
  a.reason ? el("p", { class: "alert-reason", text: a.reason }) : null,
  el("p", { class: "muted small", text: details.filter(Boolean).join(" · ") }),
  acked
    ? el("p", { class: "ack-by small", text: `Acknowledged by ${a.acked_by} at ${new Date(a.acked_at * 1000).toLocaleTimeString()}` })
    : ackButton(a));
  li.hidden = !alertMatches(a);
  const list = $(acked ? "#wall-acked" : "#wall-alerts");
  const after = [...list.children].find((other) => Number(other.dataset.firedAt) < a.fired_at);
  list.insertBefore(li, after ?? null);
  wall.items.set(id, li);
}

function ackButton(a) {
  if (wall.role === null) return null; // drawn again when the snapshot says who we are
  const viewer = wall.role !== "admin";
  const note = el("span", { class: "ack-note small", role: "status" });
  const button = el("button", {
    type: "button", class: "ack", disabled: viewer,
    title: viewer ? "A viewer key can watch, not acknowledge" : "Acknowledge this alert as your key",
    onclick: async () => {
      button.disabled = true;
      try {
        const done = await api(`/v1/alerts/${encodeURIComponent(a.id)}/ack`, { method: "POST" });
        const acked = { ...a, state: done.state, acked_by: done.acked_by, acked_at: Date.parse(done.acked_at) / 1000 };
        onMessage({ type: "update", seq: wall.seq, items: [{ type: "alert", alert: acked }] });
      } catch (err) {
        note.textContent = err instanceof ApiError ? problemMessages(err.body, err.status)[0] : err.message;
        button.disabled = false;
      }
    },
  }, "Acknowledge");
  return el("div", { class: "alert-ack" }, button, viewer ? el("span", { class: "muted small", text: " viewer key: watch only" }) : null, note);
}

function trimAcked() {
  const list = $("#wall-acked");
  while (list.children.length > ACKED_SHOWN) {
    const li = list.lastElementChild;
    wall.items.delete(li.dataset.alertId);
    wall.alerts.delete(li.dataset.alertId);
    li.remove();
  }
}

// ---------------------------------------------------------------------------------- cues

/** A new alert flashes (CSS); an escalation also beeps when the sound is on. */
function cue(a) {
  if (!a || a.action !== "escalate" || !wall.sound || !wall.audio) return;
  const ctx = wall.audio;
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.frequency.value = a.priority === "urgent" || a.priority === "high" ? 880 : 660;
  gain.gain.setValueAtTime(0.15, ctx.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.35);
  osc.connect(gain).connect(ctx.destination);
  osc.start();
  osc.stop(ctx.currentTime + 0.35);
}

function toggleSound() {
  wall.sound = !wall.sound;
  // browsers let a page make sound only after a click: create the context in this one
  if (wall.sound && !wall.audio) wall.audio = new AudioContext();
  const button = $("#wall-sound");
  button.setAttribute("aria-pressed", String(wall.sound));
  button.textContent = wall.sound ? "Sound on" : "Sound off";
}

function onFilter() {
  wall.filter = { policy: $("#wall-policy").value, priority: $("#wall-priority").value, queue: $("#wall-queue").value };
  for (const [id, row] of wall.rows) row.hidden = !callMatches(wall.calls.get(id));
  for (const [id, li] of wall.items) li.hidden = !alertMatches(wall.alerts.get(id));
}

function init() {
  const priority = $("#wall-priority");
  for (const p of PRIORITIES) priority.append(el("option", { value: p, text: p }));
  for (const id of ["#wall-policy", "#wall-priority", "#wall-queue"]) $(id).addEventListener("change", onFilter);
  $("#wall-sound").addEventListener("click", toggleSound);
  window.addEventListener("hashchange", leave);
}

init();
