"""The static files (static/) as every process serves them: WhiteNoise in front of the app,
each file compressed once when the app is built and kept in memory, every page's reference
versioned by the file's content.

- Versioned URLs: `url_for('static', filename='fluister.css')` writes
  `/static/fluister.<hash>.css`, the first 12 hex digits of the file's SHA-256. That address
  never answers anything else, so it is cached for a year, `immutable`; a deploy that changes
  the file changes the address, and no browser or CDN keeps the old one. The bare address
  (`/static/fluister.css`) still answers, cached for five minutes only.
- Compression: gzip (level 9), and Brotli as well where the `brotli` package is installed,
  for each file that compresses (not images). Done in memory when the app is built (a few
  tens of milliseconds for the whole folder): nothing is written to disk, so a read-only
  deploy works as it is, and gunicorn's `--preload` does it once for all its workers. A
  client that sends `Accept-Encoding: gzip` gets the smaller copy with `Vary: Accept-Encoding`.
- A file is read when the app is built: a changed file needs a restart (as a deploy does).
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from wsgiref.headers import Headers

from whitenoise import WhiteNoise  # type: ignore[import-untyped]

# WhiteNoise's own compressor: Brotli when the optional `brotli` package is installed (it is
# not a dependency), gzip always.
from whitenoise.compress import Compressor, brotli_installed  # type: ignore[import-untyped]
from whitenoise.responders import NOT_ALLOWED_RESPONSE, Response, StaticFile  # type: ignore[import-untyped]

PREFIX = "/static/"
VERSION_LENGTH = 12
YEAR = 365 * 24 * 3600
# An unversioned address may answer a new file after a deploy: asked again after this.
SHORT_MAX_AGE = 300
IMMUTABLE = f"public, max-age={YEAR}, immutable"
SHORT = f"public, max-age={SHORT_MAX_AGE}"
# Already compressed: another pass only costs time.
_INCOMPRESSIBLE = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".woff", ".woff2", ".gz", ".br"})
# A compressed copy is kept only when it saves at least this share of the file.
_WORTH_IT = 0.95


def versioned_name(relative: str, data: bytes) -> str:
    """`vendor/pico/pico.min.css` → `vendor/pico/pico.min.<hash>.css`: the hash goes before the
    last extension, so the type a server reads from the name stays the same."""
    version = hashlib.sha256(data).hexdigest()[:VERSION_LENGTH]
    folder, name = posixpath.split(relative)
    stem, dot, extension = name.rpartition(".")
    versioned = f"{stem}.{version}.{extension}" if dot and stem else f"{name}.{version}"
    return posixpath.join(folder, versioned)


@dataclass(frozen=True)
class StaticManifest:
    """Each static file's versioned name, by its own (paths relative to the folder, with /)."""

    versioned: Mapping[str, str]

    def url_name(self, filename: str) -> str:
        """What `url_for('static', filename=...)` writes: the versioned name of a file we have,
        else the name as given (a missing file then answers 404, as before)."""
        return self.versioned.get(filename, filename)


def _files(root: Path) -> dict[str, Path]:
    return {path.relative_to(root).as_posix(): path for path in sorted(root.rglob("*")) if path.is_file()}


def _compressed(relative: str, data: bytes) -> dict[str, bytes]:
    """The copies worth sending instead, by Content-Encoding."""
    if posixpath.splitext(relative)[1].lower() in _INCOMPRESSIBLE or not data:
        return {}
    copies = {"gzip": Compressor.compress_gzip(data)}  # level 9, no timestamp: the same bytes each time
    if brotli_installed:
        copies["br"] = Compressor.compress_brotli(data)
    return {encoding: copy for encoding, copy in copies.items() if len(copy) <= len(data) * _WORTH_IT}


class _InMemoryFile(StaticFile):
    """WhiteNoise's file, answered from bytes kept in memory instead of opened from disk."""

    def __init__(self, bodies: Mapping[str, bytes], *args: Any, **kwargs: Any) -> None:
        self._bodies = bodies
        super().__init__(*args, **kwargs)

    def get_response(self, method: str, request_headers: Mapping[str, str]) -> Response:
        # As StaticFile.get_response (whitenoise 6.12), with the body from memory.
        if method not in ("GET", "HEAD"):
            return NOT_ALLOWED_RESPONSE
        if self.is_not_modified(request_headers):
            return self.not_modified_response
        path, headers = self.get_path_and_headers(request_headers)
        body = io.BytesIO(self._bodies[path]) if method != "HEAD" else None
        range_header = request_headers.get("HTTP_RANGE")
        if range_header:
            try:
                return self.get_range_response(range_header, headers, body)
            except ValueError:
                pass
        return Response(HTTPStatus.OK, headers, body)


def _stat(size: int, mtime: float) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | 0o444, 0, 0, 1, 0, 0, size, int(mtime), int(mtime), int(mtime)))


class StaticFiles(WhiteNoise):
    """WhiteNoise serving `root` under /static/, at each file's own and versioned address."""

    def __init__(self, application: Callable[..., Any], root: Path) -> None:
        super().__init__(application, max_age=SHORT_MAX_AGE)
        versioned: dict[str, str] = {}
        for relative, path in _files(root).items():
            data = path.read_bytes()
            versioned[relative] = versioned_name(relative, data)
            self._add(relative, versioned[relative], data, path.stat().st_mtime)
        self.manifest = StaticManifest(versioned)

    def _add(self, relative: str, versioned: str, data: bytes, mtime: float) -> None:
        # Paths here name bytes in memory: `relative` itself and `relative;encoding`.
        bodies = {relative: data}
        stats = {relative: _stat(len(data), mtime)}
        encodings = {}
        for encoding, copy in _compressed(relative, data).items():
            key = f"{relative};{encoding}"
            bodies[key], stats[key], encodings[encoding] = copy, _stat(len(copy), mtime), key
        # The content's hash, not the file's date: every host of a deploy answers a revalidation alike.
        etag = f'"{hashlib.sha256(data).hexdigest()[:VERSION_LENGTH]}"'
        for url, cache_control in ((PREFIX + relative, SHORT), (PREFIX + versioned, IMMUTABLE)):
            headers = [*self._headers(relative, url, cache_control), ("ETag", etag)]
            self.files[url] = _InMemoryFile(bodies, relative, headers, encodings=encodings, stat_cache=stats)

    def _headers(self, relative: str, url: str, cache_control: str) -> list[tuple[str, str]]:
        headers = Headers([])
        self.add_mime_headers(headers, relative, url)
        headers["Cache-Control"] = cache_control
        if self.allow_all_origins:
            headers["Access-Control-Allow-Origin"] = "*"
        # A script or stylesheet is only ever what its type says (as every page of ours is).
        headers["X-Content-Type-Options"] = "nosniff"
        return headers.items()
