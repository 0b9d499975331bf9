// Webhooks: subscriptions (add, remove), and every delivery with each attempt on the mock's clock.
import { control, errorText, every, field, h, section, statusBadge, table, toast } from "../lib.js";

const EVENTS = ["record.created", "record.updated", "record.deleted"];

export async function render(root) {
  const url = h("input", { type: "url", required: true, placeholder: "http://127.0.0.1:9000/kantos", size: "34" });
  const secret = h("input", { required: true, value: "whsec_test", size: "14" });
  const events = EVENTS.map((name) => h("input", { type: "checkbox", value: name, checked: true }));
  const message = h("div", { role: "alert", class: "error", hidden: true });
  const subs = h("div", {});
  const deliveries = h("div", { id: "deliveries" });

  const form = h(
    "form",
    { class: "row", onsubmit: (e) => { e.preventDefault(); subscribe(); } },
    field("URL", url),
    field("Secret", secret),
    h("fieldset", { class: "checks" }, h("legend", {}, "Events"), events.map((box) => h("label", {}, box, " " + box.value))),
    h("button", { type: "submit", class: "primary" }, "Subscribe"),
  );
  root.append(section("Subscriptions", form, message, subs), section("Deliveries", deliveries));

  async function subscribe() {
    const chosen = events.filter((b) => b.checked).map((b) => b.value);
    const result = await control("/webhooks", { method: "POST", body: { url: url.value, secret: secret.value, events: chosen } });
    message.hidden = result.ok;
    if (!result.ok) message.textContent = errorText(result);
    else toast(`Subscribed: ${result.data.id}`);
    await load();
  }

  async function unsubscribe(id) {
    const result = await control(`/webhooks/${encodeURIComponent(id)}`, { method: "DELETE" });
    toast(result.ok ? `Removed ${id}` : errorText(result));
    await load();
  }

  async function load() {
    const [s, d] = await Promise.all([control("/webhooks"), control("/webhooks/deliveries")]);
    if (s.ok) {
      subs.replaceChildren(
        table(
          ["Id", "URL", "Events", "Secret", "Since", ""],
          s.data.data.map((sub) => [
            h("code", {}, sub.id),
            sub.url,
            sub.events.join(", "),
            h("code", {}, sub.secret),
            sub.created_at,
            h("button", { type: "button", class: "danger", "aria-label": `Remove subscription ${sub.id}`, onclick: () => unsubscribe(sub.id) }, "Remove"),
          ]),
          "No subscriptions: the mock sends nothing.",
        ),
      );
    }
    if (d.ok) {
      deliveries.replaceChildren(
        table(
          ["Event", "Record event", "Subscription", "State", "Attempts (mock clock)", "Next attempt"],
          d.data.data.slice().reverse().map((dl) => [
            h("code", {}, dl.event_id),
            dl.event,
            h("code", {}, dl.subscription_id),
            h("span", { class: "badge " + (dl.state === "delivered" ? "s-2xx" : dl.state === "failed" ? "s-5xx" : "s-4xx") }, dl.state),
            h("ol", { class: "attempts" }, dl.attempts.map((a) => h("li", {}, a.at, " ", a.status !== null ? statusBadge(a.status) : "", a.error ? h("span", { class: "error-text" }, " " + a.error) : "", h("span", { class: "muted" }, ` ${a.duration_ms} ms`)))),
            dl.next_attempt_at || "—",
          ]),
          "No deliveries yet: they appear when a subscribed record event happens.",
        ),
      );
    }
  }

  await load();
  return every(2000, load);
}
