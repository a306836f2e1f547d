// Sign-in: the admin token or a project token, checked against the API, then kept for this tab
// only.

import { api, token } from "./api.js";
import { announce, field, fieldError, h, screen } from "./dom.js";

/** Shows the sign-in form; `then` shows the page that was asked for. */
export function signInScreen(then) {
  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "current-password",
    required: true,
    spellcheck: "false",
  });
  const form = h(
    "form",
    { class: "card narrow", novalidate: true },
    field(
      "token",
      "Token",
      input,
      "The dispatcher's ADMIN_TOKEN, or a project token (whp_…) for one project's webhooks. It is kept in this tab only and forgotten when the tab closes.",
    ),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      fieldError("token", "Enter the admin token or a project token.");
      input.focus();
      return;
    }
    try {
      if (!(await api.accepts(value))) {
        fieldError("token", "This token was refused.");
        input.focus();
        return;
      }
    } catch (error) {
      fieldError("token", error.message);
      return;
    }
    token.set(value);
    announce("Signed in.", "ok");
    then();
  });
  screen("Sign in", [["Sign in"]], form);
  input.focus();
}
