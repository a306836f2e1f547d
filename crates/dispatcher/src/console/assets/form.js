// Creating and editing a webhook. The API's refusal names a field: its message goes next to that
// field, focus moves there, and nothing typed is lost (the form stays as it was).

import { api } from "./api.js";
import { announce, field, fieldError, h, route, screen } from "./dom.js";
import { eventPicker } from "./events.js";

/** The fields the API may name in a refusal, and what the form calls them. */
const LABELS = { title: "Title", url: "URL", secret: "Secret", events: "Events", enabled: "Enabled" };
const FIELDS = Object.keys(LABELS);

/** The form for a new webhook (`id` null) or for changing webhook `id`. */
export async function formScreen(project, id) {
  const [groups, webhook] = await Promise.all([api.eventGroups(), id ? api.webhook(project, id) : null]);
  const title = h("input", { type: "text", name: "title", required: true, maxlength: 255, value: webhook?.title ?? "" });
  const url = h("input", { type: "url", name: "url", inputmode: "url", required: true, spellcheck: "false", value: webhook?.url ?? "" });
  const secret = h("input", { type: "password", name: "secret", autocomplete: "new-password", spellcheck: "false" });
  const reveal = h("button", { type: "button", class: "secondary small", "aria-pressed": "false" }, "Show");
  reveal.addEventListener("click", () => {
    const shown = secret.type === "password";
    secret.type = shown ? "text" : "password";
    reveal.setAttribute("aria-pressed", String(shown));
  });
  const generate = h("button", { type: "button", class: "secondary small" }, "Generate");
  generate.addEventListener("click", () => {
    secret.value = generated();
    secret.type = "text";
    reveal.setAttribute("aria-pressed", "true");
    secret.focus();
    announce("A secret was generated: copy it for the receiver before saving.", "ok");
  });
  const clearSecret = h("input", { type: "checkbox", id: "secret-clear" });
  const enabled = h("input", { type: "checkbox", id: "enabled", checked: webhook?.enabled ?? true, "aria-describedby": "enabled-error" });
  const picker = eventPicker(groups, new Set(webhook?.events ?? []));
  const formError = h("p", { class: "error", id: "form-error", hidden: true });
  const submit = h("button", { type: "submit" }, webhook ? "Save changes" : "Create webhook");
  const secretHint = webhook?.has_secret
    ? "A secret is set. Type a new one to replace it, or leave this empty to keep it."
    : "Optional. Sent with every delivery so that the receiver can tell it came from here.";

  const form = h(
    "form",
    { class: "card", novalidate: true },
    field("title", "Title", title),
    field("url", "URL", url, "Where deliveries are sent: an http or https URL."),
    h("div", { class: "with-button" }, field("secret", "Secret", secret, secretHint), reveal, generate),
    webhook?.has_secret
      ? h("p", { class: "check" }, clearSecret, h("label", { for: "secret-clear" }, " Remove the secret"))
      : null,
    picker.element,
    h(
      "div",
      { class: "check" },
      enabled,
      h("label", { for: "enabled" }, " Enabled: deliver events as they happen"),
      h("p", { class: "error", id: "enabled-error", hidden: true }),
    ),
    formError,
    h(
      "div",
      { class: "actions" },
      submit,
      h("a", { class: "button secondary", href: route("p", project) }, "Cancel"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const name of FIELDS) fieldError(name, null);
    formError.hidden = true;
    const body = { title: title.value, url: url.value, events: picker.chosen(), enabled: enabled.checked };
    if (secret.value) body.secret = secret.value;
    else if (webhook?.has_secret && clearSecret.checked) body.secret = null;
    submit.disabled = true;
    try {
      const saved = webhook ? await api.update(project, id, body) : await api.create(project, body);
      announce(`Webhook “${saved.title}” ${webhook ? "saved" : "created"}.`, "ok");
      location.hash = route("p", project);
    } catch (error) {
      submit.disabled = false;
      if (error.status === 401) return;
      if (FIELDS.includes(error.field)) {
        fieldError(error.field, `${LABELS[error.field]}: ${error.detail}`);
        if (error.field === "events") picker.focus();
        else document.getElementById(error.field).focus();
      } else {
        formError.textContent = error.message;
        formError.hidden = false;
      }
      announce(`Not saved: ${error.message}`, "error");
    }
  });
  const heading = webhook ? `Edit “${webhook.title}”` : "New webhook";
  screen(heading, [["Projects", "#/"], [project, route("p", project)], [webhook ? "Edit" : "New webhook"]], form);
}

/** A `whsec_` secret of 32 random bytes, as the API generates them. */
function generated() {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return `whsec_${btoa(String.fromCharCode(...bytes))}`;
}
