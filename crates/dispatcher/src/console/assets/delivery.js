// One delivery: what was sent (the body, the headers of its latest attempt with the secret
// masked by the API) and every attempt kept, with the first bytes of each answer. Asked for again
// every few seconds until it is finished; Retry sends it again.

import { api } from "./api.js";
import { announce, h, route, screen, time } from "./dom.js";
import { poll } from "./poll.js";

const EVERY_MS = 3000;

/** Shows delivery `delivery` of webhook `id`; returns what stops the refreshing. */
export async function deliveryScreen(project, id, delivery) {
  const [webhook, first] = await Promise.all([api.webhook(project, id), api.delivery(project, delivery)]);
  const summary = h("section", { class: "card summary", "aria-label": "Delivery" });
  const request = h("section", { class: "card request", "aria-labelledby": "request-title" });
  const attempts = h("section", { class: "card", "aria-labelledby": "attempts-title" });
  screen(
    `Delivery of ${first.event_name}`,
    [["Projects", "#/"], [project, route("p", project)], [webhook.title, route("p", project, "w", id)], ["Delivery"]],
    summary,
    request,
    attempts,
  );
  let key = null;
  const show = (shown) => {
    const now = JSON.stringify([shown.state, shown.attempts.length, shown.attempts_omitted, shown.next_attempt_at]);
    if (now === key) return;
    key = now;
    const focused = summary.contains(document.activeElement);
    summary.replaceChildren(...facts(shown), retryButton(project, shown, () => stop.now()));
    if (focused) summary.querySelector("button")?.focus();
    request.replaceChildren(...sent(shown));
    attempts.replaceChildren(...attemptList(shown));
  };
  const stop = poll(async () => {
    try {
      show(await api.delivery(project, delivery));
    } catch (error) {
      if (error.status !== 401) announce(`Could not refresh: ${error.message}`, "error");
    }
  }, EVERY_MS);
  show(first);
  return stop;
}

function facts(delivery) {
  const row = (name, ...value) => [h("dt", {}, name), h("dd", {}, ...value)];
  return [
    h(
      "dl",
      { class: "facts" },
      row("State", h("span", { class: `badge state ${delivery.state}` }, delivery.state)),
      row("Event", h("code", {}, delivery.event_name)),
      row("Created", time(delivery.created_at)),
      row("Next attempt", time(delivery.next_attempt_at)),
      row("Delivery id", h("code", {}, delivery.id)),
      row("Event id", h("code", {}, delivery.event_id)),
    ),
  ];
}

function retryButton(project, delivery, refresh) {
  const button = h("button", { type: "button", class: "secondary" }, "Retry");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api.retry(project, delivery.id);
      announce("Retry queued.", "ok");
      refresh();
    } catch (error) {
      button.disabled = false;
      announce(`Not retried: ${error.message}`, "error");
    }
  });
  return h("div", { class: "actions" }, button);
}

/** The body, pretty-printed when it is JSON, and the headers. */
function sent(delivery) {
  let body = delivery.body;
  try {
    body = JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    // Shown as stored.
  }
  return [
    h("h2", { id: "request-title" }, "Request"),
    h("p", { class: "hint" }, "The headers of its latest attempt; the secret is masked."),
    h(
      "table",
      { class: "headers" },
      h("caption", {}, "Headers"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Value"))),
      h(
        "tbody",
        {},
        delivery.headers.map((header) =>
          h("tr", { "data-name": header.name }, h("th", { scope: "row" }, h("code", {}, header.name)), h("td", {}, h("code", {}, header.value))),
        ),
      ),
    ),
    h("h3", {}, "Body"),
    body === null ? h("p", { class: "empty" }, "No longer stored.") : h("pre", { class: "body", tabindex: "0", "aria-label": "Body" }, body),
  ];
}

function attemptList(delivery) {
  const omitted = delivery.attempts_omitted ?? 0;
  const items = delivery.attempts.map((attempt, index) =>
    h(
      "li",
      { class: `attempt ${attempt.success ? "ok" : "failing"}`, value: index === 0 ? 1 : index + 1 + omitted },
      h(
        "p",
        {},
        time(attempt.at),
        " — ",
        h("span", { class: `code ${attempt.success ? "ok" : "failing"}` }, String(attempt.status_code ?? "no answer")),
        ` in ${attempt.duration_ms} ms`,
        attempt.error ? `: ${attempt.error}` : "",
      ),
      attempt.response ? h("pre", { class: "snippet", tabindex: "0", "aria-label": "Response" }, attempt.response) : null,
    ),
  );
  if (omitted) items.splice(1, 0, h("li", { class: "omitted" }, `${omitted} more attempts, not kept`));
  return [
    h("h2", { id: "attempts-title" }, `Attempts (${delivery.attempts.length + omitted})`),
    items.length ? h("ol", { class: "attempt-list" }, items) : h("p", { class: "empty" }, "None yet."),
  ];
}
