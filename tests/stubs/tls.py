"""A throwaway certificate authority for serving the stubs over HTTPS.

One CA per test process (made on first use, with trustme): every TLS stub gets a
certificate from it for 127.0.0.1 and localhost, so a client trusts all of them by
trusting one PEM file, `local_ca().bundle_path`.

What each SDK needs to trust it:
- sendgrid (python-http-client, i.e. urllib with the default SSL context): the
  SSL_CERT_FILE environment variable, read by OpenSSL whenever a context is made.
  REQUESTS_CA_BUNDLE does not apply, and the SDK has no `verify=` option.
- twilio (requests): `client.http_client.session.verify = bundle_path`, or
  REQUESTS_CA_BUNDLE, which wins over the session setting when it is set.
  SSL_CERT_FILE does not apply (requests uses certifi's bundle).
"""

from __future__ import annotations

import atexit
import shutil
import ssl
import tempfile
import threading
from pathlib import Path

import trustme

HOSTNAMES = ("127.0.0.1", "localhost")


class LocalCA:
    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="Fluister stub CA")
        self._leaf = self._ca.issue_cert(*HOSTNAMES)
        directory = Path(tempfile.mkdtemp(prefix="fluister-stub-ca-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        self.bundle_path = directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.bundle_path))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A context that trusts this CA only (used for callbacks to HTTPS receivers)."""
        return ssl.create_default_context(cafile=str(self.bundle_path))


_lock = threading.Lock()
_instance: LocalCA | None = None


def local_ca() -> LocalCA:
    """The process-wide CA (stubs may be started from several threads)."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = LocalCA()
        return _instance
