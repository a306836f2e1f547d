// Choosing a project: the API lists no projects, so the code is typed, and the codes opened
// before are offered again (kept in this browser's localStorage; they are not secret).

import { field, fieldError, h, route, screen } from "./dom.js";

const RECENT_KEY = "webhooks.console.recent";
const KEEP = 8;

export function recentProjects() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) ?? "[]");
    return Array.isArray(list) ? list.filter((code) => typeof code === "string") : [];
  } catch {
    return [];
  }
}

/** Puts `code` first among the recent projects. */
export function remember(code) {
  const list = [code, ...recentProjects().filter((c) => c !== code)].slice(0, KEEP);
  localStorage.setItem(RECENT_KEY, JSON.stringify(list));
}

export function projectsScreen() {
  const input = h("input", { type: "text", name: "project", autocomplete: "off", required: true, maxlength: 64 });
  const form = h(
    "form",
    { class: "card narrow", novalidate: true },
    field("project", "Project code", input, "For example DEMO, as in the project's events."),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Open")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const code = input.value.trim();
    if (!code) {
      fieldError("project", "Enter a project code.");
      input.focus();
      return;
    }
    location.hash = route("p", code);
  });
  const recent = recentProjects();
  const list = recent.length
    ? h(
        "section",
        { class: "card narrow", "aria-labelledby": "recent-title" },
        h("h2", { id: "recent-title" }, "Recent projects"),
        h("ul", { class: "links" }, recent.map((code) => h("li", {}, h("a", { href: route("p", code) }, code)))),
      )
    : null;
  screen("Projects", [["Projects"]], form, list);
}
