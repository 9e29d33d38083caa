"""What the browser tests and the benchmark share: how Chromium is started, where a page is served,
and when a page counts as rendered (every formula typeset by KaTeX, every diagram an inline SVG)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.tooling.sources import DOCS, NOTEBOOK_SUFFIX

# Without the background-networking flags Chromium tries to reach Google's services at start-up.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]

# Diagrams no longer use shadow roots (they are inline SVG, rendered ahead of time by `make diagrams`); kept
# only while tests/tooling/bench.py still adds it to its pages.
OPEN_SHADOW_ROOTS = """{
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) { return attach.call(this, { ...init, mode: "open" }) };
}"""

# Formulas are typeset at build time and diagrams arrive as inline SVG (overrides/hooks/diagrams.py), so a
# page is rendered once every formula has its KaTeX markup and every .diagram box its SVG with text in it.
# A .mermaid element left over would be a fence the build did not replace: never rendered.
RENDERED = """() => {
  const math = [...document.querySelectorAll('.arithmatex')];
  const mathDone = math.every(el => el.querySelector('.katex'));
  const diagramsDone = !document.querySelector('.mermaid') &&
    [...document.querySelectorAll('.diagram')].every(el => el.querySelector(':scope > svg text'));
  return mathDone && diagramsDone;
}"""


def chromium_executable() -> str | None:
    """Debian's Chromium (or BOOK_CHROMIUM); None lets Playwright use a browser it downloaded itself."""
    return os.environ.get("BOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def page_url(source: Path) -> str:
    """The address of a page relative to the site root, with directory URLs (index.md -> '')."""
    path = source.relative_to(DOCS).as_posix()
    path = path[: -len(NOTEBOOK_SUFFIX)] if path.endswith(NOTEBOOK_SUFFIX) else path[:-3]
    if path == "index":
        return ""
    return path[: -len("index")] if path.endswith("/index") else path + "/"  # part2/index.md -> part2/
