"""A real headless Chromium opens every page of the built site with the network cut: formulas and
diagrams must render, the console must stay clean, and no request may leave 127.0.0.1."""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from urllib.parse import urlparse

import pytest

from tests.tooling.book import DOCS, NOTEBOOK_SUFFIX, notebook_files, page_files, rel

pytestmark = pytest.mark.browser
REQUIRED = os.environ.get("BOOK_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


def page_url(source) -> str:
    path = source.relative_to(DOCS).as_posix()
    path = path[: -len(NOTEBOOK_SUFFIX)] if path.endswith(NOTEBOOK_SUFFIX) else path[:-3]
    return "" if path == "index" else (path[:-5] if path.endswith("/index") else path) + "/"


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"browser tests are required here (BOOK_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def server(built_site):
    if built_site["returncode"] != 0:
        _unavailable("the site did not build (see test_build_is_strict_and_clean)")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built_site["dir"]))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (run `make test`)")
    executable = os.environ.get("BOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:  # no Debian chromium and no Playwright-downloaded one
            _unavailable(f"no Chromium could be started ({str(exc).splitlines()[0]}); "
                         "install Debian's `chromium` package")
        yield b
        b.close()


def open_page(browser, server, url: str, viewport=None):
    """Open a page with every request that leaves 127.0.0.1 blocked and recorded."""
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
    offsite, errors = [], []

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            offsite.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    # Material draws each diagram into a closed shadow root; open it so the test can look inside
    context.add_init_script("""{
      const attach = Element.prototype.attachShadow;
      Element.prototype.attachShadow = function (init) { return attach.call(this, { ...init, mode: "open" }) };
    }""")
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(server + url, wait_until="load")
    return context, page, offsite, errors


RENDERED = """() => {
  const math = [...document.querySelectorAll('.arithmatex')];
  const mathDone = math.every(el => el.querySelector('.katex'));
  const diagrams = [...document.querySelectorAll('.mermaid')];
  const diagramsDone = !document.querySelector('pre.mermaid') &&
    diagrams.every(el => el.shadowRoot && el.shadowRoot.querySelector('svg'));
  return mathDone && diagramsDone;
}"""


@pytest.mark.parametrize("source", page_files() + notebook_files(), ids=rel)
def test_page_renders_offline(browser, server, source):
    url = page_url(source)
    context, page, offsite, errors = open_page(browser, server, url)
    try:
        try:
            page.wait_for_function(RENDERED, timeout=15000)
        except Exception:
            pass  # reported below with details
        report = page.evaluate("""() => ({
          math: document.querySelectorAll('.arithmatex').length,
          rawMath: [...document.querySelectorAll('.arithmatex')].filter(el => !el.querySelector('.katex'))
                     .map(el => el.textContent.slice(0, 80)),
          diagrams: document.querySelectorAll('.mermaid').length,
          undrawn: [...document.querySelectorAll('.mermaid')]
                     .filter(el => el.tagName === 'PRE' || !(el.shadowRoot && el.shadowRoot.querySelector('svg g'))
                                   || /Syntax error/i.test(el.shadowRoot.textContent)).length,
          notebookRawMath: [...document.querySelectorAll('.jupyter-wrapper .jp-RenderedMarkdown')]
                     .map(el => el.innerText).filter(t => /\\$[^$]+\\$/.test(t)).map(t => t.slice(0, 80)),
        })""")
    finally:
        context.close()
    where = f"{rel(source)} (/{url})"
    assert not offsite, f"{where}: requests that left the site: {offsite}"
    assert not errors, f"{where}: console errors: {errors}"
    assert not report["rawMath"], f"{where}: formulas not rendered: {report['rawMath']}"
    assert not report["notebookRawMath"], f"{where}: notebook formulas not rendered: {report['notebookRawMath']}"
    assert not report["undrawn"], f"{where}: {report['undrawn']} of {report['diagrams']} Mermaid diagrams not drawn"
    source_text = source.read_text(encoding="utf-8")
    if "```mermaid" in source_text:
        assert report["diagrams"] > 0, f"{where}: the page has a Mermaid fence but no diagram element"
    if "$" in source_text and not source.name.endswith(NOTEBOOK_SUFFIX):
        assert report["math"] > 0, f"{where}: the page has formulas but none reached the browser"
