// The dashboard's shell: the view named in the URL's hash, and the tenant switcher every view shares.
import { control, h, session } from "./lib.js";
import * as overview from "./views/overview.js";
import * as records from "./views/records.js";
import * as requests from "./views/requests.js";
import * as webhooks from "./views/webhooks.js";
import * as faults from "./views/faults.js";

const VIEWS = { overview, records, requests, webhooks, faults };
const TITLES = { overview: "Overview", records: "Records", requests: "Requests", webhooks: "Webhooks", faults: "Faults" };
let stop = null;

// "#/records?object=obj_contacts&tenant=w1" -> ["records", URLSearchParams]
function route() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const name = VIEWS[path] ? path : "overview";
  return [name, new URLSearchParams(search || "")];
}

// Puts `params` (and the tenant) in the hash without re-rendering: links stay shareable.
export function remember(params) {
  const [name] = route();
  const qs = new URLSearchParams();
  if (session.tenant) qs.set("tenant", session.tenant);
  for (const [key, value] of Object.entries(params)) if (value !== "" && value !== null && value !== undefined) qs.set(key, value);
  const text = qs.toString();
  history.replaceState(null, "", `#/${name}${text ? "?" + text : ""}`);
}

async function render() {
  const [name, params] = route();
  session.tenant = params.get("tenant") || "";
  if (stop) stop();
  stop = null;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    link.href = `#/${link.dataset.view}${session.tenant ? "?tenant=" + encodeURIComponent(session.tenant) : ""}`;
  }
  document.title = `${TITLES[name]} · kantos-mock`;
  await loadTenants();
  const root = document.getElementById("view");
  root.replaceChildren(h("h1", {}, TITLES[name], session.tenant ? h("span", { class: "muted tenant-name" }, ` · tenant ${session.tenant}`) : null));
  stop = (await VIEWS[name].render(root, params, { remember })) || null;
}

async function loadTenants() {
  const select = document.getElementById("tenant");
  const { ok, data } = await control("/tenants");
  const names = ok ? data.data.map((t) => t.name) : [""];
  if (!names.includes(session.tenant)) names.push(session.tenant);
  if (!names.includes("")) names.unshift("");
  select.replaceChildren(...names.map((name) => h("option", { value: name, selected: name === session.tenant }, name || "(default)")));
}

function switchTenant(name) {
  const [view] = route();
  location.hash = `#/${view}${name ? "?tenant=" + encodeURIComponent(name) : ""}`;
}

document.getElementById("tenant").addEventListener("change", (event) => switchTenant(event.target.value));
document.getElementById("tenant").addEventListener("focus", loadTenants);
document.getElementById("tenant-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("tenant-new");
  const name = input.value.trim();
  input.value = "";
  switchTenant(name);
});
window.addEventListener("hashchange", render);
render();
