// Building the page: elements from plain values (text is always text, never parsed as HTML),
// the status line screen readers announce, the breadcrumb, times and the confirmation dialog.

import { token } from "./api.js";

/** An element: `props` are attributes, `on…` listeners, and `text`, `value`, `checked` set as
 * properties; `children` are nodes or strings (added as text). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else if (key === "value" || key === "checked" || key === "indeterminate") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let fading = null;
/** Until when the answer to an action ("ok" or "error") is showing. */
let answered = 0;
const SHOWN_MS = 12000;

/** Says `message` in the status line (role=status: read out politely); `kind` colours it. It
 * goes after a while, so that it does not hide the bottom of the page for good. */
export function announce(message, kind = "info") {
  if (kind !== "info") answered = Date.now() + SHOWN_MS;
  const status = document.getElementById("status");
  status.textContent = "";
  status.className = `status ${kind}`;
  clearTimeout(fading);
  // Set a tick later, so that the same message twice is announced twice.
  setTimeout(() => {
    status.textContent = message;
  }, 50);
  fading = setTimeout(() => {
    status.textContent = "";
  }, SHOWN_MS);
}

/** Says what a refresh found, unless the answer to an action is showing: the news an action
 * caused (its delivery listed) does not replace what was said of the action itself. */
export function notice(message) {
  if (Date.now() >= answered) announce(message);
}

/** Shows a new screen: its title, breadcrumb and content; focus goes to its heading. Signed in
 * with a project token, the breadcrumb starts at that project (there is no list of projects). */
export function screen(title, crumbs, ...content) {
  document.title = `${title} · Webhooks console`;
  if (token.project()) crumbs = crumbs.filter(([, href]) => href !== "#/");
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(
    h(
      "ol",
      {},
      crumbs.map(([label, href]) =>
        h("li", {}, href ? h("a", { href }, label) : h("span", { "aria-current": "page" }, label)),
      ),
    ),
  );
  const heading = h("h1", { tabindex: "-1" }, title);
  const main = document.getElementById("main");
  main.replaceChildren(heading, ...content);
  heading.focus();
  return main;
}

/** The URL fragment of a console route: `route("p", "DEMO")` is `#/p/DEMO`. */
export const route = (...parts) => `#/${parts.map(encodeURIComponent).join("/")}`;

/** A time the API gave (RFC 3339) as a `<time>` in the reader's locale. */
export function time(iso) {
  if (!iso) return h("span", {}, "—");
  const at = new Date(iso);
  return h("time", { datetime: iso, title: iso }, at.toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  }));
}

/** A modal question with a destructive answer; resolves true when confirmed. Escape, or the
 * other button, cancels; focus starts on the harmless answer and returns where it was. */
export function confirm(question, yes) {
  const back = document.activeElement;
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-question" });
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      back?.focus?.();
      resolve(answer);
    };
    dialog.append(
      h("p", { id: "confirm-question" }, question),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "danger", onclick: () => done(true) }, yes),
        h("button", { type: "button", class: "secondary", autofocus: true, onclick: () => done(false) }, "Cancel"),
      ),
    );
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      done(false);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A labelled field with its hint and an error line next to it (filled by `fieldError`). */
export function field(id, label, input, hint) {
  const hintId = hint ? `${id}-hint` : null;
  input.id = id;
  input.setAttribute("aria-describedby", [hintId, `${id}-error`].filter(Boolean).join(" "));
  return h(
    "div",
    { class: "field", "data-field": id },
    h("label", { for: id }, label),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    input,
    h("p", { class: "error", id: `${id}-error`, hidden: true }),
  );
}

/** Shows (or with `message` null, clears) the error next to the field `id`. */
export function fieldError(id, message) {
  const line = document.getElementById(`${id}-error`);
  const input = document.getElementById(id);
  if (line) {
    line.textContent = message ?? "";
    line.hidden = !message;
  }
  if (input) {
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}
