"""The static site (`make site`), built and opened page by page in a real (headless) Chromium.

The site is built as ``make site`` builds it: mkdocs + mkdocs-jupyter from ``.venv-site`` (the Makefile
makes it; ``SRLEARN_SITE_PYTHON`` names its python) over the notebooks executed in quick mode. Executed
copies in ``SRLEARN_EXECUTED_DIR`` (``build/executed``) are reused when their notebook is unchanged; in
``make test`` the browser and headless notebook tests leave them there, so no notebook runs twice; a
notebook without a fresh copy is executed here (about 25-75 s each on a 2-core CPU).

Every HTML page of the site (MathJax's own files aside) is opened from a local HTTP server and must:
load every image (``naturalWidth > 0``), a notebook page at least as many as its executed notebook has
image outputs; raise no JavaScript error; request nothing from the site that is missing; and every
internal link must lead to a page of the site and, with ``#fragment``, to an element with that id. On a
notebook page the equations must have been typeset by MathJax (served with the site, so offline too).
Chromium and Playwright as in tests/test_browser.py; without them, or without .venv-site, the test
skips and says why (``SRLEARN_REQUIRE_BROWSER=1``, set by ``make test`` on CI, makes that a failure).
"""
from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser_support as bs  # noqa: E402

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("kit", ROOT / "tools" / "kit.py")
kit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kit)

REQUIRE = os.environ.get("SRLEARN_REQUIRE_BROWSER", "") not in ("", "0")
SITE_PY = Path(os.environ.get("SRLEARN_SITE_PYTHON", ROOT / ".venv-site" / "bin" / "python"))
EXECUTED = Path(os.environ.get("SRLEARN_EXECUTED_DIR", ROOT / "build" / "executed"))


def _unavailable(reason: str):
    if REQUIRE:
        pytest.fail(f"SRLEARN_REQUIRE_BROWSER is set but the site test cannot run: {reason}", pytrace=False)
    pytest.skip(f"site test skipped: {reason}")


@pytest.fixture(scope="module")
def site(tmp_path_factory, jupyter_env):
    if not SITE_PY.exists():
        _unavailable(f"{SITE_PY} does not exist: `make site` or `make test` creates .venv-site (mkdocs)")
    stale = [p for p in kit.notebook_paths() if not kit.executed_copy(p, EXECUTED)]
    t0 = time.monotonic()
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in jupyter_env.items() if k in ("IPYTHONDIR", "MPLCONFIGDIR",
                                                                      "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR",
                                                                      "JUPYTER_RUNTIME_DIR")})
    try:
        kit.execute(stale, EXECUTED)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    executed_s = time.monotonic() - t0
    out = tmp_path_factory.mktemp("site") / "site"
    t1 = time.monotonic()
    r = subprocess.run([str(SITE_PY), str(ROOT / "tools" / "kit.py"), "site", "--no-execute",
                        "--executed", str(EXECUTED), "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"building the site failed:\n{(r.stdout + r.stderr)[-4000:]}"
    print(f"site: executed {len(stale)} notebook(s) in {executed_s:.0f} s, built in {time.monotonic() - t1:.0f} s")
    return out


@pytest.fixture(scope="module")
def browser_page(site):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _unavailable(f"Playwright is not importable ({e}); `make test` installs it")
    chromium, note = bs.ensure_chromium()
    if chromium is None:
        _unavailable(note)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = bs.descendants(os.getpid())
    pw = sync_playwright().start()
    browser = None
    try:
        browser = pw.chromium.launch(executable_path=chromium, args=bs.CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        pids = bs.descendants(os.getpid()) - before
        for step in (lambda: browser and browser.close(), pw.stop, server.shutdown):
            try:
                step()
            except Exception:
                pass
        bs.kill_pids([p for p in pids if bs.alive(p)])


JS_PAGE = """() => ({
  images: Array.from(document.images).map(i => ({src: i.src.slice(0, 80), ok: i.complete && i.naturalWidth > 0})),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
  math: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_CHTML, mjx-container').length,
  mathErrors: document.querySelectorAll('.MathJax_Error, merror').length,
})"""


def _pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if "mathjax" not in p.relative_to(site).parts)


def scan(page, base: str, site: Path, pages: list[Path]) -> tuple[list[str], int]:
    """Open ``pages`` of the site served at ``base``; return (problems, number of links checked)."""
    problems, seen, links = [], {}, []
    errors: list[str] = []
    # MathJax probes for TeX web fonts it falls back from (the wheel ships STIX-Web only, which the site
    # configures): those 404s are not problems; equations that fail to typeset are, and are counted below
    ours = lambda url: url.startswith(base) and not url.startswith(f"{base}/mathjax/fonts/")  # noqa: E731
    on_error = lambda e: errors.append(str(e)[:200])  # noqa: E731
    on_failed = lambda r: errors.append(f"request failed ({r.failure}): {r.url[len(base):][:100]}") \
        if ours(r.url) and "ERR_ABORTED" not in (r.failure or "") else None  # noqa: E731
    on_response = lambda r: errors.append(f"HTTP {r.status}: {r.url[len(base):][:100]}") \
        if ours(r.url) and r.status >= 400 else None  # noqa: E731
    page.on("pageerror", on_error)
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    has_mathjax = (site / "mathjax" / "MathJax.js").exists()
    try:
        for path in pages:
            rel = path.relative_to(site).as_posix()
            errors.clear()
            page.goto(f"{base}/{rel}", wait_until="load", timeout=60_000)
            try:
                page.wait_for_load_state("networkidle", timeout=30_000)
                page.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=30_000)
            except Exception:
                pass  # what did not load is reported below
            if rel.startswith("notebooks/") and has_mathjax:
                try:
                    page.wait_for_function("() => window.MathJax && window.MathJax.Hub && "
                                           "window.MathJax.Hub.queue.pending === 0 && "
                                           "document.querySelectorAll('.MathJax, .MathJax_Display').length > 0",
                                           timeout=60_000)
                except Exception:
                    problems.append(f"{rel}: MathJax typeset no equation within 60 s")
            info = page.evaluate(JS_PAGE)
            seen[rel] = set(info["ids"])
            links += [(rel, href) for href in info["links"]]
            bad = [i["src"] for i in info["images"] if not i["ok"]]
            if bad:
                problems.append(f"{rel}: {len(bad)} image(s) did not load: {bad[:3]}")
            if info["mathErrors"]:
                problems.append(f"{rel}: {info['mathErrors']} equation(s) failed to typeset")
            if rel.startswith("notebooks/"):
                nb = nbformat.read(site / rel.replace(".html", ".ipynb"), as_version=4)
                figures = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
                if len(info["images"]) < figures:
                    problems.append(f"{rel}: {len(info['images'])} images on the page, the notebook has {figures} figures")
                if figures == 0:
                    problems.append(f"{rel}: the notebook behind this page has no figure (was it executed?)")
            problems += [f"{rel}: {e}" for e in errors]
    finally:
        page.remove_listener("pageerror", on_error)
        page.remove_listener("requestfailed", on_failed)
        page.remove_listener("response", on_response)
    checked = 0
    for rel, href in links:
        if not href.startswith(base):
            continue
        checked += 1
        target, fragment = urldefrag(href)
        path = unquote(urlparse(target).path).lstrip("/")
        if path == "" or path.endswith("/"):
            path += "index.html"
        if not (site / path).is_file():
            problems.append(f"{rel}: link to /{path} -> no such page")
        elif fragment and path in seen and unquote(fragment) not in seen[path]:
            problems.append(f"{rel}: link to /{path}#{fragment} -> {path} has no element id={fragment!r}")
    return problems, checked


def test_every_page_loads_its_figures_and_no_internal_link_is_broken(site, browser_page):
    page, base = browser_page
    pages = _pages(site)
    names = {p.relative_to(site).as_posix() for p in pages}
    expected = {f"notebooks/{p.stem}.html" for p in kit.notebook_paths()} | {"index.html", "papers.html",
                                                                              "sr-protocol.html"}
    expected |= {f"leaders/{'index' if f.stem == 'README' else f.stem}.html" for f in (ROOT / "docs" / "leaders").glob("*.md")}
    assert expected <= names, f"pages missing from the site: {sorted(expected - names)}"
    problems, checked = scan(page, base, site, pages)
    assert checked > 50, f"only {checked} internal links on {len(pages)} pages: the page scan is broken"
    assert not problems, f"{len(problems)} problem(s) on {len(pages)} pages:\n" + "\n".join(problems[:60])


def test_the_scan_catches_a_broken_link_anchor_and_image(site, browser_page):
    page, base = browser_page
    bad = site / "planted-broken.html"
    bad.write_text('<html><body><a href="nowhere.html">a</a> <a href="papers.html#no-such-id">b</a> '
                   '<a href="papers.html">c</a> <img src="missing.png"></body></html>')
    try:
        problems, checked = scan(page, base, site, [site / "papers.html", bad])
    finally:
        bad.unlink()
    text = "\n".join(problems)
    assert checked >= 3
    assert "planted-broken.html: link to /nowhere.html -> no such page" in text, text
    assert "papers.html has no element id='no-such-id'" in text, text
    assert "planted-broken.html: 1 image(s) did not load" in text and "HTTP 404: /missing.png" in text, text
    assert not [p for p in problems if p.startswith("papers.html")], text
