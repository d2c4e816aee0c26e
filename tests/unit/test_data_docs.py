"""Data Docs work offline: CDN addresses rewritten to vendored copies, and the pages really render.

The rewriting rules are checked on small literal pages; the browser test builds Data Docs for two
small validated extracts (real Spark and GE), opens them in Debian's headless Chromium with every
non-file request refused, and checks the index lists every validation and a validation page shows
its expectations.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from ig_policies.workspace import Workspace
from linkage.identifiable.validation import validate_extracts
from linkage.identifiable.validation.data_docs import (
    STAMP_NAME,
    VENDORED_DIR,
    DataDocsError,
    DataDocsOfflineWarning,
    load_manifest,
    make_site_offline,
    offline_page,
    vendor_assets,
    vendored_is_current,
)
from tests.unit.test_validation_data import (
    demo_engine,
    employment_people,
    health_into_work_rows,
    ways_to_work_rows,
    write_health_into_work,
    write_ways_to_work,
)

BOOTSTRAP_CSS = "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"
JQUERY = "https://code.jquery.com/jquery-3.7.1.min.js"
REMOTE = re.compile(r"https?://", re.IGNORECASE)


# --- the rewriting rules, on literal pages ----------------------------------------------------

LOCAL = {BOOTSTRAP_CSS: "../static/vendor/bootstrap.min.css", JQUERY: "../static/vendor/jquery.min.js"}


@pytest.mark.parametrize(
    ("page", "offline"),
    [
        (  # a vendored stylesheet points at its local copy
            f'<link rel="stylesheet" href="{BOOTSTRAP_CSS}"/>',
            '<link rel="stylesheet" href="../static/vendor/bootstrap.min.css"/>',
        ),
        (  # a vendored script too, without the CDN's integrity and crossorigin (refused from file://)
            f'<script src="{JQUERY}" integrity="sha384-abc" crossorigin="anonymous"></script>',
            '<script src="../static/vendor/jquery.min.js"></script>',
        ),
        (  # a stylesheet or script with no vendored copy is removed
            '<link href="https://unpkg.com/other.css" rel="stylesheet"><p>x</p>',
            "<p>x</p>",
        ),
        ('<script src="https://cdn.jsdelivr.net/npm/other@1"></script><p>x</p>', "<p>x</p>"),
        ("<script src='//cdn.example.org/protocol-relative.js'>\n</script>", ""),
        (  # an image from GX's web host with no local copy is removed, a query string ignored
            '<img class="logo" src="https://assets.example.org/logo.png?d=1" alt="GX"/>',
            "",
        ),
        (  # a link to a web page keeps its text, loses its address
            '<a href="https://greatexpectations.io" target="_blank">Great Expectations</a>',
            '<a target="_blank">Great Expectations</a>',
        ),
        (  # a CSS background from the internet becomes none
            "<style>.brand{background: url('https://assets.example.org/dark.png') 0 0 no-repeat}</style>",
            "<style>.brand{background: none 0 0 no-repeat}</style>",
        ),
        (  # local addresses and inline scripts are left alone
            '<link href="../static/images/favicon.ico"><script>var a = 1;</script><a href="#s1">s</a>',
            '<link href="../static/images/favicon.ico"><script>var a = 1;</script><a href="#s1">s</a>',
        ),
    ],
)
def test_offline_page_rewrites_or_removes_every_remote_address(page: str, offline: str) -> None:
    assert offline_page(page, LOCAL) == offline


def _fake_site(root: Path) -> Path:
    """A site laid out as GE writes one: pages at three depths and a stylesheet under static/."""
    head = (
        f'<head><link rel="stylesheet" href="{BOOTSTRAP_CSS}"/><script src="{JQUERY}"></script>'
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head>'
    )
    for page in ("index.html", "expectations/x.html", "validations/x/run/t/x.html"):
        (root / page).parent.mkdir(parents=True, exist_ok=True)
        (root / page).write_text(f"<html>{head}<body><a href='https://example.org/'>GX</a></body></html>")
    (root / "static/styles").mkdir(parents=True)
    (root / "static/styles/default.css").write_text(".b{background:url(https://example.org/b.png)}")
    return root


def _fake_vendored(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest of two packages and a folder vendored from it, as ``make install`` leaves them."""
    manifest = tmp_path / "assets.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "packages": [
                    {
                        "package": "bootstrap",
                        "version": "4.3.1",
                        "integrity": "sha512-AAAA",
                        "serves": [{"url": BOOTSTRAP_CSS, "file": "dist/css/bootstrap.min.css"}],
                    },
                    {
                        "package": "jquery",
                        "version": "3.7.1",
                        "integrity": "sha512-AAAA",
                        "serves": [{"url": JQUERY, "file": "dist/jquery.min.js"}],
                    },
                ]
            }
        )
    )
    folder = tmp_path / "vendored"
    for path in ("bootstrap@4.3.1/dist/css/bootstrap.min.css", "jquery@3.7.1/dist/jquery.min.js"):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text("/* vendored */")
    (folder / STAMP_NAME).write_text(hashlib.sha256(manifest.read_bytes()).hexdigest())
    return manifest, folder


def test_a_site_is_served_from_its_own_vendored_copies(tmp_path: Path) -> None:
    site = _fake_site(tmp_path / "site")
    manifest, folder = _fake_vendored(tmp_path)

    assert make_site_offline(site, folder, manifest) is True

    assert (site / "static/vendor/jquery@3.7.1/dist/jquery.min.js").is_file()
    assert not (site / "static/vendor" / STAMP_NAME).exists()
    deep = (site / "validations/x/run/t/x.html").read_text()
    assert 'href="../../../../static/vendor/bootstrap@4.3.1/dist/css/bootstrap.min.css"' in deep
    assert 'src="static/vendor/jquery@3.7.1/dist/jquery.min.js"' in (site / "index.html").read_text()
    assert 'src="../static/vendor/jquery@3.7.1' in (site / "expectations/x.html").read_text()
    for page in site.rglob("*.html"):
        assert not REMOTE.search(page.read_text()), page  # vega was not vendored here: removed
    assert "url(" not in (site / "static/styles/default.css").read_text()


def test_without_vendored_assets_pages_are_stripped_and_a_warning_says_what_to_do(tmp_path: Path) -> None:
    site = _fake_site(tmp_path / "site")
    manifest, folder = _fake_vendored(tmp_path)
    (folder / STAMP_NAME).unlink()  # never finished vendoring

    with pytest.warns(DataDocsOfflineWarning, match="make install"):
        assert make_site_offline(site, folder, manifest) is False

    assert not (site / "static/vendor").exists()
    for page in site.rglob("*.html"):
        html = page.read_text()
        assert not REMOTE.search(html) and "<script" not in html and "border-collapse" in html


def test_a_page_that_would_still_name_a_remote_address_is_refused(tmp_path: Path) -> None:
    site = _fake_site(tmp_path / "site")
    manifest, folder = _fake_vendored(tmp_path)
    (site / "expectations/x.html").write_text('<html><head></head><iframe src="https://x.org/"></iframe>')

    with pytest.raises(DataDocsError) as caught:
        make_site_offline(site, folder, manifest)

    message = str(caught.value)
    assert "expectations/x.html" in message and "https://x.org/" in message and "What to do:" in message


def test_the_shipped_manifest_covers_every_cdn_address_of_the_gx_templates() -> None:
    """A GX upgrade that adds a CDN stylesheet or script shows up here, not as an empty page."""
    import great_expectations

    templates = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    tag = re.compile(r"""<(?:link|script)\b[^>]*\b(?:href|src)=["'](https?://[^"']+)["']""", re.I)
    named = {url for t in templates.glob("*.j2") for url in tag.findall(t.read_text(encoding="utf-8"))}
    assert named, "no CDN address found: the template layout changed"
    assert named <= set(load_manifest().local_files())


# --- vendoring at install time -----------------------------------------------------------------


def _fake_npm(tmp_path: Path, files: dict[str, bytes]) -> tuple[str, str]:
    """An ``npm`` that packs ``files`` as the registry would; returns (command, tarball integrity)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    tarball = tmp_path / "registry.tgz"
    tarball.write_bytes(buffer.getvalue())
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    npm = tmp_path / "npm"
    npm.write_text(
        "#!/bin/sh\n"  # npm pack --silent --pack-destination DIR SPEC
        f'cp {tarball} "$4/pkg.tgz" && echo pkg.tgz\n'
    )
    npm.chmod(0o755)
    return str(npm), integrity


def _manifest_for(tmp_path: Path, integrity: str) -> Path:
    manifest = tmp_path / "assets.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "packages": [
                    {
                        "package": "@scope/fonts",
                        "version": "1.0.0",
                        "integrity": integrity,
                        "serves": [{"url": "https://cdn.example.org/all.css", "file": "css/all.css"}],
                        "alongside": ["webfonts"],
                    }
                ]
            }
        )
    )
    return manifest


def test_vendoring_keeps_only_the_files_the_pages_load_and_is_idempotent(tmp_path: Path) -> None:
    files = {
        "css/all.css": b"a{}",
        "webfonts/f.woff2": b"font",
        "src/big.scss": b"unused",
        "webfonts/../../../escaped.txt": b"outside",  # a tarball may name any path
    }
    npm, integrity = _fake_npm(tmp_path, files)
    manifest, folder = _manifest_for(tmp_path, integrity), tmp_path / "assets"

    assert vendor_assets(folder, manifest, npm=npm) is True
    assert vendor_assets(folder, manifest, npm=str(tmp_path / "no-such-npm")) is False  # current
    assert folder.stat().st_mode & 0o777 == 0o755  # every account that builds Data Docs reads them

    kept = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert kept == [STAMP_NAME, "scope-fonts@1.0.0/css/all.css", "scope-fonts@1.0.0/webfonts/f.woff2"]
    assert vendored_is_current(load_manifest(manifest), folder, manifest)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_a_package_that_does_not_match_its_pinned_integrity_is_refused(tmp_path: Path) -> None:
    npm, integrity = _fake_npm(tmp_path, {"css/all.css": b"a{}"})
    manifest, folder = _manifest_for(tmp_path, "sha512-" + "B" * 86 + "=="), tmp_path / "assets"

    with pytest.raises(DataDocsError, match="does not match its pinned integrity"):
        vendor_assets(folder, manifest, npm=npm)

    assert not folder.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".assets")] == []  # no staging left


# --- the real pages in a real browser ----------------------------------------------------------


def _unavailable(reason: str) -> None:
    """CI must run the browser test, so there a missing prerequisite fails; elsewhere it skips."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        _unavailable(
            "Debian's Chromium is needed for the Data Docs browser test and 'chromium' is not on PATH. "
            "Install it as root: apt-get update && apt-get install -y chromium "
            "(`make test` does this itself when run as root)."
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed: run `make install` (it is pinned in requirements.lock).")
    if not vendored_is_current(load_manifest()):
        _unavailable(f"The Data Docs assets are not in {VENDORED_DIR}: run `make install`.")
    assert path is not None
    return path


def _not_blank(png: Path) -> bool:
    from PIL import Image

    with Image.open(png) as image:
        grey = image.convert("L")
        inked = sum(1 for value in grey.getdata() if value < 200)
        return grey.getextrema()[0] < 100 and inked > 0.01 * grey.width * grey.height


@pytest.mark.spark
@pytest.mark.slow
def test_data_docs_list_every_validation_in_a_browser_with_no_network(
    spark, workspace: Workspace, master_secret_env: str, tmp_path: Path
) -> None:
    chromium = _chromium()
    write_ways_to_work(workspace.landing, ways_to_work_rows(employment_people(40, seed=31)))
    write_health_into_work(workspace.landing, health_into_work_rows(employment_people(30, seed=32)))
    datasets = ["ways_to_work", "health_into_work"]
    result = validate_extracts(workspace, demo_engine(workspace), "demo-processor", spark, datasets=datasets)
    assert result.passed

    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    refused: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",  # the browser's own files stay under tmp_path too
            executable_path=chromium,
            viewport={"width": 1400, "height": 1000},
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves ...
                "--proxy-server=http://127.0.0.1:9",  # ... and no address is reached directly
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
            ],
        )
        try:

            def refuse(route) -> None:  # type: ignore[no-untyped-def]
                refused.append(route.request.url)
                route.abort()

            context.route(re.compile(r"^(?!file:|data:)"), refuse)
            page = context.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.on("pageerror", lambda e: errors.append(str(e)))

            page.goto(result.data_docs_index.as_uri())
            rows = page.locator(".tab-pane.active table tbody tr")
            rows.first.wait_for(timeout=15_000)
            listed = rows.all_inner_texts()
            page.screenshot(path=tmp_path / "index.png", full_page=True)

            ways_to_work = result.get("ways_to_work")
            assert ways_to_work.data_docs_page is not None
            page.goto(ways_to_work.data_docs_page.as_uri())
            page.locator(".bootstrap-table").first.wait_for(timeout=15_000)  # built by its script
            expectation_rows = page.locator("table:has(th:has-text('Expectation')) > tbody > tr").count()
            evaluated = page.locator("tr:has(td:has-text('Evaluated Expectations')) td").nth(1).inner_text()
            page.screenshot(path=tmp_path / "validation.png")
        finally:
            context.close()

    assert refused == [] and all(u.startswith(("file:", "data:")) for u in requested), requested
    assert failed == [] and errors == []
    assert len(listed) == len(result.datasets) == len(datasets)
    for name in datasets:
        assert sum(name in row for row in listed) == 1, (name, listed)
    expected = len(ways_to_work.suite.expectations)
    assert expectation_rows == expected and evaluated.strip() == str(expected)
    assert _not_blank(tmp_path / "index.png") and _not_blank(tmp_path / "validation.png")
