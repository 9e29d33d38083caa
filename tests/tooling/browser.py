"""What the browser tests and the benchmark share: how Chromium is started, where a page is served,
and when a page counts as rendered (every formula typeset by KaTeX, every Mermaid diagram drawn)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.tooling.sources import DOCS, NOTEBOOK_SUFFIX

# Without the background-networking flags Chromium tries to reach Google's services at start-up.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]

# Material draws each diagram into a closed shadow root; open it so that tests can look inside.
OPEN_SHADOW_ROOTS = """{
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) { return attach.call(this, { ...init, mode: "open" }) };
}"""

RENDERED = """() => {
  const math = [...document.querySelectorAll('.arithmatex')];
  const mathDone = math.every(el => el.querySelector('.katex'));
  const diagrams = [...document.querySelectorAll('.mermaid')];
  const diagramsDone = !document.querySelector('pre.mermaid') &&
    diagrams.every(el => el.shadowRoot && el.shadowRoot.querySelector('svg'));
  return mathDone && diagramsDone;
}"""


def chromium_executable() -> str | None:
    """Debian's Chromium (or BOOK_CHROMIUM); None lets Playwright use a browser it downloaded itself."""
    return os.environ.get("BOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def page_url(source: Path) -> str:
    """The address of a page relative to the site root, with directory URLs (index.md -> '')."""
    path = source.relative_to(DOCS).as_posix()
    path = path[: -len(NOTEBOOK_SUFFIX)] if path.endswith(NOTEBOOK_SUFFIX) else path[:-3]
    return "" if path == "index" else (path[:-5] if path.endswith("/index") else path) + "/"
