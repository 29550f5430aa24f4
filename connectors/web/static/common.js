// What every view of the web UI shares: building elements from user data safely, formats,
// and the API (the key kept in localStorage, problem-details errors, a banner for refusals).
// Every piece of call data is user data (transcripts, file names): it is put on the page with
// textContent / text nodes only, never parsed as HTML.

// ---------------------------------------------------------------------------------- helpers

export const $ = (sel, root = document) => root.querySelector(sel);

/** Build an element; strings among the children become text nodes (never markup). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "style") Object.assign(node.style, value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function fmtTime(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "–";
  const s = Number(seconds);
  const m = Math.floor(s / 60);
  const rest = s - m * 60;
  return `${m}:${rest.toFixed(1).padStart(4, "0")}`;
}

export function fmtDate(value) {
  if (!value) return "–";
  // the API gives epoch seconds; Date wants milliseconds
  const d = new Date(typeof value === "number" && value < 1e12 ? value * 1000 : value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}

export function setStatus(node, message, kind = "") {
  node.textContent = message;
  node.dataset.kind = kind;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// ---------------------------------------------------------------------------------- API

const KEY_STORE = "callsense.apiKey";

export const getKey = () => localStorage.getItem(KEY_STORE) || "";
export const setKey = (value) => localStorage.setItem(KEY_STORE, value);

export class ApiError extends Error {
  constructor(status, body) {
    super(problemMessages(body, status).join("\n"));
    this.status = status;
    this.body = body;
  }
}

/** Every message a problem-details / FastAPI error body carries, one string each. */
export function problemMessages(body, status = 0) {
  if (!body) return [`HTTP ${status}`];
  if (typeof body === "string") return [body || `HTTP ${status}`];
  const out = [];
  const list = body.errors ?? body.problems ?? (Array.isArray(body.detail) ? body.detail : null);
  if (Array.isArray(list)) {
    for (const item of list) {
      if (typeof item === "string") out.push(item);
      else if (item && item.loc) out.push(`${item.loc.join(".")}: ${item.msg}`);
      else if (item) out.push(formatProblem(item));
    }
  }
  if (!out.length && typeof body.detail === "string") out.push(body.detail);
  if (!out.length && body.title) out.push(body.title);
  if (!out.length) out.push(`HTTP ${status}`);
  return out;
}

export function formatProblem(p) {
  if (p.problem) return String(p.problem);
  let where = p.file || "<input>";
  if (p.line !== null && p.line !== undefined) where += `:${p.line}`;
  const field = p.field ? `${p.field}: ` : "";
  return `${where}: ${field}${p.message ?? p.msg ?? p.detail ?? ""}`;
}

export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const h = new Headers(headers);
  const key = getKey();
  if (key) h.set("Authorization", `Bearer ${key}`);
  if (body !== undefined && !(body instanceof FormData) && typeof body !== "string") {
    h.set("Content-Type", "application/json");
    body = JSON.stringify(body);
  }
  const res = await fetch(path, { method, body, headers: h, signal });
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 401) showBanner("The API refused the key: enter a valid API key above.");
    else if (res.status === 403) showBanner(problemMessages(data, 403)[0]);
    throw new ApiError(res.status, data);
  }
  return data;
}

export function showBanner(message) {
  const banner = $("#banner");
  banner.textContent = message;
  banner.hidden = !message;
}
