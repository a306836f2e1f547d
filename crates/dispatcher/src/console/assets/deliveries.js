// A webhook's deliveries, newest first, a page at a time, filtered by state, event and time, and
// refreshed every few seconds: a new delivery or attempt shows up without a reload, and a change
// of state is announced. Above them the webhook and its actions; below, replaying a time range.

import { api } from "./api.js";
import { showWebhook } from "./about.js";
import { h, route, screen } from "./dom.js";
import { filterError, filterForm } from "./filters.js";
import { poll } from "./poll.js";
import { replayForm } from "./replay.js";
import { showDeliveries } from "./rows.js";

/** How often the page is asked for again. */
const EVERY_MS = 3000;
const COLUMNS = ["Event", "State", "Created", "Attempts", "Next attempt", "Action"];

/** Shows the deliveries of webhook `id`; returns what stops the refreshing. */
export async function deliveriesScreen(project, id) {
  const first = await api.webhook(project, id);
  const about = h("section", { class: "card about", "aria-label": "Webhook" });
  const rows = h("tbody");
  const table = h(
    "table",
    { class: "deliveries" },
    h("caption", {}, "Deliveries, newest first"),
    h("thead", {}, h("tr", {}, COLUMNS.map((name) => h("th", { scope: "col" }, name)))),
    rows,
  );
  const empty = h("p", { class: "empty" });
  const updated = h("p", { class: "hint updated" });
  const newer = h("button", { type: "button", class: "secondary", id: "page-newer" }, "Newer");
  const older = h("button", { type: "button", class: "secondary", id: "page-older" }, "Older");
  const pageLine = h("span", { class: "hint", id: "page-number" });
  const paging = h("nav", { class: "actions paging", "aria-label": "Pages of deliveries" }, newer, pageLine, older);

  // The page shown: its filters, and the cursors of the pages before it (null: the newest).
  let filter = {};
  let cursors = [null];
  let next = null;
  let seen = null;
  let stopped = false;

  const load = async () => {
    const cursor = cursors.at(-1);
    const [webhook, page] = await Promise.all([
      api.webhook(project, id),
      api.deliveries(project, id, { ...filter, cursor }),
    ]);
    if (stopped) return;
    filterError(null);
    const list = page.deliveries;
    showWebhook(about, project, webhook, () => stop.now());
    seen = showDeliveries(rows, list, seen, project, () => stop.now());
    next = page.next_cursor;
    const filtered = Object.values(filter).some(Boolean);
    empty.textContent = filtered
      ? "No deliveries match these filters."
      : "No deliveries yet: they appear here as events of this webhook come in.";
    empty.hidden = list.length > 0;
    table.hidden = list.length === 0;
    newer.disabled = cursors.length === 1;
    older.disabled = !next;
    paging.hidden = cursors.length === 1 && !next;
    pageLine.textContent = `Page ${cursors.length}`;
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshed every ${EVERY_MS / 1000} s.`;
  };
  const refresh = async () => {
    try {
      await load();
    } catch (error) {
      if (error.status !== 401 && !filterError(error)) updated.textContent = `Could not refresh: ${error.message}`;
    }
  };
  /** Another page or other filters: the rows start afresh, nothing announced as new. */
  const turn = async (change) => {
    change();
    seen = null;
    rows.replaceChildren();
    await refresh();
  };
  newer.addEventListener("click", () => turn(() => cursors.pop()));
  older.addEventListener("click", () => turn(() => next && cursors.push(next)));
  const filters = filterForm(first.events, (chosen) =>
    turn(() => {
      filter = chosen;
      cursors = [null];
    }),
  );
  const replay = replayForm(project, id, () => stop.now());
  replay.element.hidden = !(await api.serves("post", "/projects/{project_code}/webhooks/{id}/replay"));

  screen(
    `Deliveries of “${first.title}”`,
    [["Projects", "#/"], [project, route("p", project)], [first.title]],
    about,
    filters.element,
    h("div", { class: "table" }, table),
    empty,
    paging,
    updated,
    replay.element,
  );
  const stop = poll(refresh, EVERY_MS);
  await refresh();
  return () => {
    stopped = true;
    stop();
    replay.stop();
  };
}
