// Overview: objects and their record counts, the clock, API keys and their windows, faults, webhooks.
import { api, control, errorText, every, field, h, section, table, toast } from "../lib.js";

export async function render(root) {
  const clockNow = h("output", { class: "clock-now", "aria-label": "Mock time" }, "…");
  const clockState = h("span", { class: "badge" }, "…");
  const freeze = h("button", { type: "button", onclick: () => setClock({ freeze: clockState.dataset.frozen !== "true" }) }, "Freeze");
  const seconds = h("input", { type: "number", value: "60", step: "any", size: "6" });
  const advance = h("button", { type: "submit" }, "Advance the clock");
  const reset = h("button", { type: "button", class: "danger", onclick: resetTenant }, "Reset tenant");

  const objects = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const keys = h("div", {});
  const faults = h("div", {});
  const hooks = h("div", {});

  root.append(
    h(
      "div",
      { class: "grid" },
      section(
        "Clock",
        h("p", { class: "clock" }, clockNow, " ", clockState),
        h(
          "form",
          { class: "row", onsubmit: (e) => { e.preventDefault(); setClock({ advance: Number(seconds.value) }); } },
          freeze,
          field("Seconds", seconds),
          advance,
        ),
        h("p", {}, reset, " ", h("small", { class: "muted" }, "back to the fixture set: records, schema, journal, clock, limits, faults, webhooks")),
      ),
      section("Objects", objects),
    ),
    section("API keys", keys),
    h("div", { class: "grid" }, section("Active faults", faults), section("Webhook subscriptions", hooks)),
  );

  async function showClock() {
    const { ok, data } = await control("/clock");
    if (!ok) return;
    clockNow.textContent = data.now;
    clockState.textContent = data.frozen ? "frozen" : "running";
    clockState.className = "badge " + (data.frozen ? "s-4xx" : "s-2xx");
    clockState.dataset.frozen = String(data.frozen);
    freeze.textContent = data.frozen ? "Let it run" : "Freeze";
  }

  async function setClock(body) {
    const result = await control("/clock", { method: "POST", body });
    if (!result.ok) toast(errorText(result));
    await showClock();
    await showKeys();
  }

  async function resetTenant() {
    const result = await control("/reset", { method: "POST" });
    toast(result.ok ? `Reset: ${result.data.changes_undone} changes undone` : errorText(result));
    await load();
  }

  async function showObjects() {
    const result = await api("/crm/objects");
    if (!result.ok) {
      objects.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(result)));
      return;
    }
    const rows = [];
    for (const obj of result.data.data) {
      const count = await api("/crm/records/query", { params: { object_id: obj.id, per_page: 1 } });
      rows.push([
        h("a", { href: `#/records?${new URLSearchParams({ ...(tenantParam()), object: obj.id })}` }, obj.name),
        h("code", {}, obj.id),
        obj.field_count,
        h("strong", {}, count.ok ? count.data.pagination.total.toLocaleString("en") : "?"),
      ]);
    }
    objects.replaceChildren(table(["Object", "Id", "Fields", "Records"], rows));
  }

  async function showKeys() {
    const { ok, data } = await control("/keys");
    if (!ok) return;
    const window = (w, limit) => w ? `${w.remaining.toLocaleString("en")} of ${limit.toLocaleString("en")} left` : "";
    keys.replaceChildren(
      table(
        ["Key", "Type", "User", "Plan", "This minute", "Today"],
        data.data.map((k) => [
          h("code", {}, k.key),
          k.type,
          `${k.user_id}${k.admin ? " (admin)" : ""}`,
          k.plan,
          window(k.windows && k.windows.minute, k.per_minute),
          window(k.windows && k.windows.day, k.per_day),
        ]),
      ),
    );
  }

  async function showFaults() {
    const { ok, data } = await control("/faults");
    if (!ok) return;
    faults.replaceChildren(
      table(
        ["Id", "Matches", "Does", "Left"],
        data.data.filter((f) => f.remaining !== 0).map((f) => [h("code", {}, f.id), `${f.method || "any"} ${f.path || "*"}`, describeFault(f), f.remaining === null ? "∞" : f.remaining]),
        "No fault rules: every request gets the real answer.",
      ),
      h("p", {}, h("a", { href: `#/faults${tenantQuery()}` }, "Manage faults")),
    );
  }

  async function showWebhooks() {
    const { ok, data } = await control("/webhooks");
    if (!ok) return;
    hooks.replaceChildren(
      table(
        ["Id", "URL", "Events"],
        data.data.map((s) => [h("code", {}, s.id), s.url, s.events.join(", ")]),
        "No subscriptions.",
      ),
      h("p", {}, h("a", { href: `#/webhooks${tenantQuery()}` }, "Deliveries")),
    );
  }

  async function load() {
    await Promise.all([showClock(), showObjects(), showKeys(), showFaults(), showWebhooks()]);
  }

  await load();
  // Only the clock ticks on its own (a control call, not journaled); the rest reloads after actions.
  return every(1000, showClock);
}

export function describeFault(f) {
  const parts = [];
  if (f.latency_ms) parts.push(`+${f.latency_ms} ms`);
  if (f.status !== null) parts.push(`answers ${f.status}`);
  if (f.drop) parts.push("drops the connection");
  if (f.probability < 1) parts.push(`${Math.round(f.probability * 100)}% of the time`);
  return parts.join(", ") || "nothing";
}

function tenantParam() {
  const tenant = new URLSearchParams(location.hash.split("?")[1] || "").get("tenant");
  return tenant ? { tenant } : {};
}

function tenantQuery() {
  const q = new URLSearchParams(tenantParam()).toString();
  return q ? "?" + q : "";
}
