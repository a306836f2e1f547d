// A webhook's deliveries, newest first, refreshed every few seconds: a new delivery or attempt
// shows up without a reload, rows that did not change are left alone (focus and opened attempt
// lists stay where they were), and a change of state is announced.

import { api } from "./api.js";
import { announce, h, route, screen, time } from "./dom.js";
import { health } from "./webhooks.js";

/** How often the list is asked for again. */
const EVERY_MS = 3000;
const COLUMNS = ["Event", "State", "Created", "Attempts", "Next attempt", "Action"];

/** Shows the deliveries of webhook `id`; returns what stops the refreshing. */
export async function deliveriesScreen(project, id) {
  const [first, deliveries] = await Promise.all([api.webhook(project, id), api.deliveries(project, id)]);
  const about = h("section", { class: "card about", "aria-label": "Webhook" });
  const rows = h("tbody");
  const table = h(
    "table",
    { class: "deliveries" },
    h("caption", {}, "Deliveries, newest first"),
    h("thead", {}, h("tr", {}, COLUMNS.map((name) => h("th", { scope: "col" }, name)))),
    rows,
  );
  const empty = h("p", { class: "empty" }, "No deliveries yet: they appear here as events of this webhook come in.");
  const updated = h("p", { class: "hint updated" });
  screen(
    `Deliveries of “${first.title}”`,
    [["Projects", "#/"], [project, route("p", project)], [first.title]],
    about,
    h("div", { class: "table" }, table),
    empty,
    updated,
  );

  let timer = null;
  let stopped = false;
  let seen = null;
  const refresh = async () => {
    clearTimeout(timer);
    // A tab in the background asks nothing; it catches up when shown again.
    if (document.hidden) return;
    try {
      const [webhook, list] = await Promise.all([api.webhook(project, id), api.deliveries(project, id)]);
      if (stopped) return;
      showWebhook(about, project, webhook, lastSuccess(list), refresh);
      seen = showDeliveries(rows, list, seen, project, refresh);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshed every ${EVERY_MS / 1000} s.`;
      empty.hidden = list.length > 0;
      table.hidden = list.length === 0;
    } catch (error) {
      if (error.status !== 401) updated.textContent = `Could not refresh: ${error.message}`;
    }
    if (!stopped) timer = setTimeout(refresh, EVERY_MS);
  };
  showWebhook(about, project, first, lastSuccess(deliveries), refresh);
  seen = showDeliveries(rows, deliveries, null, project, refresh);
  empty.hidden = deliveries.length > 0;
  table.hidden = deliveries.length === 0;
  timer = setTimeout(refresh, EVERY_MS);
  const shown = () => document.hidden || refresh();
  document.addEventListener("visibilitychange", shown);
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", shown);
  };
}

/** When the latest successful attempt among `deliveries` was made (RFC 3339), or null. */
function lastSuccess(deliveries) {
  const times = deliveries.flatMap((d) => d.attempts.filter((a) => a.success).map((a) => a.at));
  return times.length ? times.reduce((a, b) => (new Date(a) > new Date(b) ? a : b)) : null;
}

/** The webhook's URL, state and health, and Re-enable when it is disabled. */
function showWebhook(about, project, webhook, success, refresh) {
  const key = JSON.stringify([webhook.updated_at, webhook.enabled, webhook.failing_since, webhook.failed_attempts, success]);
  if (about.dataset.key === key) return;
  about.dataset.key = key;
  const hadFocus = about.contains(document.activeElement);
  const enable = webhook.enabled
    ? null
    : h("button", { type: "button", onclick: () => reenable(project, webhook, refresh) }, "Re-enable");
  about.replaceChildren(
    h("p", { class: "url" }, h("code", {}, webhook.url)),
    h("p", {}, h("span", { class: `badge ${webhook.enabled ? "ok" : "off"}` }, webhook.enabled ? "Enabled" : "Disabled")),
    health(webhook),
    h("p", { class: "hint" }, "Last success: ", success ? time(success) : "none among the deliveries below"),
    h(
      "div",
      { class: "actions" },
      enable,
      h("a", { class: "button secondary", href: route("p", project, "w", webhook.id, "edit") }, "Edit"),
    ),
  );
  if (hadFocus) document.querySelector("main h1").focus();
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

/** Brings the rows up to date with `list`; returns what was shown, for the next time. */
function showDeliveries(rows, list, seen, project, refresh) {
  const now = new Map();
  const changes = [];
  let fresh = 0;
  list.forEach((delivery, index) => {
    const key = JSON.stringify([delivery.state, made(delivery), delivery.next_attempt_at]);
    now.set(delivery.id, key);
    const rowId = `delivery-${delivery.id}`;
    let row = document.getElementById(rowId);
    if (!row || row.dataset.key !== key) {
      const next = deliveryRow(delivery, key, project, refresh);
      if (row) {
        if (row.dataset.state !== delivery.state) changes.push(`${delivery.event_name}: ${delivery.state}`);
        keepState(row, next);
        row.replaceWith(next);
      } else if (seen) {
        fresh += 1;
      }
      row = next;
    }
    if (rows.children[index] !== row) rows.insertBefore(row, rows.children[index] ?? null);
  });
  for (const row of [...rows.children]) if (!now.has(row.dataset.id)) row.remove();
  if (fresh) changes.unshift(`${fresh} new deliver${fresh === 1 ? "y" : "ies"}`);
  if (changes.length) announce(changes.slice(0, 3).join("; "));
  return now;
}

/** Carries an opened attempt list and the focus over to the row that replaces `old`. */
function keepState(old, next) {
  if (old.querySelector("details")?.open) next.querySelector("details")?.setAttribute("open", "");
  const focused = old.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
  if (focused) queueMicrotask(() => next.querySelector(`[data-focus="${focused}"]`)?.focus());
}

function deliveryRow(delivery, key, project, refresh) {
  const last = delivery.attempts.at(-1);
  const retry = h(
    "button",
    {
      type: "button",
      class: "secondary small",
      "data-focus": "retry",
      "aria-label": `Retry the ${delivery.event_name} delivery`,
    },
    "Retry",
  );
  retry.addEventListener("click", async () => {
    retry.disabled = true;
    try {
      await api.retry(project, delivery.id);
      announce(`Retry of the ${delivery.event_name} delivery queued.`, "ok");
      refresh();
    } catch (error) {
      retry.disabled = false;
      announce(`Not retried: ${error.message}`, "error");
    }
  });
  const cell = (label, ...content) => h("td", { "data-label": label }, ...content);
  return h(
    "tr",
    { id: `delivery-${delivery.id}`, "data-id": delivery.id, "data-key": key, "data-state": delivery.state },
    cell("Event", h("code", {}, delivery.event_name)),
    cell("State", h("span", { class: `badge state ${delivery.state}` }, delivery.state)),
    cell("Created", time(delivery.created_at)),
    cell("Attempts", attempts(delivery, last)),
    cell("Next attempt", time(delivery.next_attempt_at)),
    cell("Action", retry),
  );
}

/** Attempts made: those listed and those the API leaves out (between the first and the 24 most
 * recent). */
const made = (delivery) => delivery.attempts.length + (delivery.attempts_omitted ?? 0);

function attempts(delivery, last) {
  if (!last) return h("span", {}, "none yet");
  const outcome = (attempt) => attempt.status_code ?? "no answer";
  const omitted = delivery.attempts_omitted ?? 0;
  const items = delivery.attempts.map((attempt, index) =>
    h(
      "li",
      // Numbered as made: the first, then the most recent after those left out.
      { value: index === 0 ? 1 : index + 1 + omitted },
      time(attempt.at),
      ` — ${outcome(attempt)} in ${attempt.duration_ms} ms`,
      attempt.error ? `: ${attempt.error}` : "",
    ),
  );
  if (omitted) items.splice(1, 0, h("li", { class: "omitted" }, `${omitted} more attempts, not kept`));
  return h(
    "details",
    {},
    h(
      "summary",
      { "data-focus": "attempts" },
      `${made(delivery)} · last `,
      h("span", { class: `code ${last.success ? "ok" : "failing"}` }, String(outcome(last))),
    ),
    h("ol", { class: "attempts" }, items),
    h("p", { class: "hint" }, `Event ${delivery.event_id}`),
  );
}
