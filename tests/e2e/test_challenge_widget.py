"""The vendored ALTCHA widget and the server speak the same protocol: the widget's own PBKDF2
worker (static/vendor/altcha/workers/pbkdf2.js), run by Node.js with its WebCrypto as a browser
would run it, solves the app's challenge, and the app accepts the payload built as the widget
builds it. Guards against updating the npm widget or the PyPI package out of step.
Node.js is needed only here (and to update the vendored files), so without it this is skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.models import Forward
from engine.runtime import Runtime
from tests.helpers import forward_form

WORKER = Path(__file__).resolve().parents[2] / "static" / "vendor" / "altcha" / "workers" / "pbkdf2.js"
IP = "203.0.113.50"

# The worker sets `self.onmessage` and answers with `self.postMessage`; the payload is built as
# in the widget's verify() (dist/external/altcha.js): base64 of {challenge, solution}.
SOLVE_LIKE_THE_WIDGET = """
import fs from "node:fs";
import vm from "node:vm";
const challenge = JSON.parse(fs.readFileSync(0, "utf8"));
const self = {};
const solved = new Promise((resolve) => { self.postMessage = resolve; });
vm.runInNewContext(fs.readFileSync(process.argv[1], "utf8"), {
  self, crypto: globalThis.crypto, performance, setTimeout, TextEncoder, AbortController,
  DataView, Uint8Array, ArrayBuffer, Math, parseInt, Array,
});
self.onmessage({ data: { type: "work", challenge, counterStart: 0, counterStep: 1, timeout: 60000 } });
const solution = await solved;
if (!solution || solution.error) { console.error(solution); process.exit(1); }
const { parameters, signature } = challenge;
process.stdout.write(btoa(JSON.stringify({ challenge: { parameters, signature }, solution })));
"""


# CI (REQUIRE_SERVICES=1) runs it always: there a missing Node.js is a failure, not a skip.
@pytest.mark.skipif(
    shutil.which("node") is None and os.environ.get("REQUIRE_SERVICES") != "1", reason="Node.js is not installed"
)
def test_the_widgets_own_worker_solves_the_apps_challenge(client: FlaskClient, runtime: Runtime) -> None:
    for n in range(5):  # the demo campaign asks from the sixth forward an hour on
        form = forward_form(client.get("/c/demo", environ_base={"REMOTE_ADDR": IP}).text, friends=[f"f{n}@example.com"])
        assert client.post("/c/demo/forward", data=form, environ_base={"REMOTE_ADDR": IP}).status_code == 303
    landing = client.get("/c/demo", environ_base={"REMOTE_ADDR": IP}).text
    assert "<altcha-widget" in landing

    challenge = client.get("/c/demo/challenge").text
    node = ["node", "--input-type=module", "-e", SOLVE_LIKE_THE_WIDGET, str(WORKER)]
    payload = subprocess.run(node, input=challenge, capture_output=True, text=True, timeout=120, check=True).stdout

    form = forward_form(landing, friends=["widget@example.com"], altcha=payload)
    assert client.post("/c/demo/forward", data=form, environ_base={"REMOTE_ADDR": IP}).status_code == 303
    with runtime.db.reading() as session:
        assert session.scalar(select(Forward.id).where(Forward.recipient_contact == "widget@example.com"))
