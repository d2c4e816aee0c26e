"""Data Docs that work offline: their stylesheets and scripts served from the workspace.

Great Expectations renders Data Docs pages that load Bootstrap, bootstrap-table, jQuery and a few
more from public CDNs, and the index page's table is filled by bootstrap-table from data in the
page. Inside a TRE nothing may reach the internet, not even a reader's browser, so simply removing
the CDN addresses leaves a safe but empty index. Instead:

* at install time (``make install``, which runs ``python -m linkage.identifiable.validation.data_docs
  vendor``) each package named in ``data_docs_assets.yaml`` is fetched from the npm registry at its
  pinned version, checked against its pinned sha512 integrity, and the files the pages need are kept
  in ``data_docs_assets/`` beside this module;
* when Data Docs are built (:func:`make_site_offline`), those files are copied into the site's
  ``static/vendor/`` and every page's CDN address is rewritten to the local copy. Any other remote
  address is removed (a stylesheet, script or image tag), unlinked (a link to a web page) or
  neutralised (a CSS ``url()``); a page that would still name a remote address is refused.

If the assets were never vendored the pages are still written, with every CDN address removed as
before and a warning that says how to fix it: nothing leaks, the index table is just empty.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ig_policies.config_file import load_config_file
from ig_policies.errors import EhlError

MANIFEST_PATH = Path(__file__).with_name("data_docs_assets.yaml")
#: where ``make install`` keeps the vendored files (not in git)
VENDORED_DIR = Path(__file__).with_name("data_docs_assets")
#: written last by :func:`vendor_assets`: the sha256 of the manifest the folder was vendored from
STAMP_NAME = ".manifest-sha256"
#: where, inside a Data Docs site, the vendored files are served from
SITE_VENDOR_DIR = PurePosixPath("static/vendor")
INSTALL_HINT = "run `make install` (it fetches them from the npm registry with `npm pack`)."


class DataDocsError(EhlError):
    """The Data Docs cannot be made to work offline (assets not fetched, or a remote address left)."""


class DataDocsOfflineWarning(UserWarning):
    """Data Docs were written without their vendored stylesheets and scripts."""


class ServedFile(BaseModel):
    """One CDN address and the file of the package that replaces it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    file: str

    @field_validator("url")
    @classmethod
    def _remote(cls, value: str) -> str:
        if not _REMOTE_ADDRESS.match(value):
            raise ValueError("must be an http(s) address, as written in the GX templates")
        return value

    @field_validator("file")
    @classmethod
    def _inside_package(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a path inside the package, such as dist/css/bootstrap.min.css")
        return value


class VendoredPackage(BaseModel):
    """An npm package at a pinned version, its registry integrity, and the files the pages use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    integrity: str = Field(pattern=r"^sha512-[A-Za-z0-9+/]+=*$")
    serves: tuple[ServedFile, ...] = Field(min_length=1)
    #: folders of the package that a served file loads by relative address (fonts of a stylesheet)
    alongside: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def folder(self) -> str:
        """Its folder under ``static/vendor/``: one per package version, so two versions coexist."""
        return f"{self.package.lstrip('@').replace('/', '-')}@{self.version}"

    def kept(self, member: str) -> str | None:
        """The path to keep for a tarball member (``package/...``), or None if the pages never use it."""
        if not member.startswith("package/"):
            return None
        path = member.removeprefix("package/")
        if ".." in PurePosixPath(path).parts:
            return None  # never written outside the package's folder
        wanted = {s.file for s in self.serves}
        if path in wanted or any(path.startswith(folder.rstrip("/") + "/") for folder in self.alongside):
            return path
        return None


class AssetManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    packages: tuple[VendoredPackage, ...]
    #: remote GX image -> the copy GX itself writes into the site (path from the site root)
    site_images: dict[str, str] = {}

    def local_files(self) -> dict[str, PurePosixPath]:
        """CDN address -> the vendored file's path from the site root."""
        return {
            served.url: SITE_VENDOR_DIR / package.folder / served.file
            for package in self.packages
            for served in package.serves
        }


def load_manifest(path: Path = MANIFEST_PATH) -> AssetManifest:
    """Read and validate the asset manifest; errors name the file and the key."""
    return load_config_file(path, AssetManifest, "the Data Docs asset list")


def _manifest_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def vendored_is_current(
    manifest: AssetManifest, folder: Path = VENDORED_DIR, manifest_path: Path = MANIFEST_PATH
) -> bool:
    """True when ``folder`` was vendored from this very manifest and holds every served file."""
    stamp = folder / STAMP_NAME
    if not stamp.is_file() or stamp.read_text(encoding="utf-8").strip() != _manifest_digest(manifest_path):
        return False
    return all((folder / p.folder / s.file).is_file() for p in manifest.packages for s in p.serves)


def _integrity(tarball: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode("ascii")


def _npm_pack(spec: str, into: Path, npm: str) -> Path:
    try:
        done = subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", str(into), spec],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.CalledProcessError as exc:
        raise DataDocsError(
            f"npm could not fetch {spec} for the Data Docs: {(exc.stderr or exc.stdout).strip()[-500:]}",
            hint="check that this machine reaches the npm registry (or set npm_config_registry to "
            "your organisation's mirror), then run `make install` again.",
        ) from None
    except subprocess.TimeoutExpired:
        raise DataDocsError(
            f"npm took more than 5 minutes to fetch {spec} for the Data Docs",
            hint="check that this machine reaches the npm registry, then run `make install` again.",
        ) from None
    names = [line.strip() for line in done.stdout.splitlines() if line.strip().endswith(".tgz")]
    if not names or not (into / names[-1]).is_file():
        raise DataDocsError(f"npm pack {spec} wrote no package file (it printed: {done.stdout.strip()!r})")
    return into / names[-1]


def vendor_assets(
    folder: Path = VENDORED_DIR, manifest_path: Path = MANIFEST_PATH, npm: str | None = None
) -> bool:
    """Fetch every package of the manifest with ``npm pack`` and keep the files the pages use.

    Idempotent: returns False without fetching when ``folder`` is already current. Each tarball is
    checked against its pinned integrity before anything is extracted, and the folder is replaced
    in one rename, so a failed run leaves the previous copy (or none), never a partial one.
    """
    manifest = load_manifest(manifest_path)
    if vendored_is_current(manifest, folder, manifest_path):
        return False
    npm = npm or shutil.which("npm")
    if npm is None:
        raise DataDocsError(
            "Data Docs need npm (Node.js) at install time to fetch their stylesheets and scripts "
            "from the npm registry, and 'npm' was not found",
            hint="install it, then run `make install` again: Debian/Ubuntu `apt-get install -y npm`, "
            "macOS `brew install node`.",
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        tarballs = staging / ".tarballs"
        tarballs.mkdir()
        for package in manifest.packages:
            tarball = _npm_pack(package.spec, tarballs, npm)
            actual = _integrity(tarball)
            if actual != package.integrity:
                raise DataDocsError(
                    f"{package.spec} from the npm registry does not match its pinned integrity in "
                    f"{manifest_path} (expected {package.integrity}, got {actual}); nothing was vendored",
                    hint="do not use this copy; ask whoever maintains the registry mirror whether the "
                    "package was replaced.",
                )
            _extract(tarball, package, staging / package.folder)
        shutil.rmtree(tarballs)
        (staging / STAMP_NAME).write_text(_manifest_digest(manifest_path) + "\n", encoding="utf-8")
        # public stylesheets and scripts, read by every account that builds Data Docs (the data
        # processor's, not the installer's): mkdtemp made the folder 0700
        staging.chmod(0o755)
        if folder.exists():
            retired = folder.with_name(f".{folder.name}-old")
            shutil.rmtree(retired, ignore_errors=True)
            folder.rename(retired)
            staging.rename(folder)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _extract(tarball: Path, package: VendoredPackage, into: Path) -> None:
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            path = package.kept(member.name)
            if path is None or not member.isfile():
                continue
            target = into / path
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None  # a regular file always has content
            target.write_bytes(source.read())
    missing = [s.file for s in package.serves if not (into / s.file).is_file()]
    if missing:
        raise DataDocsError(
            f"{package.spec} from the npm registry has no {', '.join(missing)}",
            hint=f"correct the file names of {package.spec} in {MANIFEST_PATH}.",
        )


# --- making a rendered site offline -------------------------------------------------------------

_REMOTE_ADDRESS = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_ANY_REMOTE = re.compile(r"https?://[^\s\"'<>)]*", re.IGNORECASE)
_SCRIPT_WITH_SRC = re.compile(r"<script\b(?P<attrs>[^>]*\bsrc\s*=[^>]*)>\s*</script\s*>", re.IGNORECASE)
_TAG = re.compile(r"<(?P<name>link|img|a)\b(?P<attrs>[^>]*)>", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*(["']?)\s*(?:https?:)?//[^)]*?\1\s*\)""", re.IGNORECASE)
_NOT_REWRITTEN = re.compile(r"""\s(?:integrity|crossorigin)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?""", re.I)

#: GX hides its logo image and paints a remote one as a CSS background; show the local image instead
_VENDORED_STYLE = "<style>.navbar-brand a{background:none}.navbar-brand a img{visibility:visible}</style>"
#: with no vendored Bootstrap, keep the plain tables readable
_STRIPPED_STYLE = (
    "<style>body{font-family:sans-serif;margin:1.5em;max-width:80em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}</style>"
)


def _attribute(name: str) -> re.Pattern[str]:
    return re.compile(rf"""(?P<before>\s{name}\s*=\s*)(?P<q>["'])(?P<value>[^"']*)(?P=q)""", re.IGNORECASE)


_HREF, _SRC = _attribute("href"), _attribute("src")


def _without_query(url: str) -> str:
    return re.split(r"[?#]", url.strip(), maxsplit=1)[0]


def offline_page(html: str, local: Mapping[str, str]) -> str:
    """``html`` with every remote address replaced by its local copy, or removed.

    ``local`` maps a remote address (without its query string) to the address of the local copy
    relative to this page. Stylesheets, scripts and images with no local copy are removed; links
    to web pages keep their text but lose the address; CSS ``url()`` of a remote file becomes
    ``none``. Integrity and crossorigin attributes go with the CDN (a browser refuses
    ``crossorigin`` scripts from ``file://``; the npm tarball's integrity was checked at install).
    """

    def script(match: re.Match[str]) -> str:
        attrs = match.group("attrs")
        src = _SRC.search(attrs)
        if src is None or not _REMOTE_ADDRESS.match(src.group("value")):
            return match.group(0)
        copy = local.get(_without_query(src.group("value")))
        if copy is None:
            return ""
        attrs = _NOT_REWRITTEN.sub("", _SRC.sub(lambda m: f"{m['before']}{m['q']}{copy}{m['q']}", attrs))
        return f"<script{attrs}></script>"

    def tag(match: re.Match[str]) -> str:
        name, attrs = match.group("name").lower(), match.group("attrs")
        pattern = _SRC if name == "img" else _HREF
        address = pattern.search(attrs)
        if address is None or not _REMOTE_ADDRESS.match(address.group("value")):
            return match.group(0)
        if name == "a":
            return f"<a{pattern.sub('', attrs)}>"
        copy = local.get(_without_query(address.group("value")))
        if copy is None:
            return ""
        attrs = pattern.sub(lambda m: f"{m['before']}{m['q']}{copy}{m['q']}", attrs)
        return f"<{match.group('name')}{_NOT_REWRITTEN.sub('', attrs)}>"

    html = _SCRIPT_WITH_SRC.sub(script, html)
    html = _TAG.sub(tag, html)
    return _CSS_URL.sub("none", html)


def offline_stylesheet(css: str) -> str:
    """A stylesheet of the site with every remote ``url()`` replaced by ``none``."""
    return _CSS_URL.sub("none", css)


def make_site_offline(site: Path, folder: Path = VENDORED_DIR, manifest_path: Path = MANIFEST_PATH) -> bool:
    """Make the Data Docs site GE rendered in ``site`` load nothing but its own files.

    Copies the vendored assets into ``site/static/vendor/`` and rewrites every page and stylesheet
    (see :func:`offline_page`). Returns whether the vendored assets were used; when they were never
    fetched, CDN addresses are removed instead and a warning says to run ``make install``.
    Raises :class:`DataDocsError` naming the page if any remote address would remain.
    """
    manifest = load_manifest(manifest_path)
    vendored = vendored_is_current(manifest, folder, manifest_path)
    targets: dict[str, PurePosixPath] = {u: PurePosixPath(p) for u, p in manifest.site_images.items()}
    if vendored:
        shutil.copytree(
            folder, site / SITE_VENDOR_DIR, ignore=shutil.ignore_patterns(STAMP_NAME), dirs_exist_ok=True
        )
        targets.update(manifest.local_files())
    else:
        warnings.warn(
            f"The Data Docs stylesheets and scripts have not been fetched into {folder}, so the pages "
            f"in {site} are written without them (their tables stay empty in a browser). To fix: "
            + INSTALL_HINT,
            DataDocsOfflineWarning,
            stacklevel=2,
        )
    for stylesheet in (site / "static").rglob("*.css"):
        if site / SITE_VENDOR_DIR in stylesheet.parents:
            continue  # vendored files are served as published
        stylesheet.write_text(offline_stylesheet(stylesheet.read_text(encoding="utf-8")), encoding="utf-8")
    for page in sorted(site.rglob("*.html")):
        to_root = PurePosixPath(Path(os.path.relpath(site, page.parent)).as_posix())
        local = {url: (to_root / path).as_posix() for url, path in targets.items()}
        html = offline_page(page.read_text(encoding="utf-8"), local)
        html = html.replace("</head>", (_VENDORED_STYLE if vendored else _STRIPPED_STYLE) + "</head>", 1)
        left = _ANY_REMOTE.search(html)
        if left is not None:
            raise DataDocsError(
                f"Data Docs page {page.relative_to(site)} would still name the remote address "
                f"{left.group(0)}; a reader's browser could reach the internet, so it is not written",
                hint=f"add the file behind that address to {manifest_path.name} (or a rule that removes "
                "it) in linkage/identifiable/validation/; this happens when Great Expectations changes "
                "its page templates.",
            )
        page.write_text(html, encoding="utf-8")
    return vendored


def main(argv: list[str] | None = None) -> int:
    """``python -m linkage.identifiable.validation.data_docs vendor``: the install-time step."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["vendor"]:
        print("usage: python -m linkage.identifiable.validation.data_docs vendor", file=sys.stderr)
        return 2
    try:
        fetched = vendor_assets()
    except EhlError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    manifest = load_manifest()
    state = "fetched" if fetched else "already up to date"
    print(f"Data Docs assets {state}: {len(manifest.packages)} npm packages in {VENDORED_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
