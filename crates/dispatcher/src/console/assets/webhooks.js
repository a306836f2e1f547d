// A project's webhooks: each with its URL, events, health and the actions on it (deliveries,
// edit, the enabled switch, delete). Their health is asked for again every few seconds; a card
// is replaced only when its webhook changed, the focus kept on the same control.

import { api } from "./api.js";
import { announce, confirm, h, route, screen, time } from "./dom.js";
import { poll } from "./poll.js";
import { remember } from "./projects.js";

const EVERY_MS = 5000;

/** Shows the webhooks of `project`; returns what stops the refreshing. */
export async function webhooksScreen(project) {
  const webhooks = await api.webhooks(project);
  remember(project);
  const list = h("ul", { class: "webhooks", "aria-label": "Webhooks" });
  const empty = h("p", { class: "empty" }, "No webhooks yet in this project.");
  show(project, list, empty, webhooks);
  screen(
    `Webhooks of ${project}`,
    [["Projects", "#/"], [project]],
    h("p", { class: "toolbar" }, h("a", { class: "button", href: route("p", project, "new") }, "New webhook")),
    list,
    empty,
  );
  return poll(async () => {
    try {
      show(project, list, empty, await api.webhooks(project));
    } catch {
      // Shown again at the next refresh; the list on the page stays as it was.
    }
  }, EVERY_MS);
}

/** What a card shows of a webhook: a changed key means a new card. */
const keyOf = (w) =>
  JSON.stringify([w.title, w.url, w.events, w.enabled, w.last_success_at, w.failing_since, w.failed_attempts, w.last_error, w.disabled_at]);

/** Brings `list` up to date with `webhooks`, in their order. */
function show(project, list, empty, webhooks) {
  const ids = new Set(webhooks.map((w) => w.id));
  for (const item of [...list.children]) if (!ids.has(item.dataset.id)) item.remove();
  webhooks.forEach((webhook, index) => {
    let item = document.getElementById(`webhook-${webhook.id}`);
    const key = keyOf(webhook);
    if (!item || item.dataset.key !== key) {
      const fresh = card(project, webhook);
      if (item) {
        const focused = item.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
        item.replaceWith(fresh);
        if (focused) fresh.querySelector(`[data-focus="${focused}"]`)?.focus();
      }
      item = fresh;
    }
    if (list.children[index] !== item) list.insertBefore(item, list.children[index] ?? null);
  });
  list.hidden = webhooks.length === 0;
  empty.hidden = webhooks.length > 0;
}

/** One webhook as a card; replaced in place when it changes. */
function card(project, webhook) {
  const id = `webhook-${webhook.id}`;
  const toggle = h("input", {
    type: "checkbox",
    role: "switch",
    id: `${id}-enabled`,
    checked: webhook.enabled,
    "data-focus": "switch",
    onchange: () => setEnabled(project, webhook, toggle),
  });
  const item = h(
    "li",
    { class: "card webhook", id, "data-id": webhook.id, "data-key": keyOf(webhook), "aria-labelledby": `${id}-title` },
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
      h("a", { class: "button secondary", "data-focus": "deliveries", href: route("p", project, "w", webhook.id) }, "Deliveries"),
      h("a", { class: "button secondary", "data-focus": "edit", href: route("p", project, "w", webhook.id, "edit") }, "Edit"),
      h("button", { type: "button", class: "danger", "data-focus": "delete", onclick: () => remove(project, webhook, item) }, "Delete"),
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
  if (!lines.length) {
    const ok = webhook.last_success_at ? "Healthy: no failure since the last success." : "Healthy: no failure yet.";
    lines.push(h("p", { class: "health ok" }, webhook.enabled ? ok : "Disabled by hand."));
  }
  lines.push(
    webhook.last_success_at
      ? h("p", { class: "health last-success" }, "Last success: ", time(webhook.last_success_at))
      : h("p", { class: "health last-success" }, "No successful delivery yet."),
  );
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
    if (!list.children.length) {
      list.hidden = true;
      list.nextElementSibling.hidden = false;
    }
    document.querySelector("main h1").focus();
  } catch (error) {
    announce(`Not deleted: ${error.message}`, "error");
  }
}
