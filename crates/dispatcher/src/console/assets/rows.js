// The rows of a webhook's deliveries: each with its state, attempts (opened in place) and Retry,
// brought up to date in place so that focus and opened attempt lists stay where they were.

import { api } from "./api.js";
import { announce, h, notice, route, time } from "./dom.js";

/** Brings the rows up to date with `list`; returns what was shown, for the next time. */
export function showDeliveries(rows, list, seen, project, refresh) {
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
  if (changes.length) notice(changes.slice(0, 3).join("; "));
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
    cell(
      "Event",
      h(
        "a",
        { href: route("p", project, "w", delivery.webhook_id, "d", delivery.id), "data-focus": "open", "aria-label": `${delivery.event_name} delivery of ${new Date(delivery.created_at).toLocaleString()}` },
        h("code", {}, delivery.event_name),
      ),
    ),
    cell("State", h("span", { class: `badge state ${delivery.state}` }, delivery.state)),
    cell("Created", time(delivery.created_at)),
    cell("Attempts", attempts(delivery, last)),
    cell("Next attempt", time(delivery.next_attempt_at)),
    cell("Action", retry),
  );
}

/** Attempts made: those listed and those the API leaves out (between the first and the 24 most
 * recent). */
export const made = (delivery) => delivery.attempts.length + (delivery.attempts_omitted ?? 0);

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
