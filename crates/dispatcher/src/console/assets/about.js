// The webhook at the top of its deliveries: URL, state, health and last success, and what can be
// done to it from there: send a test event, rotate its secret (the new one shown once),
// re-enable it when it was disabled, edit it.

import { api } from "./api.js";
import { announce, confirm, h, route, time } from "./dom.js";
import { health } from "./webhooks.js";

/** Shows `webhook` in `about` unless nothing shown changed; `refresh` updates the deliveries. */
export function showWebhook(about, project, webhook, refresh) {
  const key = JSON.stringify([webhook.updated_at, webhook.enabled, webhook.last_success_at, webhook.failing_since, webhook.failed_attempts]);
  if (about.dataset.key === key) return;
  about.dataset.key = key;
  const focused = about.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
  const button = (focus, label, onclick, kind = "secondary") =>
    h("button", { type: "button", class: kind, "data-focus": focus, onclick }, label);
  const secretLine = about.querySelector(".secret-once");
  about.replaceChildren(
    h("p", { class: "url" }, h("code", {}, webhook.url)),
    h("p", {}, h("span", { class: `badge ${webhook.enabled ? "ok" : "off"}` }, webhook.enabled ? "Enabled" : "Disabled")),
    health(webhook),
    h(
      "div",
      { class: "actions" },
      webhook.enabled ? null : button("enable", "Re-enable", () => reenable(project, webhook, refresh), ""),
      button("test", "Send test event", () => sendTest(project, webhook, refresh)),
      button("rotate", "Rotate secret", () => rotate(project, webhook, about)),
      h("a", { class: "button secondary", "data-focus": "edit", href: route("p", project, "w", webhook.id, "edit") }, "Edit"),
    ),
    ...[secretLine].filter(Boolean),
  );
  if (focused) (about.querySelector(`[data-focus="${focused}"]`) ?? document.querySelector("main h1")).focus();
}

async function reenable(project, webhook, refresh) {
  try {
    await api.update(project, webhook.id, { enabled: true });
    announce(`Webhook “${webhook.title}” enabled again; retry its failed deliveries if they are still wanted.`, "ok");
    refresh();
  } catch (error) {
    announce(`Not enabled: ${error.message}`, "error");
  }
}

async function sendTest(project, webhook, refresh) {
  try {
    await api.test(project, webhook.id);
    announce("Test event sent: its delivery is listed below.", "ok");
    refresh();
  } catch (error) {
    announce(`No test event sent: ${error.message}`, "error");
  }
}

/** Rotates the secret after asking; the new one is shown once, in a field focused to copy it. */
async function rotate(project, webhook, about) {
  const sure = await confirm(
    `Replace the secret of “${webhook.title}”? The current one keeps signing deliveries for 24 hours, beside the new one.`,
    "Rotate secret",
  );
  if (!sure) return;
  try {
    const rotated = await api.rotate(project, webhook.id);
    const value = h("input", { type: "text", id: "new-secret", readonly: true, value: rotated.secret, spellcheck: "false" });
    const until = rotated.previous_secret_until;
    const line = h(
      "div",
      { class: "secret-once field" },
      h("label", { for: "new-secret" }, "New secret (shown once: copy it now)"),
      value,
      h("p", { class: "hint" }, until ? ["The replaced secret still signs until ", time(until), "."] : "No other secret signs."),
    );
    about.querySelector(".secret-once")?.remove();
    about.append(line);
    value.focus();
    value.select();
    announce("Secret rotated: copy the new one now, it is not shown again.", "ok");
  } catch (error) {
    announce(`Not rotated: ${error.message}`, "error");
  }
}
