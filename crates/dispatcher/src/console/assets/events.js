// The event picker: the catalogue's groups, each a fieldset whose own checkbox selects the whole
// group (mixed when only some are chosen), with a checkbox per event.

import { h } from "./dom.js";

/** The picker for `groups` with `chosen` checked; `.chosen()` gives the names checked. */
export function eventPicker(groups, chosen) {
  const picker = h(
    "fieldset",
    { class: "field picker", id: "events", "aria-describedby": "events-hint events-error" },
    h("legend", {}, "Events"),
    h("p", { class: "hint", id: "events-hint" }, "Choose whole groups, or single events within them."),
  );
  const grid = h("div", { class: "groups" });
  for (const group of groups) grid.append(groupBox(group, chosen));
  picker.append(grid, h("p", { class: "error", id: "events-error", hidden: true }));
  return {
    element: picker,
    chosen: () => [...picker.querySelectorAll('input[name="event"]:checked')].map((box) => box.value),
    focus: () => picker.querySelector("input")?.focus(),
  };
}

function groupBox(group, chosen) {
  const boxes = group.events.map(({ name }) =>
    h("input", { type: "checkbox", name: "event", value: name, id: `event-${name}`, checked: chosen.has(name) }),
  );
  const all = h("input", { type: "checkbox", class: "all", id: `group-${group.name}`, "data-group": group.name });
  const sync = () => {
    const count = boxes.filter((box) => box.checked).length;
    all.checked = count === boxes.length;
    all.indeterminate = count > 0 && count < boxes.length;
  };
  all.addEventListener("change", () => {
    for (const box of boxes) box.checked = all.checked;
    sync();
  });
  for (const box of boxes) box.addEventListener("change", sync);
  sync();
  return h(
    "fieldset",
    { class: "group" },
    h("legend", {}, h("label", { for: all.id }, all, ` ${group.title} `, h("span", { class: "hint" }, `(all ${boxes.length})`))),
    h(
      "ul",
      {},
      boxes.map((box, i) => h("li", {}, h("label", { for: box.id }, box, " ", group.events[i].title))),
    ),
  );
}
