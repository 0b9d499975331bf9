// Requests: the journal, newest first, polled with `since` while the view is open (nothing is pushed).
import { control, errorText, every, field, h, json, statusBadge, toast } from "../lib.js";

const KEEP = 300; // rows kept on screen
const POLL_MS = 1000;

export async function render(root, params, { remember }) {
  const method = h("select", {}, ["", "GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"].map((m) => h("option", { value: m }, m || "any")));
  const path = h("input", { type: "search", placeholder: "/api/crm/record/*", size: "24" });
  const status = h("input", { type: "search", placeholder: "404, 4xx or none", size: "14" });
  const hideOwn = h("input", { type: "checkbox", checked: true });
  const live = h("input", { type: "checkbox", checked: true });
  const clear = h("button", { type: "button", class: "danger", onclick: clearJournal }, "Clear journal");
  const message = h("div", { role: "alert", class: "error", hidden: true });
  const body = h("tbody", { id: "journal-rows" });
  const empty = h("p", { class: "muted" }, "No request yet.");
  const detail = h("div", { id: "request-detail", class: "detail-pane" }, h("p", { class: "muted" }, "Open a request to see its headers, bodies and answer."));

  method.value = params.get("method") || "";
  path.value = params.get("path") || "";
  status.value = params.get("status") || "";

  const form = h(
    "form",
    { class: "row filters", onsubmit: (e) => { e.preventDefault(); restart(); } },
    field("Method", method),
    field("Path", path),
    field("Status", status),
    h("button", { type: "submit" }, "Filter"),
    h("div", { class: "checks" }, h("label", {}, hideOwn, " Hide the dashboard's own calls"), h("label", {}, live, " Live")),
    clear,
  );
  for (const control of [method, hideOwn]) control.addEventListener("change", restart);

  root.append(
    form,
    message,
    h(
      "div",
      { class: "split" },
      h(
        "div",
        { class: "card" },
        h("table", { class: "journal" },
          h("caption", { class: "visually-hidden" }, "Requests, newest first"),
          h("thead", {}, h("tr", {}, ["#", "Time (mock clock)", "Method", "Path", "Status", "ms", "Fault"].map((c) => h("th", { scope: "col" }, c)))),
          body,
        ),
        empty,
      ),
      detail,
    ),
  );

  let lastId = 0;
  let generation = null;
  let opened = null;

  function filters() {
    return { method: method.value, path: path.value.trim(), status: status.value.trim().toLowerCase() };
  }

  async function restart() {
    lastId = 0;
    body.replaceChildren();
    remember(filters());
    await poll();
  }

  async function poll() {
    if (!live.checked && lastId) return;
    const wanted = filters();
    const result = await control("/requests", { params: { ...wanted, since: lastId || "", limit: KEEP, bodies: "false" } });
    if (!result.ok) {
      message.textContent = errorText(result);
      message.hidden = false;
      return;
    }
    message.hidden = true;
    const { data } = result.data;
    if (generation !== null && result.data.generation !== generation) {
      // The journal was emptied (DELETE or reset): ids count from 1 again.
      generation = result.data.generation;
      lastId = 0;
      body.replaceChildren();
      return poll();
    }
    generation = result.data.generation;
    lastId = Math.max(lastId, result.data.last_id);
    for (const entry of data) {
      if (hideOwn.checked && entry.client === "dashboard") continue;
      body.prepend(row(entry));
    }
    while (body.rows.length > KEEP) body.deleteRow(-1);
    empty.hidden = body.rows.length > 0;
  }

  function row(entry) {
    const open = h("button", { type: "button", class: "link", "aria-label": `Open request ${entry.id}: ${entry.method} ${entry.path}`, onclick: () => openEntry(entry.id) }, entry.id);
    return h(
      "tr",
      { "data-id": entry.id, class: entry.fault ? "faulted" : null },
      h("td", {}, open),
      h("td", { class: "time" }, entry.time.replace("T", " ").replace("Z", "")),
      h("td", {}, h("span", { class: "method" }, entry.method)),
      h("td", { class: "path" }, entry.path),
      h("td", {}, statusBadge(entry.status)),
      h("td", { class: "num" }, entry.duration_ms.toFixed(1)),
      h("td", {}, entry.fault ? h("span", { class: "badge fault" }, "fault " + entry.fault) : ""),
    );
  }

  async function openEntry(id) {
    opened = id;
    const result = await control(`/requests/${id}`);
    if (opened !== id) return;
    if (!result.ok) {
      detail.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(result)));
      return;
    }
    const e = result.data;
    const curl = curlOf(e, location.origin);
    const curlBox = h("textarea", { readonly: true, rows: "3", class: "curl", spellcheck: "false" }, curl);
    const copy = h("button", { type: "button", onclick: () => copyText(curl, curlBox) }, "Copy as curl");
    detail.replaceChildren(
      h(
        "div",
        { class: "card" },
        h("h2", {}, `${e.method} ${e.path}`, " ", statusBadge(e.status)),
        h("dl", { class: "facts" },
          h("dt", {}, "Request"), h("dd", {}, `#${e.id} at ${e.time} (mock clock)`),
          h("dt", {}, "Status"), h("dd", {}, e.status === null ? "no answer (connection dropped)" : e.status),
          h("dt", {}, "Duration"), h("dd", {}, `${e.duration_ms} ms`),
          h("dt", {}, "Fault"), h("dd", {}, e.fault ? h("span", { class: "badge fault" }, e.fault) : "none"),
          Object.keys(e.query).length ? [h("dt", {}, "Query"), h("dd", {}, h("pre", { class: "json" }, json(e.query)))] : null,
        ),
        h("h3", {}, "Request headers"),
        h("table", { class: "headers" }, h("tbody", {}, Object.entries(e.headers).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))))),
        h("h3", {}, "Request body"),
        bodyView(e.body, e.body_size, e.body_truncated, "Request body"),
        h("h3", {}, "Response body"),
        bodyView(e.response_body, e.response_size, e.response_truncated, "Response body"),
        field("curl (the API key is left as $KANTOS_API_KEY)", curlBox),
        copy,
      ),
    );
  }

  async function clearJournal() {
    const result = await control("/requests", { method: "DELETE" });
    toast(result.ok ? "Journal emptied" : errorText(result));
    await restart();
  }

  await poll();
  return every(POLL_MS, poll);
}

function bodyView(value, size, truncated, label) {
  if (value === null) return h("p", { class: "muted" }, "empty");
  const text = typeof value === "string" ? value : json(value);
  return h(
    "div",
    {},
    truncated ? h("p", { class: "warning" }, `Cut: the journal keeps the first 256 KiB of ${size.toLocaleString("en")} bytes.`) : null,
    h("pre", { class: "json", tabindex: "0", "aria-label": label }, text),
  );
}

function shellQuote(text) {
  return "'" + String(text).replace(/'/g, "'\\''") + "'";
}

export function curlOf(entry, origin) {
  const qs = new URLSearchParams();
  for (const [name, value] of Object.entries(entry.query)) for (const v of [].concat(value)) qs.append(name, v);
  const url = origin + entry.path + (qs.toString() ? "?" + qs.toString() : "");
  const parts = ["curl -s", entry.method === "GET" ? null : `-X ${entry.method}`, shellQuote(url)];
  for (const [name, value] of Object.entries(entry.headers)) {
    if (["host", "content-length", "connection", "accept-encoding", "user-agent", "accept"].includes(name)) continue;
    if (name === "x-api-key") parts.push(`-H "X-Api-Key: $KANTOS_API_KEY"`);
    else parts.push(`-H ${shellQuote(`${name}: ${value}`)}`);
  }
  if (entry.body !== null && !entry.body_truncated) parts.push(`-d ${shellQuote(typeof entry.body === "string" ? entry.body : JSON.stringify(entry.body))}`);
  return parts.filter(Boolean).join(" ");
}

async function copyText(text, box) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied");
  } catch {
    // No clipboard outside a secure context (a remote bind over http): select it for Ctrl+C.
    box.focus();
    box.select();
    toast("Selected: press Ctrl+C to copy");
  }
}
