// The proof-of-work widget, for the send-to-friend form past its soft threshold
// (engine/challenge.py). The vendored build (vendor/altcha, see its README) comes without
// inlined workers, so that the page's Content-Security-Policy needs no blob: workers: this
// file gives it the PBKDF2 worker as a file of ours, served from the same origin. The page loads
// the widget's own script first (a module script before this one: modules run in order), and
// names the worker's versioned address in #challenge-status's data-worker: no address here is
// written by hand, so none can go stale after a deploy.
//
// The widget runs invisibly (its box is hidden by fluister.css): with auto="onsubmit" it holds
// the form back when it is sent, solves, and sends it on. Meanwhile the status line below the
// hint says "Checking…", and what went wrong if it failed; the form stays as typed.
const widget = document.querySelector("altcha-widget");
const status = document.getElementById("challenge-status");

if (status && status.dataset.worker) {
  const pbkdf2Worker = new URL(status.dataset.worker, document.baseURI);
  // The server only hands out PBKDF2/SHA-256 challenges (engine.challenge.ALGORITHM).
  globalThis.$altcha.algorithms.set("PBKDF2/SHA-256", () => new Worker(pbkdf2Worker));
}
const form = widget && widget.closest("form");

function say(text, failed) {
  status.textContent = text;
  status.classList.toggle("failed", failed);
}

if (widget && status && form) {
  widget.addEventListener("statechange", (event) => {
    const state = event.detail.state;
    if (state === "verifying") {
      say(status.dataset.checking, false);
      form.setAttribute("aria-busy", "true");
    } else if (state === "error" || state === "expired") {
      say(status.dataset.failed, true);
      form.removeAttribute("aria-busy");
      // Back to unverified: the next send starts a fresh check instead of going without one.
      widget.reset();
    } else if (state === "verified") {
      form.removeAttribute("aria-busy");
    }
  });
  // A second press of "Send" while it checks would post the form without a solution.
  form.addEventListener(
    "submit",
    (event) => {
      if (widget.getState() === "verifying") {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    { capture: true },
  );
}
