// Asking again every few seconds, as long as the screen is shown: paused while the tab is hidden
// (it catches up as soon as it is shown again), never two calls at once.

/** Calls `refresh` every `everyMs` until the returned function is called; `refresh` may return a
 * promise, which is waited for before the next call is planned. */
export function poll(refresh, everyMs) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false;
  const tick = async () => {
    clearTimeout(timer);
    if (stopped || document.hidden) return;
    // Asked while a call runs (after an action): once more as soon as it ends.
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await refresh();
    } finally {
      running = false;
      if (!stopped) timer = setTimeout(tick, again ? 0 : everyMs);
      again = false;
    }
  };
  const shown = () => document.hidden || tick();
  document.addEventListener("visibilitychange", shown);
  timer = setTimeout(tick, everyMs);
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", shown);
  };
  stop.now = tick;
  return stop;
}
