// Helpers the views share: building elements, calling the control API and /api, formatting.

// The tenant every call acts on ("" is the default one), and the API key the dashboard uses.
export const session = { tenant: "", key: null, keyTenant: null };

// h("button", {class: "x", onclick: fn}, "text", child, [more]): an element.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "value") el.value = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function query(params) {
  const qs = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") qs.set(name, String(value));
  }
  const text = qs.toString();
  return text ? "?" + text : "";
}

function headers(extra) {
  const out = { ...extra };
  if (session.tenant) out["X-Mock-Tenant"] = session.tenant;
  return out;
}

async function call(url, method, body, extra) {
  const init = { method, headers: headers(extra) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  return { ok: response.ok, status: response.status, data };
}

// The control API: `control("/clock")`, `control("/faults", {method: "POST", body})`.
export function control(path, { method = "GET", body, params } = {}) {
  return call("/_mock" + path + query(params), method, body, {});
}

// The Kantos API, with the tenant's admin key; marked as the dashboard's own in the journal.
export async function api(path, { method = "GET", body, params } = {}) {
  const key = await apiKey();
  return call("/api" + path + query(params), method, body, { "X-Api-Key": key || "", "X-Mock-Client": "dashboard" });
}

// A server key of an admin user, else any server key: what a test suite would use.
export async function apiKey() {
  if (session.key && session.keyTenant === session.tenant) return session.key;
  const { ok, data } = await control("/keys");
  if (!ok) return null;
  const keys = data.data;
  const pick = keys.find((k) => k.type === "server" && k.admin) || keys.find((k) => k.type === "server") || keys[0];
  session.key = pick ? pick.key : null;
  session.keyTenant = session.tenant;
  return session.key;
}

// The message of a Kantos error body, or a fallback for anything else.
export function errorText(result) {
  const data = result.data;
  if (data && typeof data === "object" && data.error) return `${data.status} ${data.code}: ${data.error}`;
  return `HTTP ${result.status}${typeof data === "string" && data ? ": " + data.slice(0, 200) : ""}`;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

export function statusBadge(status) {
  const cls = status === null ? "s-none" : status >= 500 ? "s-5xx" : status >= 400 ? "s-4xx" : "s-2xx";
  return h("span", { class: "badge " + cls }, status === null ? "no answer" : status);
}

export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.classList.add("shown");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove("shown"), 2500);
}

export function section(title, ...children) {
  const id = "h-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

// A labelled form control: field("Path", h("input", {...})) gives the input an id and a label.
let fieldCount = 0;
export function field(label, control, hint) {
  if (!control.id) control.id = "f" + ++fieldCount;
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hint ? h("small", { class: "muted" }, hint) : null);
}

export function table(columns, rows, empty = "Nothing yet.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  );
}

// Runs `fn` every `ms` while the view is shown; the returned function stops it.
export function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } finally { if (!stopped) timer = setTimeout(tick, ms); }
  };
  timer = setTimeout(tick, ms);
  return () => { stopped = true; clearTimeout(timer); };
}
