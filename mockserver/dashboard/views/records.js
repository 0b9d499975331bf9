// Records: one object's fields, and its records as /api/crm/records/query answers for the filters given.
import { api, errorText, field, h, json, section, table } from "../lib.js";

const SYSTEM = ["created_at", "updated_at", "id", "created_by"];
const COLUMNS = 4; // fields shown beside the id (and the sort field); the whole record opens aside

export async function render(root, params, { remember }) {
  const objectSelect = h("select", {});
  const filters = h("textarea", { rows: "3", spellcheck: "false", placeholder: '{"status": "active", "deal_value": {"$gte": 1000}}' });
  const sort = h("select", {});
  const order = h("select", {}, h("option", { value: "asc" }, "ascending"), h("option", { value: "desc" }, "descending"));
  const perPage = h("select", {}, ["10", "25", "50", "100"].map((n) => h("option", { value: n }, n)));
  const page = h("input", { type: "number", min: "1", value: "1", size: "4" });
  const run = h("button", { type: "submit", class: "primary" }, "Run query");
  const prev = h("button", { type: "button", onclick: () => go(-1) }, "Previous page");
  const next = h("button", { type: "button", onclick: () => go(1) }, "Next page");
  const message = h("div", { id: "query-error", role: "alert", class: "error", hidden: true });
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const results = h("div", { id: "records-table" });
  const detail = h("div", { id: "record-detail" });
  const fields = h("div", {});
  let objectFields = [];

  const form = h(
    "form",
    { class: "query", onsubmit: (e) => { e.preventDefault(); page.value = "1"; runQuery(); } },
    h("div", { class: "row" }, field("Object", objectSelect), field("Sort by", sort), field("Order", order), field("Per page", perPage), field("Page", page)),
    field("Filters (the API's filter JSON)", filters, "Ctrl+Enter runs the query. Empty: every record."),
    h("div", { class: "row" }, run, prev, next),
    message,
  );
  filters.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit(); });
  objectSelect.addEventListener("change", async () => { await loadObject(); page.value = "1"; runQuery(); });

  root.append(
    section("Query", form),
    h("div", { class: "grid wide-left" }, section("Records", summary, results), h("div", { class: "side" }, detail, section("Fields", fields))),
  );

  const listed = await api("/crm/objects");
  if (!listed.ok) {
    showError(errorText(listed));
    return null;
  }
  objectSelect.replaceChildren(...listed.data.data.map((o) => h("option", { value: o.id }, `${o.name} (${o.id})`)));
  objectSelect.value = params.get("object") || listed.data.data[0]?.id || "";
  filters.value = params.get("filters") || "";
  order.value = params.get("order") || "asc";
  perPage.value = params.get("per_page") || "25";
  page.value = params.get("page") || "1";
  await loadObject(params.get("sort"));
  await runQuery();
  return null;

  async function loadObject(wantedSort) {
    const result = await api(`/crm/objects/${encodeURIComponent(objectSelect.value)}`);
    objectFields = result.ok ? result.data.fields : [];
    const current = wantedSort || sort.value || "created_at";
    sort.replaceChildren(
      ...SYSTEM.map((s) => h("option", { value: s }, s)),
      ...objectFields.map((f) => h("option", { value: f.slug }, f.slug)),
    );
    sort.value = [...SYSTEM, ...objectFields.map((f) => f.slug)].includes(current) ? current : "created_at";
    fields.replaceChildren(
      table(
        ["Field", "Slug", "Type", ""],
        objectFields.map((f) => [f.name, h("code", {}, f.slug), h("span", { class: "type" }, f.type), [f.required ? "required" : "", f.unique ? " unique" : ""].join("")]),
        "No fields.",
      ),
    );
  }

  function go(step) {
    page.value = String(Math.max(1, Number(page.value || 1) + step));
    runQuery();
  }

  function showError(text) {
    message.textContent = text;
    message.hidden = false;
  }

  async function runQuery() {
    const query = {
      object_id: objectSelect.value,
      filters: filters.value.trim() ? filters.value : "", // sent as typed: the API judges it
      sort: sort.value,
      order: order.value,
      page: page.value,
      per_page: perPage.value,
    };
    remember({ object: query.object_id, filters: query.filters, sort: query.sort, order: query.order, page: query.page, per_page: query.per_page });
    const result = await api("/crm/records/query", { params: query });
    detail.replaceChildren();
    if (!result.ok) {
      showError(errorText(result));
      summary.textContent = "";
      results.replaceChildren();
      return;
    }
    message.hidden = true;
    const { data, pagination } = result.data;
    summary.textContent = `${pagination.total.toLocaleString("en")} records · page ${pagination.page} of ${pagination.total_pages}`;
    prev.disabled = pagination.page <= 1;
    next.disabled = pagination.page >= pagination.total_pages;
    const shown = objectFields.slice(0, COLUMNS);
    const sorted = objectFields.find((f) => f.slug === sort.value);
    if (sorted && !shown.includes(sorted)) shown.push(sorted); // the column the order comes from
    results.replaceChildren(
      table(
        ["Id", ...shown.map((f) => f.name)],
        data.map((rec) => [
          h("button", { type: "button", class: "link", "data-id": rec.id, "aria-label": `Open record ${rec.id}`, onclick: () => openRecord(rec.id) }, h("code", {}, rec.id)),
          ...shown.map((f) => cell(rec.field_values[f.slug])),
        ]),
        "No record matches.",
      ),
    );
  }

  async function openRecord(id) {
    const result = await api(`/crm/record/${encodeURIComponent(id)}`);
    const close = h("button", { type: "button", onclick: () => detail.replaceChildren() }, "Close");
    detail.replaceChildren(
      h("div", { class: "card detail" }, h("h2", {}, "Record ", h("code", {}, id), " ", close), h("pre", { class: "json", tabindex: "0", "aria-label": `Record ${id} as JSON` }, result.ok ? json(result.data) : errorText(result))),
    );
    close.focus();
  }
}

function cell(value) {
  if (value === undefined || value === null) return h("span", { class: "muted" }, "—");
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}
