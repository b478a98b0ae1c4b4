// The proof-of-work widget, for the send-to-friend form past its soft threshold
// (engine/challenge.py). The vendored build (vendor/altcha, see its README) comes without
// inlined workers, so that the page's Content-Security-Policy needs no blob: workers: this
// file gives it the PBKDF2 worker as a file of ours, served from the same origin.
import "./vendor/altcha/altcha.min.js";

const pbkdf2Worker = new URL("./vendor/altcha/workers/pbkdf2.js", import.meta.url);

// The server only hands out PBKDF2/SHA-256 challenges (engine.challenge.ALGORITHM).
globalThis.$altcha.algorithms.set("PBKDF2/SHA-256", () => new Worker(pbkdf2Worker));
