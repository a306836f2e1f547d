// The filters of a webhook's deliveries: state, event and a creation time range. The API checks
// them: a refusal is shown next to the field it names, and what was typed stays.

import { field, fieldError, h } from "./dom.js";

export const STATES = ["pending", "retrying", "succeeded", "failed", "cancelled"];

/** The API's query parameter → the id of the control that sets it. */
const CONTROLS = { state: "filter-state", event_name: "filter-event", since: "filter-since", until: "filter-until" };

/** A `datetime-local` value (the reader's time zone) as RFC 3339, or as typed if it is none. */
export function rfc3339(local) {
  if (!local) return "";
  const at = new Date(local);
  return Number.isNaN(at.getTime()) ? local : at.toISOString();
}

const select = (options) =>
  h("select", {}, h("option", { value: "" }, "Any"), options.map((value) => h("option", { value }, value)));

/** The filter form for events `names`; `apply(filter)` is called with the query parameters. */
export function filterForm(names, apply) {
  const state = select(STATES);
  const event = select([...names, "webhook.test"]);
  const since = h("input", { type: "datetime-local", step: "1" });
  const until = h("input", { type: "datetime-local", step: "1" });
  const form = h(
    "form",
    { novalidate: true, "aria-label": "Filter deliveries" },
    h(
      "div",
      { class: "row" },
      field(CONTROLS.state, "State", state),
      field(CONTROLS.event_name, "Event", event),
      field(CONTROLS.since, "Created from", since),
      field(CONTROLS.until, "Created before", until),
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Apply filters"),
      h("button", { type: "reset", class: "secondary" }, "Clear"),
    ),
  );
  const current = () => ({
    state: state.value,
    event_name: event.value,
    since: rfc3339(since.value),
    until: rfc3339(until.value),
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply(current());
  });
  form.addEventListener("reset", () => setTimeout(() => apply(current())));
  // Opened but at phone width, where it would push the deliveries off the first screen.
  const phone = matchMedia("(max-width: 40rem)");
  const element = h("details", { class: "card filters", open: !phone.matches }, h("summary", {}, "Filters"), form);
  phone.addEventListener("change", () => {
    if (phone.matches && element.isConnected) element.open = false;
  });
  return { element, current };
}

/** Shows an API refusal next to the filter it names; false when it names none of them. */
export function filterError(error) {
  for (const id of Object.values(CONTROLS)) fieldError(id, null);
  const id = CONTROLS[error?.field];
  if (!id) return false;
  fieldError(id, error.detail);
  document.getElementById(id).focus();
  return true;
}
