// A project's webhooks: each with its URL, events, health and the actions on it (deliveries,
// edit, the enabled switch, delete).

import { api } from "./api.js";
import { announce, confirm, h, route, screen, time } from "./dom.js";
import { remember } from "./projects.js";

export async function webhooksScreen(project) {
  const webhooks = await api.webhooks(project);
  remember(project);
  const list = h("ul", { class: "webhooks", "aria-label": "Webhooks" });
  for (const webhook of webhooks) list.append(card(project, webhook));
  screen(
    `Webhooks of ${project}`,
    [["Projects", "#/"], [project]],
    h("p", { class: "toolbar" }, h("a", { class: "button", href: route("p", project, "new") }, "New webhook")),
    webhooks.length ? list : h("p", { class: "empty" }, "No webhooks yet in this project."),
  );
}

/** One webhook as a card; replaced in place when it changes. */
function card(project, webhook) {
  const id = `webhook-${webhook.id}`;
  const toggle = h("input", {
    type: "checkbox",
    role: "switch",
    id: `${id}-enabled`,
    checked: webhook.enabled,
    onchange: () => setEnabled(project, webhook, toggle),
  });
  const item = h(
    "li",
    { class: "card webhook", id, "data-id": webhook.id, "aria-labelledby": `${id}-title` },
    h(
      "div",
      { class: "head" },
      h("h2", { id: `${id}-title` }, h("a", { href: route("p", project, "w", webhook.id) }, webhook.title)),
      h("span", { class: `badge ${webhook.enabled ? "ok" : "off"}` }, webhook.enabled ? "Enabled" : "Disabled"),
    ),
    h("p", { class: "url" }, h("code", {}, webhook.url)),
    events(webhook.events),
    health(webhook),
    h(
      "div",
      { class: "actions" },
      h("span", { class: "switch" }, toggle, h("label", { for: toggle.id }, "Enabled")),
      h("a", { class: "button secondary", href: route("p", project, "w", webhook.id) }, "Deliveries"),
      h("a", { class: "button secondary", href: route("p", project, "w", webhook.id, "edit") }, "Edit"),
      h("button", { type: "button", class: "danger", onclick: () => remove(project, webhook, item) }, "Delete"),
    ),
  );
  return item;
}

function events(names) {
  const shown = names.slice(0, 4).join(", ");
  const more = names.length > 4 ? ` and ${names.length - 4} more` : "";
  return h(
    "details",
    { class: "events" },
    h("summary", {}, `${names.length} event${names.length === 1 ? "" : "s"}: ${shown}${more}`),
    h("ul", {}, names.map((name) => h("li", {}, h("code", {}, name)))),
  );
}

/** What the API knows of a webhook's health, in words. */
export function health(webhook) {
  const lines = [];
  if (webhook.disabled_at) {
    lines.push(h("p", { class: "health off" }, "Disabled ", time(webhook.disabled_at), webhook.disabled_reason ? `: ${webhook.disabled_reason}` : ""));
  }
  if (webhook.failing_since) {
    lines.push(
      h(
        "p",
        { class: "health failing" },
        "Failing since ",
        time(webhook.failing_since),
        ` (${webhook.failed_attempts} failed attempt${webhook.failed_attempts === 1 ? "" : "s"})`,
        webhook.last_error ? `: ${webhook.last_error}` : "",
      ),
    );
  }
  if (!lines.length) lines.push(h("p", { class: "health ok" }, webhook.enabled ? "Healthy: no failure since the last success." : "Disabled by hand."));
  return h("div", { class: "healths" }, lines);
}

async function setEnabled(project, webhook, toggle) {
  const enabled = toggle.checked;
  toggle.disabled = true;
  try {
    const updated = await api.update(project, webhook.id, { enabled });
    const item = document.getElementById(`webhook-${webhook.id}`);
    const fresh = card(project, updated);
    item.replaceWith(fresh);
    fresh.querySelector('input[role="switch"]').focus();
    announce(`${updated.title} ${enabled ? "enabled" : "disabled"}.`, "ok");
  } catch (error) {
    toggle.checked = !enabled;
    toggle.disabled = false;
    announce(`Not changed: ${error.message}`, "error");
  }
}

async function remove(project, webhook, item) {
  const sure = await confirm(
    `Delete the webhook “${webhook.title}”? Its pending deliveries are cancelled; this cannot be undone.`,
    "Delete webhook",
  );
  if (!sure) return;
  try {
    await api.remove(project, webhook.id);
    const list = item.parentElement;
    item.remove();
    announce(`Webhook “${webhook.title}” deleted.`, "ok");
    if (!list.children.length) list.replaceWith(h("p", { class: "empty" }, "No webhooks yet in this project."));
    document.querySelector("main h1").focus();
  } catch (error) {
    announce(`Not deleted: ${error.message}`, "error");
  }
}
