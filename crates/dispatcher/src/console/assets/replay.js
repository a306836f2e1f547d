// Replaying a time range of a webhook's deliveries: from, to and the states to send again, then a
// progress line that follows the replay until it has finished. A refusal goes next to the field
// it names; what was typed stays. The same form submitted twice is one replay (Idempotency-Key).

import { api } from "./api.js";
import { announce, field, fieldError, h } from "./dom.js";
import { rfc3339 } from "./filters.js";

const EVERY_MS = 2000;
const STATES = ["failed", "succeeded", "cancelled"];
const FIELDS = { from: "replay-from", to: "replay-to", states: "replay-states" };

/** The replay form of webhook `id`; `refresh` updates the deliveries as the replay goes. Returns
 * the element and what stops following a replay. */
export function replayForm(project, id, refresh) {
  const from = h("input", { type: "datetime-local", step: "1", required: true });
  const to = h("input", { type: "datetime-local", step: "1", required: true });
  const boxes = STATES.map((state) =>
    h("input", { type: "checkbox", name: "replay-state", value: state, id: `replay-${state}`, checked: state === "failed" }),
  );
  const states = h(
    "fieldset",
    { class: "field states", id: FIELDS.states, "aria-describedby": `${FIELDS.states}-error` },
    h("legend", {}, "States to send again"),
    boxes.map((box) => h("label", { for: box.id }, box, ` ${box.value} `)),
    h("p", { class: "error", id: `${FIELDS.states}-error`, hidden: true }),
  );
  const progress = h("p", { class: "progress", id: "replay-progress", role: "status", "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Replay");
  const form = h(
    "form",
    { novalidate: true },
    h("div", { class: "row" }, field(FIELDS.from, "From", from), field(FIELDS.to, "To", to)),
    states,
    h("div", { class: "actions" }, submit),
    progress,
  );
  // One key per content: a second submit of the same range is the same replay.
  let key = crypto.randomUUID();
  form.addEventListener("input", () => {
    key = crypto.randomUUID();
  });
  let timer = null;
  const stop = () => clearTimeout(timer);
  const follow = async (replay) => {
    const skipped = replay.skipped ? `, ${replay.skipped} skipped` : "";
    progress.textContent = `Replay ${replay.state}: ${replay.matched} matched, ${replay.queued} queued, ${replay.done} done${skipped}.`;
    progress.dataset.state = replay.state;
    refresh();
    // The progress line is a status region itself: its last words are read out.
    if (replay.state === "finished") return;
    timer = setTimeout(async () => {
      try {
        await follow(await api.replayed(project, id, replay.id));
      } catch (error) {
        progress.textContent = `Could not follow the replay: ${error.message}`;
      }
    }, EVERY_MS);
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const id of Object.values(FIELDS)) fieldError(id, null);
    stop();
    const body = {
      from: rfc3339(from.value),
      to: rfc3339(to.value),
      states: boxes.filter((box) => box.checked).map((box) => box.value),
    };
    submit.disabled = true;
    try {
      await follow(await api.replay(project, id, body, key));
    } catch (error) {
      if (error.status === 401) return;
      const named = FIELDS[error.field];
      if (named) {
        fieldError(named, error.detail);
        (named === FIELDS.states ? boxes[0] : document.getElementById(named)).focus();
      } else {
        progress.textContent = `Not replayed: ${error.message}`;
      }
      announce(`Not replayed: ${error.message}`, "error");
    } finally {
      submit.disabled = false;
    }
  });
  const element = h(
    "details",
    { class: "card replay" },
    h("summary", {}, h("h2", {}, "Replay a time range")),
    h("p", { class: "hint" }, "Sends again the deliveries created in this range, in the states chosen."),
    form,
  );
  return { element, stop };
}
