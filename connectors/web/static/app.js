// callsense web UI: ES modules, no dependencies, no build step (common.js: shared helpers).
// Every piece of call data is user data (transcripts, file names): it is put on the page with
// textContent / text nodes only, never parsed as HTML.
import {
  $, el, clear, fmtTime, fmtDate, setStatus, debounce, getKey, ApiError, problemMessages, api, showBanner, setKey,
} from "./common.js";
import { initTrends, showTrends } from "./trends.js";
import { showWall } from "./wall.js";

// ?page_size=N in the page URL overrides the list's page size (1..100)
const PAGE_SIZE = Math.min(100, Math.max(1, Number(new URLSearchParams(location.search).get("page_size")) || 20));
const PENDING = new Set(["queued", "pending", "running", "processing", "accepted"]);
const SPEAKER_ORDER = ["customer", "agent", "unknown"];
const VALIDATE_DELAY_MS = 350;

// ---------------------------------------------------------------------------------- key

function initKeyForm() {
  const form = $("#key-form");
  const input = $("#api-key");
  const state = $("#key-state");
  input.value = getKey();
  state.textContent = getKey() ? "key saved" : "no key";
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setKey(input.value.trim());
    state.textContent = input.value.trim() ? "key saved" : "no key";
    showBanner("");
    route();
  });
}

// ---------------------------------------------------------------------------------- tags

function tagChip(kind, value, extraClass = "") {
  return el("span", { class: `tag tag-${kind} ${extraClass}`.trim(), text: value });
}

function utteranceTags(u) {
  const chips = [];
  if (u.emotion && u.emotion !== "EMO_UNKNOWN") chips.push(tagChip("emotion", u.emotion, `emo-${u.emotion}`));
  if (u.event && u.event !== "Speech") chips.push(tagChip("event", u.event, `ev-${u.event}`));
  if (u.lang && u.lang !== "nospeech") chips.push(tagChip("lang", u.lang));
  if (u.speaker === "agent" && !u.emotion) chips.push(tagChip("note", "no SER", "muted"));
  return chips;
}

function isSkipped(u) {
  return u.event === "BGM" || u.skipped === true;
}

// ---------------------------------------------------------------------------------- timeline

/**
 * Draw a call as lanes per speaker. Utterance blocks carry their emotion/event tags, BGM
 * spans are shaded across all lanes, decisions are flags at the audio time they fired.
 */
function renderTimeline(container, { utterances, decisions, duration, selected, onSelect }) {
  clear(container);
  const end = Math.max(
    Number(duration) || 0,
    ...utterances.map((u) => Number(u.end) || 0),
    ...decisions.map((d) => Number(d.at) || 0),
    1,
  );
  const pct = (t) => `${Math.min(100, Math.max(0, (Number(t) / end) * 100))}%`;
  const span = (a, b) => `${Math.max(0.3, ((Number(b) - Number(a)) / end) * 100)}%`;
  const speakers = SPEAKER_ORDER.filter((s) => utterances.some((u) => u.speaker === s));
  if (!speakers.length) speakers.push("customer", "agent");
  const evidenceKeys = new Set((selected?.evidence ?? []).map(evidenceKey));

  const lanes = el("div", { class: "lanes" });
  for (const speaker of speakers) {
    const track = el("div", { class: "track" });
    utterances
      .filter((u) => u.speaker === speaker && !isSkipped(u))
      .forEach((u) => {
        const emo = u.emotion && u.emotion !== "EMO_UNKNOWN" ? u.emotion : "none";
        const label = [u.emotion && u.emotion !== "EMO_UNKNOWN" ? u.emotion : null,
          u.event && u.event !== "Speech" ? u.event : null].filter(Boolean).join(" · ") || u.source || "speech";
        const title = `${speaker} ${fmtTime(u.start)}–${fmtTime(u.end)}  ` +
          `emotion ${u.emotion ?? "off"}, event ${u.event ?? "–"}, lang ${u.lang ?? "–"}`;
        track.append(el("div", {
          class: `utt emo-${emo}${evidenceKeys.has(uttKey(u)) ? " evidence" : ""}`,
          style: { left: pct(u.start), width: span(u.start, u.end) },
          title,
          dataset: { speaker, emotion: u.emotion ?? "", event: u.event ?? "" },
          role: "listitem",
          "aria-label": title,
        }, el("span", { class: "utt-label", text: label })));
      });
    lanes.append(el("div", { class: "lane", dataset: { speaker } },
      el("div", { class: "lane-name", text: speaker }),
      el("div", { class: "lane-body", role: "list", "aria-label": `${speaker} utterances` }, track)));
  }

  const overlay = el("div", { class: "overlay" });
  for (const u of utterances.filter(isSkipped)) {
    overlay.append(el("div", {
      class: "bgm",
      style: { left: pct(u.start), width: span(u.start, u.end) },
      title: `music skipped by the policy ${fmtTime(u.start)}–${fmtTime(u.end)}`,
    }, el("span", { class: "bgm-label", text: "BGM skipped" })));
  }
  decisions.forEach((d, i) => {
    const marker = el("button", {
      type: "button",
      class: `marker action-${d.action}${selected === d ? " selected" : ""}`,
      style: { left: pct(d.at) },
      title: decisionTitle(d),
      "aria-label": `Decision ${i + 1}: ${decisionTitle(d)}`,
      "aria-pressed": selected === d ? "true" : "false",
      dataset: { rule: d.rule, action: d.action },
      onclick: () => onSelect?.(d),
    }, el("span", { class: "flag", text: d.action }));
    overlay.append(marker);
  });
  lanes.append(overlay);

  const axis = el("div", { class: "axis", "aria-hidden": "true" });
  const step = niceStep(end);
  for (let t = 0; t <= end - step * 0.4; t += step) {
    axis.append(el("span", { class: "tick", style: { left: pct(t) }, text: fmtTime(t) }));
  }
  container.append(lanes, el("div", { class: "axis-row" }, el("div", { class: "lane-name" }), axis));
}

function niceStep(total) {
  for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600]) if (total / s <= 10) return s;
  return 1200;
}

const uttKey = (u) => `${u.speaker}|${Number(u.start).toFixed(2)}`;
const evidenceKey = (e) => `${e.speaker}|${Number(e.start).toFixed(2)}`;

function decisionTitle(d) {
  const params = Object.entries(d.params ?? {}).map(([k, v]) => `${k}=${v}`).join(", ");
  return `${d.action}${params ? ` (${params})` : ""} by rule ${d.rule} at ${fmtTime(d.at)}`;
}

/** The utterance an evidence entry points at: same speaker and start (seq as a fallback). */
function findEvidence(utterances, e) {
  return utterances.find((u) => u.speaker === e.speaker && Math.abs(Number(u.start) - Number(e.start)) < 0.02)
    ?? utterances.find((u) => u.seq === e.seq)
    ?? null;
}

// Policy texts by name, fetched once per page load to show each decision's condition.
const policyTexts = new Map();

function policyText(name) {
  if (!policyTexts.has(name)) {
    policyTexts.set(name, api(`/v1/policies/${encodeURIComponent(name)}`)
      .then((p) => (typeof p === "string" ? p : p.yaml ?? p.text ?? ""))
      .catch(() => ""));
  }
  return policyTexts.get(name);
}

/**
 * The ``when:`` (and description) lines of rule ``id`` in a policy's YAML, with their line
 * numbers: the condition exactly as its author wrote it, without a YAML parser.
 */
function ruleCondition(text, id) {
  const lines = text.split("\n");
  const esc = id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const head = new RegExp(`^(\\s*)-\\s+id:\\s*["']?${esc}["']?\\s*(#.*)?$`);
  const start = lines.findIndex((l) => head.test(l));
  if (start < 0) return null;
  const dash = head.exec(lines[start])[1].length;
  const indent = (l) => l.length - l.trimStart().length;
  let end = start + 1;
  while (end < lines.length && (!lines[end].trim() || indent(lines[end]) > dash)) end++;
  const out = [];
  let keyIndent = null;
  let keep = false;
  for (let i = start + 1; i < end; i++) {
    const l = lines[i];
    if (!l.trim()) continue;
    const m = /^(\s*)([A-Za-z_]+):/.exec(l);
    if (m && (keyIndent === null || m[1].length <= keyIndent)) {
      keyIndent = m[1].length;
      keep = m[2] === "when" || m[2] === "description" || m[2] === "within";
    }
    if (keep) out.push({ line: i + 1, text: l.slice(dash + 2) });
  }
  return out.length ? out : null;
}

async function fillCondition(node, d) {
  const text = await policyText(d.policy);
  const found = text ? ruleCondition(text, d.rule) : null;
  if (!found) return;
  clear(node).append(el("strong", { text: "Condition " }),
    el("span", { class: "muted", text: `(policy ${d.policy}, lines ${found[0].line}–${found.at(-1).line}):` }),
    el("pre", { class: "condition", text: found.map((f) => f.text).join("\n") }));
}

/** Why each decision fired: its rule, condition, and the utterances that satisfied it. */
function renderDecisions(container, { decisions, utterances, selected, onSelect }) {
  clear(container);
  if (!decisions.length) {
    container.append(el("p", { class: "muted", text: "No decision fired." }));
    return;
  }
  const list = el("ol", { class: "decision-list" });
  decisions.forEach((d, i) => {
    const why = d.condition ?? d.explanation ?? d.when ?? null;
    const params = Object.entries(d.params ?? {});
    const item = el("li", { class: `decision${selected === d ? " selected" : ""}`, dataset: { rule: d.rule } },
      el("button", {
        type: "button", class: "decision-head", "aria-expanded": selected === d ? "true" : "false",
        onclick: () => onSelect?.(d),
      },
      el("span", { class: `badge action-${d.action}`, text: d.action }),
      ` rule ${d.rule} at ${fmtTime(d.at)}`,
      d.policy ? el("span", { class: "muted", text: ` · policy ${d.policy}` }) : null),
      params.length
        ? el("p", { class: "params" }, params.map(([k, v]) => el("span", { class: "param" }, `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)))
        : null,
    );
    const cond = el("div", { class: "why" });
    if (why) cond.append(el("strong", { text: "Condition: " }), typeof why === "string" ? why : JSON.stringify(why));
    else if (d.policy) fillCondition(cond, d);
    item.append(cond);
    if (selected === d || decisions.length === 1 || i === 0 && !selected) {
      const ev = el("ul", { class: "evidence-list", "aria-label": `Evidence for ${d.rule}` });
      for (const e of d.evidence ?? []) {
        const u = findEvidence(utterances, e);
        ev.append(el("li", {},
          el("span", { class: "ev-time", text: `${fmtTime(e.start)}–${fmtTime(e.end)}` }),
          el("span", { class: "ev-speaker", text: e.speaker }),
          ...utteranceTags({ ...e, lang: u?.lang }),
          u?.text ? el("q", { class: "ev-text", text: u.text }) : null));
      }
      if (!(d.evidence ?? []).length) ev.append(el("li", { class: "muted", text: "no evidence recorded" }));
      item.append(el("p", { class: "ev-head", text: "Evidence utterances:" }), ev);
    }
    list.append(item);
  });
  container.append(list);
}

// ---------------------------------------------------------------------------------- calls list

/** Pages are cursor-based (the API returns ``next_cursor``); "Previous" walks back a stack. */
const listState = { cursors: [null], page: 0, next: null, escalated: false };

async function showCalls() {
  const body = $("#calls-body");
  const empty = $("#calls-empty");
  try {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    const cursor = listState.cursors[listState.page];
    if (cursor) params.set("cursor", cursor);
    if (listState.escalated) params.set("escalated", "true");
    const data = await api(`/v1/calls?${params}`);
    const items = Array.isArray(data) ? data : data.items ?? data.calls ?? [];
    listState.next = Array.isArray(data) ? null : data.next_cursor ?? null;
    clear(body);
    for (const c of items) body.append(callRow(c));
    empty.hidden = items.length > 0;
    empty.textContent = listState.escalated ? "No escalated calls." : "No calls yet.";
    const first = listState.page * PAGE_SIZE + (items.length ? 1 : 0);
    const last = listState.page * PAGE_SIZE + items.length;
    const total = data.total ?? null;
    $("#page-info").textContent = `Page ${listState.page + 1} · calls ${first}–${last}${total !== null ? ` of ${total}` : ""}`;
    $("#page-prev").disabled = listState.page === 0;
    $("#page-next").disabled = !listState.next;
  } catch (err) {
    clear(body);
    $("#page-info").textContent = "";
    empty.hidden = false;
    empty.textContent = `Could not load calls: ${err.message}`;
  }
}

function callRow(c) {
  const id = c.id ?? c.call_id;
  const s = c.summary ?? {};
  const escalated = c.escalated ?? s.escalated ?? false;
  const priority = c.top_priority ?? s.top_priority ?? null;
  const link = el("a", { href: `#/calls/${encodeURIComponent(id)}` }, c.source ?? c.filename ?? id);
  return el("tr", { dataset: { callId: id, escalated: String(Boolean(escalated)) } },
    el("td", {}, link, el("div", { class: "muted small mono", text: id })),
    el("td", { text: fmtDate(c.created_at ?? c.received_at) }),
    el("td", {}, el("span", { class: `status-pill st-${c.status}`, text: c.status ?? "–" })),
    el("td", { text: fmtTime(c.duration_s ?? s.duration_s) }),
    el("td", {}, escalated
      ? el("span", { class: "badge action-escalate", text: `escalated${priority ? ` · ${priority}` : ""}` })
      : el("span", { class: "muted", text: "–" })),
    el("td", { text: c.language ?? "auto" }),
    el("td", { text: String(c.decision_count ?? "–") }),
  );
}

function initCalls() {
  $("#filter-escalated").addEventListener("change", (ev) => {
    Object.assign(listState, { escalated: ev.target.checked, cursors: [null], page: 0 });
    showCalls();
  });
  $("#page-prev").addEventListener("click", () => {
    listState.page = Math.max(0, listState.page - 1);
    showCalls();
  });
  $("#page-next").addEventListener("click", () => {
    if (!listState.next) return;
    listState.cursors[listState.page + 1] = listState.next;
    listState.page += 1;
    showCalls();
  });
  $("#upload-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = $("#upload-status");
    const file = $("#upload-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("audio", file, file.name);
    form.append("language", $("#upload-language").value);
    setStatus(status, `Uploading ${file.name}…`, "busy");
    try {
      const job = await api("/v1/calls", { method: "POST", body: form });
      const id = job.id ?? job.call_id ?? job.job_id;
      setStatus(status, `Accepted as ${id}.`, "ok");
      location.hash = `#/calls/${encodeURIComponent(id)}`;
    } catch (err) {
      setStatus(status, `Upload failed: ${err.message}`, "error");
    }
  });
}

// ---------------------------------------------------------------------------------- one call

const callState = { id: null, data: null, selected: null, timer: null };

async function showCall(id) {
  clearTimeout(callState.timer);
  if (callState.id !== id) Object.assign(callState, { id, data: null, selected: null });
  $("#call-title").textContent = `Call ${id}`;
  const status = $("#call-status");
  let data;
  try {
    data = await api(`/v1/calls/${encodeURIComponent(id)}`);
  } catch (err) {
    setStatus(status, `Could not load the call: ${err.message}`, "error");
    return;
  }
  if (callState.id !== id) return; // navigated away meanwhile
  callState.data = data;
  const pending = PENDING.has(String(data.status));
  if (data.status === "failed" || data.error) {
    const e = data.error;
    setStatus(status, `Analysis failed: ${typeof e === "object" && e ? e.message ?? JSON.stringify(e) : e ?? ""}`, "error");
  } else {
    setStatus(status, pending ? `Status: ${data.status}… (refreshing)` : `Status: ${data.status ?? "done"}`, pending ? "busy" : "ok");
  }
  drawCall();
  if (pending) callState.timer = setTimeout(() => route(), 1000);
}

function drawCall() {
  const data = callState.data;
  const utterances = [...(data.utterances ?? [])].sort((a, b) => a.start - b.start);
  const decisions = data.decisions ?? [];
  // keep the chosen decision across refreshes (a running call is re-fetched every second)
  const key = (d) => `${d.rule}|${d.action}|${d.at}`;
  const kept = callState.selected && decisions.find((d) => key(d) === key(callState.selected));
  callState.selected = kept ?? decisions[0] ?? null;
  const s = data.summary ?? {};
  renderSummary($("#call-summary"), data, s);
  const select = (d) => {
    callState.selected = d;
    drawCall();
  };
  renderTimeline($("#call-timeline"), {
    utterances, decisions, duration: s.duration_s ?? data.duration_s, selected: callState.selected, onSelect: select,
  });
  renderDecisions($("#call-decisions"), { decisions, utterances, selected: callState.selected, onSelect: select });
  const tbody = clear($("#call-transcript"));
  utterances.forEach((u, i) => {
    tbody.append(el("tr", { class: isSkipped(u) ? "skipped" : "", dataset: { speaker: u.speaker } },
      el("td", { class: "mono", text: String(u.seq ?? i) }),
      el("td", { class: "mono", text: `${fmtTime(u.start)}–${fmtTime(u.end)}` }),
      el("td", { text: u.speaker }),
      el("td", {}, utteranceTags(u)),
      el("td", { class: "text", text: u.text ?? "" })));
  });
}

function renderSummary(dl, data, s) {
  clear(dl);
  const sat = s.satisfaction ?? {};
  const rows = [
    ["Recording", data.source ?? data.filename ?? s.source ?? "–"],
    ["Duration", fmtTime(s.duration_s ?? data.duration_s)],
    ["Language", data.language ?? "auto"],
    ["Utterances", String(s.utterances ?? (data.utterances ?? []).length)],
    ["Escalated", s.escalated ? `yes${s.top_priority ? ` (${s.top_priority})` : ""}` : "no"],
    ["Satisfaction score", sat.score === null || sat.score === undefined
      ? "n/a (no signals)" : `${Number(sat.score).toFixed(2)} (${sat.marks ?? 0} positive, ${sat.negative ?? 0} negative)`],
    ["Skipped music", `${Number(s.skipped_bgm_s ?? 0).toFixed(1)} s`],
  ];
  if (Array.isArray(s.compliance) && s.compliance.length) rows.push(["Compliance", s.compliance.join("; ")]);
  const audit = s.audit ?? {};
  if (audit.policy_hash || audit.config_hash) {
    const short = (h) => (h ? String(h).slice(0, 12) : "–");
    const model = audit.model ? String(audit.model).split("/").filter(Boolean).at(-1) : "–";
    rows.push(["Audit", `policies ${short(audit.policy_hash)} · config ${short(audit.config_hash)} · model ${model}`]);
  }
  for (const [k, v] of rows) {
    dl.append(el("div", { class: `kv kv-${k.toLowerCase().replaceAll(" ", "-")}` }, el("dt", { text: k }), el("dd", { text: v })));
  }
}

// ---------------------------------------------------------------------------------- live

const live = {
  ws: null, stop: null, callId: null, runningTimer: null,
  utterances: [], decisions: [], selected: null, duration: 0,
};

/**
 * Decode a local recording straight at ``rate`` (8 or 16 kHz), keeping up to two channels.
 * Decoding in a context of the target rate resamples once, with the decoder's sinc filter (none
 * at all for an 8 kHz telephone file); playing the buffer through a graph would add a cruder one.
 */
async function decodeForStream(file, rate) {
  const bytes = await file.arrayBuffer();
  const ctx = new OfflineAudioContext(1, 1, rate);
  const buf = await ctx.decodeAudioData(bytes);
  const channels = Math.min(2, buf.numberOfChannels);
  const data = [];
  for (let c = 0; c < channels; c++) data.push(buf.getChannelData(c));
  return { rate, channels, data, duration: buf.duration };
}

/** Interleaved little-endian PCM16 for samples [from, to) of every channel. */
function pcm16(audio, from, to) {
  const n = to - from;
  const out = new DataView(new ArrayBuffer(n * audio.channels * 2));
  let o = 0;
  for (let i = from; i < to; i++) {
    for (let c = 0; c < audio.channels; c++) {
      const v = Math.max(-1, Math.min(1, audio.data[c][i]));
      out.setInt16(o, v < 0 ? v * 0x8000 : v * 0x7fff, true);
      o += 2;
    }
  }
  return out.buffer;
}

function liveLog(text, kind = "") {
  const log = $("#live-log");
  log.append(el("li", { class: kind, text: `${new Date().toLocaleTimeString()}  ${text}` }));
  while (log.children.length > 200) log.firstChild.remove();
}

function drawLive() {
  const select = (d) => {
    live.selected = d;
    drawLive();
  };
  const sel = live.selected ?? live.decisions[0] ?? null;
  renderTimeline($("#live-timeline"), {
    utterances: live.utterances, decisions: live.decisions, duration: live.duration, selected: sel, onSelect: select,
  });
  renderDecisions($("#live-decisions"), { decisions: live.decisions, utterances: live.utterances, selected: sel, onSelect: select });
}

/** One JSON message from the server: an utterance, a decision, a reply, or session news. */
function onLiveMessage(msg) {
  const type = msg.type ?? msg.event ?? msg.kind;
  const body = msg.data ?? msg.utterance ?? msg.decision ?? msg;
  if (type === "utterance") {
    live.utterances.push(body);
    liveLog(`utterance ${body.speaker} ${fmtTime(body.start)}–${fmtTime(body.end)} ${[body.emotion, body.event].filter(Boolean).join(" ")}`);
  } else if (type === "decision") {
    live.decisions.push(body);
    liveLog(`decision ${body.action} by rule ${body.rule} at ${fmtTime(body.at)}`, "decision");
  } else if (type === "reply") {
    liveLog(`reply: ${body.text ?? body.reply?.text ?? ""}`, "reply");
  } else if (type === "end") {
    const sat = body.summary?.satisfaction ?? msg.summary?.satisfaction;
    liveLog(`call ended${sat && sat.score !== null && sat.score !== undefined ? `, satisfaction ${Number(sat.score).toFixed(2)}` : ""}`);
  } else if (type === "error") {
    liveLog(`error: ${body.message ?? JSON.stringify(body)}`, "error");
  } else {
    liveLog(`${type ?? "message"}`);
  }
  drawLive();
}

async function startLive(ev) {
  ev.preventDefault();
  const status = $("#live-status");
  const file = $("#live-file").files[0];
  if (!file) return;
  stopLive();
  Object.assign(live, { utterances: [], decisions: [], selected: null, duration: 0 });
  clear($("#live-log"));
  $("#live-call-link").hidden = true;
  drawLive();
  setStatus(status, `Decoding ${file.name}…`, "busy");
  let audio;
  try {
    audio = await decodeForStream(file, Number($("#live-rate").value) || 8000);
  } catch (err) {
    setStatus(status, `This browser cannot decode the file: ${err.message}`, "error");
    return;
  }
  live.duration = audio.duration;
  const speed = Number($("#live-speed").value) || 1;
  // browsers cannot set headers on a WebSocket: the key goes in the query (never logged)
  const params = new URLSearchParams({ api_key: getKey() });
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/stream?${params}`;
  const callId = `web_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  live.callId = callId;
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  $("#live-start").disabled = true;
  $("#live-stop").disabled = false;
  let timer = null;
  let sent = 0;
  const frame = Math.round(audio.rate * 0.1); // 100 ms of audio per message
  const total = audio.data[0].length;
  const finish = (message, kind) => {
    clearInterval(timer);
    setStatus(status, message, kind);
    $("#live-start").disabled = false;
    $("#live-stop").disabled = true;
  };
  live.stop = () => {
    clearInterval(timer);
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
  };
  ws.addEventListener("open", () => {
    ws.send(JSON.stringify({
      type: "start", call_id: callId, sample_rate: audio.rate, channels: audio.channels, encoding: "pcm16",
      roles: audio.channels === 2 ? { 0: "customer", 1: "agent" } : { 0: "customer" },
      language: $("#live-language").value,
    }));
    setStatus(status, `Streaming ${file.name} (${audio.channels} ch, ${audio.rate / 1000} kHz, ${fmtTime(audio.duration)})…`, "busy");
    const started = performance.now();
    timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * audio.rate * speed));
      while (sent + frame <= due || (due === total && sent < total)) {
        const to = Math.min(total, sent + frame);
        ws.send(pcm16(audio, sent, to));
        sent = to;
      }
      if (sent >= total) {
        clearInterval(timer);
        ws.send(JSON.stringify({ type: "stop" }));
        setStatus(status, "All audio sent; waiting for the last results…", "busy");
      }
    }, 50);
  });
  ws.addEventListener("message", (m) => {
    if (typeof m.data !== "string") return;
    try {
      onLiveMessage(JSON.parse(m.data));
    } catch {
      liveLog("unreadable message from server", "error");
    }
  });
  ws.addEventListener("close", (e) => {
    live.ws = null;
    const link = $("#live-call-link");
    link.href = `#/calls/${encodeURIComponent(callId)}`;
    link.textContent = `Open the stored call ${callId}`;
    link.hidden = false;
    finish(`Stream closed${e.code !== 1000 ? ` (code ${e.code}${e.reason ? `: ${e.reason}` : ""})` : ""}. ` +
      `${live.utterances.length} utterances, ${live.decisions.length} decisions.`, e.code === 1000 ? "ok" : "error");
  });
  ws.addEventListener("error", () => liveLog("connection error", "error"));
}

function stopLive() {
  live.stop?.();
  live.stop = null;
}

/** Calls being streamed right now (any protocol): their pages refresh while they run. */
async function showRunningCalls() {
  const list = $("#live-running");
  try {
    const data = await api("/v1/calls?status=running&limit=50");
    const items = (data.items ?? []).filter((c) => c.kind === "live");
    clear(list);
    for (const c of items) {
      list.append(el("li", {},
        el("a", { href: `#/calls/${encodeURIComponent(c.id)}` }, c.id),
        el("span", { class: "muted", text: ` · ${c.source ?? "live"} · since ${fmtDate(c.created_at)}` })));
    }
    if (!items.length) list.append(el("li", { class: "muted", text: "No call is streaming now." }));
  } catch (err) {
    clear(list).append(el("li", { class: "error", text: `Could not list live calls: ${err.message}` }));
  }
  clearTimeout(live.runningTimer);
  if (!$("#view-live").hidden) live.runningTimer = setTimeout(showRunningCalls, 2000);
}

function initLive() {
  $("#live-form").addEventListener("submit", startLive);
  $("#live-stop").addEventListener("click", stopLive);
}

// ---------------------------------------------------------------------------------- policies

const policyState = { name: null, loaded: "", seq: 0, errorLines: new Set() };

async function showPolicies(name) {
  const select = $("#policy-name");
  let names = [];
  try {
    const data = await api("/v1/policies");
    const items = Array.isArray(data) ? data : data.items ?? data.policies ?? [];
    names = items.map((p) => (typeof p === "string" ? p : p.name));
  } catch (err) {
    renderValidation([`Could not list policies: ${err.message}`], "error");
    return;
  }
  clear(select);
  for (const n of names) select.append(el("option", { value: n, text: n }));
  const chosen = name && names.includes(name) ? name : names[0];
  if (!chosen) return;
  select.value = chosen;
  if (policyState.name === chosen && $("#policy-text").value) return;
  try {
    const p = await api(`/v1/policies/${encodeURIComponent(chosen)}`);
    policyState.name = chosen;
    policyState.loaded = typeof p === "string" ? p : p.yaml ?? p.text ?? p.source ?? "";
    $("#policy-text").value = policyState.loaded;
    updateGutter();
    validatePolicy();
    loadPolicyTests(chosen);
  } catch (err) {
    renderValidation([`Could not load ${chosen}: ${err.message}`], "error");
  }
}

function updateGutter() {
  const text = $("#policy-text");
  const gutter = clear($("#policy-gutter"));
  const lines = text.value.split("\n").length;
  for (let i = 1; i <= lines; i++) {
    const bad = policyState.errorLines.has(i);
    gutter.append(el("span", { class: bad ? "err" : null, title: bad ? "error on this line" : null }, String(i)), "\n");
  }
  gutter.scrollTop = text.scrollTop;
}

function renderValidation(messages, kind) {
  const box = clear($("#policy-validation"));
  box.dataset.kind = kind;
  if (kind !== "busy") {
    policyState.errorLines = new Set(kind === "error"
      ? messages.map((m) => Number(/:(\d+):/.exec(m)?.[1])).filter(Boolean) : []);
    updateGutter();
  }
  if (kind !== "error") {
    box.append(el("p", { class: kind, text: messages[0] ?? "" }));
    return;
  }
  const list = el("ul", { class: "problems" });
  for (const m of messages) {
    const line = /:(\d+):/.exec(m)?.[1];
    list.append(el("li", {}, line
      ? el("button", { type: "button", class: "linklike", onclick: () => gotoLine(Number(line)), text: m })
      : m));
  }
  box.append(list);
}

function gotoLine(line) {
  const text = $("#policy-text");
  const lines = text.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  text.focus();
  text.setSelectionRange(start, start + (lines[line - 1] ?? "").length);
}

async function validatePolicy() {
  const name = policyState.name;
  if (!name) return;
  const seq = ++policyState.seq;
  try {
    const res = await api(`/v1/policies/${encodeURIComponent(name)}/validate`, {
      method: "POST", body: $("#policy-text").value, headers: { "Content-Type": "application/yaml" },
    });
    if (seq !== policyState.seq) return;
    if (res.valid === false) renderValidation(res.problems ?? ["invalid"], "error");
    else renderValidation([`Valid: ${(res.rules ?? []).length} rules (${(res.rules ?? []).join(", ")}).`], "ok");
  } catch (err) {
    if (seq !== policyState.seq) return;
    renderValidation(err instanceof ApiError ? problemMessages(err.body, err.status) : [err.message], "error");
  }
}

async function savePolicy() {
  const status = $("#policy-save-status");
  try {
    await api(`/v1/policies/${encodeURIComponent(policyState.name)}`, {
      method: "PUT", body: $("#policy-text").value, headers: { "Content-Type": "application/yaml" },
    });
    policyState.loaded = $("#policy-text").value;
    setStatus(status, `Saved ${policyState.name}.`, "ok");
  } catch (err) {
    setStatus(status, `Not saved: ${err.message}`, "error");
  }
}

async function loadPolicyTests(name) {
  // The service may serve the configured tests of a policy; otherwise keep what is typed.
  try {
    const t = await api(`/v1/policies/${encodeURIComponent(name)}/tests`);
    const text = typeof t === "string" ? t : t.text ?? t.tests ?? "";
    if (text) $("#policy-tests-text").value = text;
  } catch {
    // no tests endpoint or none stored for this policy
  }
}

async function runPolicyTests() {
  const box = clear($("#policy-tests"));
  box.append(el("p", { class: "muted", text: "Running…" }));
  try {
    const res = await api(`/v1/policies/${encodeURIComponent(policyState.name)}/test`, {
      method: "POST", body: { tests: $("#policy-tests-text").value, policy: $("#policy-text").value },
    });
    clear(box);
    const cases = res.cases ?? [];
    const passed = res.passed ?? cases.filter((c) => c.passed).length;
    const failed = res.failed ?? cases.length - passed;
    box.append(el("p", { class: `tests-total ${failed ? "error" : "ok"}`, text: `${passed} passed, ${failed} failed` }));
    const list = el("ul", { class: "test-cases" });
    for (const c of cases) {
      list.append(el("li", { class: c.passed ? "pass" : "fail" },
        el("span", { class: "badge", text: c.passed ? "pass" : "fail" }),
        ` ${c.name ?? ""}`,
        c.line ? el("span", { class: "muted small", text: ` (tests line ${c.line})` }) : null,
        (c.diff ?? []).length ? el("pre", { class: "diff", text: c.diff.join("\n") }) : null));
    }
    box.append(list);
  } catch (err) {
    clear(box);
    const list = el("ul", { class: "problems" });
    for (const m of err instanceof ApiError ? problemMessages(err.body, err.status) : [err.message]) list.append(el("li", { text: m }));
    box.append(el("p", { class: "error", text: "The tests could not run:" }), list);
  }
}

function initPolicies() {
  const text = $("#policy-text");
  const later = debounce(validatePolicy, VALIDATE_DELAY_MS);
  text.addEventListener("input", () => {
    updateGutter();
    renderValidation(["Checking…"], "busy");
    later();
  });
  text.addEventListener("scroll", () => {
    $("#policy-gutter").scrollTop = text.scrollTop;
  });
  $("#policy-name").addEventListener("change", (ev) => {
    location.hash = `#/policies/${encodeURIComponent(ev.target.value)}`;
  });
  $("#policy-save").addEventListener("click", savePolicy);
  $("#policy-run-tests").addEventListener("click", runPolicyTests);
}

// ---------------------------------------------------------------------------------- routing

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const view = parts[0] || "calls";
  for (const section of document.querySelectorAll(".view")) section.hidden = true;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (view === "calls" && parts[1]) {
    $("#view-call").hidden = false;
    showCall(parts[1]);
  } else if (view === "live") {
    $("#view-live").hidden = false;
    drawLive();
    showRunningCalls();
  } else if (view === "policies") {
    $("#view-policies").hidden = false;
    showPolicies(parts[1]);
  } else if (view === "trends") {
    $("#view-trends").hidden = false;
    showTrends();
  } else if (view === "wall") {
    $("#view-wall").hidden = false;
    showWall();
  } else {
    $("#view-calls").hidden = false;
    showCalls();
  }
  if (!getKey()) showBanner("Enter an API key (from `callsense keys create NAME`) to use the API.");
}

initKeyForm();
initCalls();
initLive();
initPolicies();
initTrends(api);
window.addEventListener("hashchange", route);
route();
