"""The web terminal's files as Envoy routes (stack/components/web_static.py, ADR 0014)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stack.components.web_static import DEFAULT_MAX_BODY_BYTES
from stack.components.web_static import IMMUTABLE
from stack.components.web_static import NO_CACHE
from stack.components.web_static import NOT_BUILT
from stack.components.web_static import content_type
from stack.components.web_static import web_dist
from stack.components.web_static import web_files
from stack.components.web_static import web_routes


def _dist(root: Path) -> Path:
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>t</title>")
    (dist / "assets" / "index-AbC123.js").write_text("console.log(1)\n" * 1000)
    (dist / "assets" / "index-AbC123.css").write_text("body{}")
    (dist / "favicon.svg").write_text("<svg/>")
    return dist


def _headers(route: dict[str, Any]) -> dict[str, str]:
    return {h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]}


def _route(routes: list[dict[str, Any]], path: str, status: int = 200) -> dict[str, Any]:
    (found,) = [
        r
        for r in routes
        if r["match"].get("path") == path and r["direct_response"]["status"] == status
    ]
    return found


def test_dist_is_the_checkouts_build_unless_tm_web_dist_names_another(tmp_path: Path) -> None:
    assert web_dist(tmp_path, {}) == tmp_path / "clients" / "web" / "dist"
    assert web_dist(tmp_path, {"TM_WEB_DIST": str(tmp_path / "x")}) == tmp_path / "x"


def test_every_file_is_served_and_the_index_also_at_the_root(tmp_path: Path) -> None:
    dist = _dist(tmp_path)
    (dist / ".hidden").write_text("no")

    urls = [f.url for f in web_files(dist)]

    assert urls == [
        "/",
        "/assets/index-AbC123.css",
        "/assets/index-AbC123.js",
        "/favicon.svg",
        "/index.html",
    ]


def test_a_symlink_out_of_dist_is_not_served(tmp_path: Path) -> None:
    dist = _dist(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("key")
    (dist / "assets" / "leak.txt").symlink_to(secret)

    assert "/assets/leak.txt" not in [f.url for f in web_files(dist)]


def test_the_page_is_revalidated_and_hashed_assets_are_cached_for_good(tmp_path: Path) -> None:
    routes, _ = web_routes(_dist(tmp_path))

    page = _headers(_route(routes, "/"))
    script = _headers(_route(routes, "/assets/index-AbC123.js"))

    assert page["content-type"] == "text/html; charset=utf-8"
    assert page["cache-control"] == NO_CACHE
    assert "frame-ancestors 'none'" in page["content-security-policy"]
    assert page["x-content-type-options"] == "nosniff"
    assert page["referrer-policy"] == "no-referrer"
    assert script["content-type"] == "text/javascript; charset=utf-8"
    assert script["cache-control"] == IMMUTABLE
    assert _headers(_route(routes, "/favicon.svg"))["cache-control"] == NO_CACHE


def test_files_are_served_for_get_and_head_only_and_skip_the_transcoder(tmp_path: Path) -> None:
    routes, _ = web_routes(_dist(tmp_path))

    served = _route(routes, "/")
    refused = _route(routes, "/", 405)

    assert served["match"]["headers"][0]["string_match"]["safe_regex"]["regex"] == "GET|HEAD"
    assert refused["match"]["headers"][0]["invert_match"] is True
    assert _headers(refused)["allow"] == "GET, HEAD"
    assert served["direct_response"]["body"] == {"filename": str(tmp_path / "dist/index.html")}
    for route in routes:
        config = route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]
        assert config["disabled"] is True


def test_an_unknown_asset_is_404_here_and_other_paths_are_left_to_the_edge(
    tmp_path: Path,
) -> None:
    routes, _ = web_routes(_dist(tmp_path))

    prefixes = [
        (r["match"]["prefix"], r["direct_response"]["status"])
        for r in routes
        if "prefix" in r["match"]
    ]

    assert prefixes == [("/assets/", 405), ("/assets/", 404)]
    assert routes[-1]["match"] == {"prefix": "/assets/"}  # after every file


def test_the_body_limit_fits_the_largest_file(tmp_path: Path) -> None:
    _, limit = web_routes(_dist(tmp_path))

    assert limit == len("console.log(1)\n" * 1000)


def test_without_a_build_the_page_says_how_to_make_one(tmp_path: Path) -> None:
    routes, limit = web_routes(tmp_path / "missing")

    assert [r["match"]["path"] for r in routes] == ["/", "/index.html"]
    assert {r["direct_response"]["status"] for r in routes} == {503}
    assert routes[0]["direct_response"]["body"] == {"inline_string": NOT_BUILT}
    assert "scripts/build-web" in NOT_BUILT
    assert limit == DEFAULT_MAX_BODY_BYTES


def test_content_types_by_extension() -> None:
    assert content_type(Path("a.CSS")) == "text/css; charset=utf-8"
    assert content_type(Path("font.woff2")) == "font/woff2"
    assert content_type(Path("blob.bin")) == "application/octet-stream"
