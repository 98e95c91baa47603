"""The web terminal's built files (clients/web/dist) as Envoy routes (ADR 0014).

Envoy answers each file itself with a `direct_response` whose body is the file, read when Envoy
starts: no extra process, and the page comes from the same origin (scheme, host, port) as the
API, so the terminal needs no CORS. `/` and `/index.html` are the page (`no-cache`: a new build
shows at the next load); every file under `assets/` has a content hash in its name (Vite), so
it is cached for a year and never revalidated; other top-level files (Vite copies `public/`
there, e.g. a favicon) are `no-cache` like the page. Only GET and HEAD are served; another
method on one of these paths is 405. A path under `/assets/` that is not a file is 404 here;
any other unknown path goes on to the transcoder, which answers 404 in the edge's error shape.

The routes are rendered from the files present when `tradingmesh up` starts Envoy: a rebuild
shows after Envoy restarts (`up` again after `down`, or after Envoy stopped). Where the files
come from: `TM_WEB_DIST` in the environment of `tradingmesh up`, else `clients/web/dist` of the
checkout. Without an index.html the page says how to build it (503).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WEB_DIST_ENV = "TM_WEB_DIST"
NOT_BUILT = "the web terminal is not built: run scripts/build-web\n"

# Envoy's own limit is 4 KiB; it is raised to the largest file served.
DEFAULT_MAX_BODY_BYTES = 4096

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        # React and the chart set inline style attributes; no inline script is allowed.
        "style-src 'self' 'unsafe-inline'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
)
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"

CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".wasm": "application/wasm",
}
OCTET_STREAM = "application/octet-stream"
# What the edge compresses (gzip, when the browser accepts it): text files of the terminal. REST
# answers (application/json) are left alone: a REST quote stream must not wait in a gzip window.
COMPRESSED_TYPES: tuple[str, ...] = (
    "text/html",
    "text/javascript",
    "text/css",
    "image/svg+xml",
    "application/manifest+json",
)

# Filters that must not see a request for a file: the transcoder would answer a path with no
# REST binding with 404 before the router serves the file.
SKIPPED_FILTERS: tuple[str, ...] = ("envoy.filters.http.grpc_json_transcoder",)

_READ_METHODS = {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}
_OTHER_METHODS = {**_READ_METHODS, "invert_match": True}


def web_dist(repo: Path, env: Mapping[str, str] = os.environ) -> Path:
    """Where the built terminal is: `TM_WEB_DIST`, else clients/web/dist of `repo`."""
    configured = env.get(WEB_DIST_ENV, "").strip()
    return Path(configured).resolve() if configured else repo / "clients" / "web" / "dist"


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower(), OCTET_STREAM)


@dataclass(frozen=True)
class WebFile:
    """One file of the build and the URL path it is served at."""

    url: str
    file: Path
    size: int

    @property
    def immutable(self) -> bool:
        return self.url.startswith("/assets/")


def web_files(dist: Path) -> list[WebFile]:
    """Every regular file under `dist` (hidden ones and symlinks leaving it excepted), sorted by
    URL; the index also at `/`. Empty without dist/index.html: a build without its page is
    not served in part."""
    index = dist / "index.html"
    if not index.is_file():
        return []
    root = dist.resolve()
    found: list[WebFile] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if not path.resolve().is_relative_to(root):
            continue
        found.append(WebFile("/" + relative.as_posix(), path, path.stat().st_size))
    size = index.stat().st_size
    return [WebFile("/", root / "index.html", size), *found]


def _header(key: str, value: str) -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


def _skip_filters() -> dict[str, Any]:
    disabled = {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}
    return dict.fromkeys(SKIPPED_FILTERS, disabled)


def _answer(
    match: dict[str, Any], status: int, body: dict[str, str], headers: list[tuple[str, str]]
) -> dict[str, Any]:
    return {
        "match": match,
        "direct_response": {"status": status, "body": body},
        "response_headers_to_add": [_header(k, v) for k, v in headers],
        "typed_per_filter_config": _skip_filters(),
    }


def _file_route(item: WebFile) -> dict[str, Any]:
    headers = [
        ("content-type", content_type(item.file)),
        ("cache-control", IMMUTABLE if item.immutable else NO_CACHE),
        *SECURITY_HEADERS,
    ]
    match = {"path": item.url, "headers": [_READ_METHODS]}
    return _answer(match, 200, {"filename": str(item.file)}, headers)


def web_routes(dist: Path) -> tuple[list[dict[str, Any]], int]:
    """The routes that serve the build in `dist` (to go before every other route; none of their
    paths is a gRPC or REST path) and the largest body among them (Envoy's route config limits
    direct responses to `max_direct_response_body_size_bytes`)."""
    files = web_files(dist)
    text = [("content-type", "text/plain; charset=utf-8"), ("cache-control", NO_CACHE)]
    text += SECURITY_HEADERS
    if not files:
        inline = {"inline_string": NOT_BUILT}
        page = [
            _answer({"path": path, "headers": [_READ_METHODS]}, 503, inline, text)
            for path in ("/", "/index.html")
        ]
        return page, DEFAULT_MAX_BODY_BYTES
    refused = [("allow", "GET, HEAD"), *text]
    only_read = {"inline_string": "only GET and HEAD are served here\n"}
    found = [_file_route(item) for item in files]
    found += [
        _answer({"path": item.url, "headers": [_OTHER_METHODS]}, 405, only_read, refused)
        for item in files
        if not item.immutable
    ]
    found += [
        _answer({"prefix": "/assets/", "headers": [_OTHER_METHODS]}, 405, only_read, refused),
        _answer({"prefix": "/assets/"}, 404, {"inline_string": "no such file\n"}, text),
    ]
    largest = max(item.size for item in files)
    return found, max(largest, DEFAULT_MAX_BODY_BYTES)
