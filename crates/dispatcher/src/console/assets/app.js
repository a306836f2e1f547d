// The console's entry point: which screen the URL fragment names, and sign-in first.
// Routes: #/ projects · #/p/{project} webhooks · #/p/{project}/new · #/p/{project}/w/{id}/edit
// · #/p/{project}/w/{id} deliveries. The fragment holds no secret: the token is in sessionStorage.

import { SIGNED_OUT, token } from "./api.js";
import { announce } from "./dom.js";
import { deliveriesScreen } from "./deliveries.js";
import { formScreen } from "./form.js";
import { projectsScreen } from "./projects.js";
import { signInScreen } from "./signin.js";
import { webhooksScreen } from "./webhooks.js";

/** What the current screen stops when left (the deliveries' polling). */
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
  const [p, project, what, id, edit] = parts;
  try {
    if (p !== "p" || !project) projectsScreen();
    else if (!what) await webhooksScreen(project);
    else if (what === "new") await formScreen(project, null);
    else if (what === "w" && id && edit === "edit") await formScreen(project, id);
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
