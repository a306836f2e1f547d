// The console's entry point: which screen the URL fragment names, and sign-in first.
// Routes: #/ projects · #/p/{project} webhooks · #/p/{project}/new · #/p/{project}/w/{id}/edit
// · #/p/{project}/w/{id} deliveries · #/p/{project}/w/{id}/d/{delivery} one delivery.
// The fragment holds no secret: the token is in sessionStorage. A project token reaches its own
// project only: every other route leads to that project's webhooks.

import { SIGNED_OUT, token } from "./api.js";
import { announce, route } from "./dom.js";
import { deliveriesScreen } from "./deliveries.js";
import { deliveryScreen } from "./delivery.js";
import { formScreen } from "./form.js";
import { projectsScreen } from "./projects.js";
import { signInScreen } from "./signin.js";
import { webhooksScreen } from "./webhooks.js";

/** What the current screen stops when left (its polling). */
let leave = null;

async function show() {
  leave?.();
  leave = null;
  const signOut = document.getElementById("signout");
  signOut.hidden = !token.get();
  if (!token.get()) {
    signInScreen(show);
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [p, project, what, id, sub, delivery] = parts;
  const scope = token.project();
  if (scope && (p !== "p" || project !== scope)) {
    // Replaced, not pushed: Back does not lead to the route refused.
    location.replace(route("p", scope));
    return;
  }
  try {
    if (p !== "p" || !project) projectsScreen();
    else if (!what) leave = await webhooksScreen(project);
    else if (what === "new") await formScreen(project, null);
    else if (what === "w" && id && sub === "edit") await formScreen(project, id);
    else if (what === "w" && id && sub === "d" && delivery) leave = await deliveryScreen(project, id, delivery);
    else if (what === "w" && id) leave = await deliveriesScreen(project, id);
    else projectsScreen();
  } catch (error) {
    if (error.status !== 401) announce(`Could not load this page: ${error.message}`, "error");
  }
}

window.addEventListener("hashchange", show);
window.addEventListener(SIGNED_OUT, () => {
  announce("The token was refused. Sign in again.", "error");
  show();
});
document.getElementById("signout").addEventListener("click", () => {
  token.clear();
  announce("Signed out.");
  show();
});
show();
