// Faults: the tenant's fault rules; add one (method, path, status, latency or drop, times or probability), delete.
import { control, errorText, field, h, section, table, toast } from "../lib.js";
import { describeFault } from "./overview.js";

export async function render(root) {
  const method = h("select", {}, ["", "GET", "POST", "PATCH", "PUT", "DELETE"].map((m) => h("option", { value: m }, m || "any")));
  const path = h("input", { placeholder: "/api/crm/records/query or /api/*", size: "26" });
  const action = h("select", {}, h("option", { value: "status" }, "answer with a status"), h("option", { value: "latency" }, "only delay"), h("option", { value: "drop" }, "drop the connection"));
  const status = h("input", { type: "number", min: "200", max: "599", value: "503", size: "5" });
  const latency = h("input", { type: "number", min: "0", max: "60000", value: "0", size: "6" });
  const times = h("input", { type: "number", min: "1", placeholder: "every time", size: "8" });
  const probability = h("input", { type: "number", min: "0.01", max: "1", step: "0.01", placeholder: "1", size: "5" });
  const message = h("div", { role: "alert", class: "error", hidden: true });
  const rules = h("div", { id: "fault-rules" });
  const statusField = field("Status", status);
  action.addEventListener("change", () => { statusField.hidden = action.value !== "status"; });

  const form = h(
    "form",
    { class: "row", onsubmit: (e) => { e.preventDefault(); add(); } },
    field("Method", method),
    field("Path", path, "* matches anything"),
    field("Action", action),
    statusField,
    field("Latency (ms)", latency),
    field("Times", times),
    field("Probability", probability),
    h("button", { type: "submit", class: "primary" }, "Add fault"),
  );
  const clear = h("button", { type: "button", class: "danger", onclick: clearAll }, "Delete all faults");
  root.append(section("Add a fault rule", form, message), section("Fault rules", rules, h("p", {}, clear)));

  async function add() {
    const body = {};
    if (method.value) body.method = method.value;
    if (path.value.trim()) body.path = path.value.trim();
    if (action.value === "status") body.status = Number(status.value);
    if (action.value === "drop") body.drop = true;
    if (Number(latency.value) > 0 || action.value === "latency") body.latency_ms = Number(latency.value);
    if (times.value) body.times = Number(times.value);
    if (probability.value) body.probability = Number(probability.value);
    const result = await control("/faults", { method: "POST", body });
    message.hidden = result.ok;
    if (!result.ok) message.textContent = errorText(result);
    else toast(`Added ${result.data.id}`);
    await load();
  }

  async function remove(id) {
    const result = await control(`/faults/${encodeURIComponent(id)}`, { method: "DELETE" });
    toast(result.ok ? `Deleted ${id}` : errorText(result));
    await load();
  }

  async function clearAll() {
    const result = await control("/faults", { method: "DELETE" });
    toast(result.ok ? "Every fault rule deleted" : errorText(result));
    await load();
  }

  async function load() {
    const result = await control("/faults");
    if (!result.ok) {
      rules.replaceChildren(h("p", { class: "error" }, errorText(result)));
      return;
    }
    rules.replaceChildren(
      table(
        ["Id", "Method", "Path", "Does", "Times left", "Fired", ""],
        result.data.data.map((f) => [
          h("code", {}, f.id),
          f.method || "any",
          h("code", {}, f.path || "*"),
          describeFault(f),
          f.remaining === null ? "∞" : f.remaining,
          f.hits,
          h("button", { type: "button", class: "danger", "aria-label": `Delete fault ${f.id}`, onclick: () => remove(f.id) }, "Delete"),
        ]),
        "No fault rules: every request gets the real answer.",
      ),
    );
  }

  await load();
  return null;
}
