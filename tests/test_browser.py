"""A real headless Chromium opens every page of the built site with the network cut: formulas and
diagrams must render, the console must stay clean, and no request may leave 127.0.0.1. Also: copy
buttons, a phone-sized viewport, Chinese search, dark mode, screenshots, and the offline edition."""
from __future__ import annotations

import difflib
import html
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.tooling.sources import DOCS, NOTEBOOK_SUFFIX, notebook_files, page_files, rel
from tests.tooling import browser as browser_module
from tests.tooling.browser import RENDERED, chromium_executable, page_url
from tests.tooling.siteserver import serve
from tests.conftest import browser_unavailable

pytestmark = pytest.mark.browser
PAGES = page_files() + notebook_files()
@pytest.fixture(scope="session")
def server(built_site):
    if built_site["returncode"] != 0:
        browser_unavailable("the site did not build (see test_build_is_strict_and_clean)")
    with serve(built_site["dir"]) as url:
        yield url


@pytest.fixture(scope="session")
def site_assets(built_site) -> list[Path]:
    """The built site's shared files (theme, vendored scripts, styles and fonts)."""
    return sorted(p for p in (built_site["dir"] / "assets").rglob("*") if p.is_file())


@pytest.fixture
def unchanged(request, built_site, site_assets, record_property):
    """unchanged(*urls) is True when this check passed before on byte-identical built files (the pages'
    HTML and what they reference, the site's assets, the test code, the browser): then it is not repeated.
    Only on a contributor's machine (see tooling/cache.py); CI always runs every check. Call
    unchanged.passed() once the check has passed."""
    from tests.tooling import cache

    class Unchanged:
        key = None

        def __call__(self, *urls: str, extra: str = "") -> bool:
            site = built_site["dir"]
            files = [Path(__file__), Path(browser_module.__file__), *site_assets]
            for url in urls:
                html = site / url / "index.html" if not url.endswith(".json") else site / url
                files += [html] + _referenced(html)
            params = getattr(request.node, "callspec", None)
            self.key = cache.digest(f"{request.node.originalname}{params.params if params else ''}", files,
                                    f"{extra}{chromium_executable()}", root=site)
            hit = cache.passed(self.key)
            record_property("browser", "cache" if hit else "ran")
            return hit

        def passed(self) -> None:
            if self.key:
                cache.mark_passed(self.key)

    return Unchanged()


def _referenced(html: Path) -> list[Path]:
    """Same-site files a page references (figures, scripts, styles), besides other pages."""
    if not html.is_file():
        return []
    refs = set(re.findall(r'(?:src|href)="([^"#?:]+)"', html.read_text(encoding="utf-8", errors="replace")))
    files = [(html.parent / r).resolve() for r in refs if not r.endswith("/") and not r.endswith(".html")]
    return sorted(p for p in files if p.is_file())


def open_page(browser, server, url: str, viewport=None, color_scheme="light"):
    """Open a page with every request that leaves 127.0.0.1 blocked and recorded."""
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900}, color_scheme=color_scheme)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    offsite, errors = [], []

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:", "file:")) or host == "127.0.0.1":
            r.continue_()
        else:
            offsite.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(url if url.startswith("file:") else server + url, wait_until="load")
    return context, page, offsite, errors


COPYABLE = """() => [...document.querySelectorAll('.md-typeset div.highlight pre')]
  .map(pre => ({ python: !!pre.closest('div.language-python, div.language-py, div.language-python3'),
                 code: pre.querySelector('code') ? pre.querySelector('code').textContent : '',
                 button: !!pre.querySelector('button[data-md-type="copy"], button.md-clipboard') }))"""


def _lines(text: str) -> list[str]:
    """The clipboard and the DOM differ only in blank lines around the line spans."""
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def _click_and_read(page, button) -> str:
    """Click a copy button as a reader does and return what reached the clipboard."""
    page.evaluate("() => navigator.clipboard.writeText('')")
    button.click()
    page.wait_for_function("async () => (await navigator.clipboard.readText()) !== ''", timeout=5000)
    return page.evaluate("() => navigator.clipboard.readText()")


def _copy_problems(page, source) -> list[str]:
    """Every code block has a copy button, except wrong code (shown in a failure admonition, marked not to
    run); and the Python that the copy buttons yield, button by button, is exactly the code the page test
    (or, on a notebook page, the notebook run) runs, in the same order: a reader who copies every block from
    the top runs what the tests ran. Closed 完整脚本 boxes are opened first, as a reader would."""
    from tests.tooling.sources import expand_page, notebook_cells, python_blocks
    where = rel(source)
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true })")
    if source.name.endswith(NOTEBOOK_SUFFIX):  # mkdocs-jupyter's own button on every code cell
        expected, wrong, problems = [c.code for c in notebook_cells(source)], 0, []
        buttons = page.locator(".jupyter-wrapper .jp-CodeCell clipboard-copy")
        python = list(range(buttons.count()))
    else:
        expected, wrong = [], 0
        for block in python_blocks(expand_page(source)):
            if block.skip_reason:
                wrong += 1
            else:
                expected.append(block.code)
        blocks = page.evaluate(COPYABLE)
        missing = [i for i, b in enumerate(blocks) if not b["button"] and not b["python"]]
        problems = [f"{where}: code blocks {missing} have no copy button"] if missing else []
        without = sum(1 for b in blocks if b["python"] and not b["button"])
        if without != wrong:
            problems.append(f"{where}: {without} Python blocks have no copy button, but {wrong} are marked not to run")
        buttons = page.locator('.md-typeset div.highlight pre button[data-md-type="copy"], '
                               '.md-typeset div.highlight pre button.md-clipboard')
        with_button = [b for b in blocks if b["button"]]
        python = [i for i, b in enumerate(with_button) if b["python"]]
    copied = [_click_and_read(page, buttons.nth(i)) for i in python]
    if len(copied) != len(expected):
        problems.append(f"{where}: the copy buttons offer {len(copied)} Python blocks, the tests run {len(expected)}")
    for n, (got, want) in enumerate(zip(copied, expected), 1):
        if _lines(got) != _lines(want):
            problems.append(f"{where}: copy button of Python block {n} yields other code than the tests run:\n"
                            + "\n".join(difflib.unified_diff(_lines(want), _lines(got), "runs", "copied",
                                                           lineterm="", n=1)))
    return problems


@pytest.mark.parametrize("source", PAGES, ids=rel)
def test_page_renders_offline(browser, server, source, unchanged):
    """Formulas and diagrams rendered, no console error, no request off the site, and every code block has
    a working copy button (one visit per page)."""
    url = page_url(source)
    if unchanged(url, extra=source.read_text(encoding="utf-8")):
        return
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
          diagrams: document.querySelectorAll('.diagram').length,
          undrawn: [...document.querySelectorAll('.diagram')].filter(el => !el.querySelector(':scope > svg g text'))
                     .length,
          leftover: document.querySelectorAll('.mermaid').length,
          mermaid: [typeof window.mermaid !== 'undefined' ? 'window.mermaid' : null,
                    ...performance.getEntriesByType('resource').map(e => e.name).filter(u => /mermaid/i.test(u))]
                     .filter(Boolean),
          // what a reader gets by selecting the whole diagram: its labels, as text
          diagramText: [...document.querySelectorAll('.diagram svg')].map(svg => {
            const sel = getSelection();
            sel.selectAllChildren(svg);
            const text = sel.toString();
            sel.removeAllRanges();
            return text;
          }),
          notebookRawMath: [...document.querySelectorAll('.jupyter-wrapper .jp-RenderedMarkdown')]
                     .map(el => el.innerText).filter(t => /\\$[^$]+\\$/.test(t)).map(t => t.slice(0, 80)),
        })""")
        copy_problems = _copy_problems(page, source)
    finally:
        context.close()
    assert not copy_problems, "\n".join(copy_problems)
    where = f"{rel(source)} (/{url})"
    assert not offsite, f"{where}: requests that left the site: {offsite}"
    assert not errors, f"{where}: console errors: {errors}"
    assert not report["rawMath"], f"{where}: formulas not rendered: {report['rawMath']}"
    assert not report["notebookRawMath"], f"{where}: notebook formulas not rendered: {report['notebookRawMath']}"
    assert not report["mermaid"], f"{where}: the page loads Mermaid: {report['mermaid']}"
    assert not report["leftover"], f"{where}: {report['leftover']} Mermaid fences were not replaced by their SVG"
    assert not report["undrawn"], f"{where}: {report['undrawn']} of {report['diagrams']} diagram boxes have no SVG text"
    source_text = source.read_text(encoding="utf-8")
    fences = diagram_fences([source]) if not source.name.endswith(NOTEBOOK_SUFFIX) else []
    assert report["diagrams"] == len(fences), \
        f"{where}: {len(fences)} Mermaid fences but {report['diagrams']} inline diagrams"
    for fence, text in zip(fences, report["diagramText"]):
        missing = [label for label in _labels(fence.source) if label not in re.sub(r"\s", "", text)]
        assert not missing, f"{fence.where}: labels not selectable as text in the diagram: {missing}"
    if "$" in source_text and not source.name.endswith(NOTEBOOK_SUFFIX):
        assert report["math"] > 0, f"{where}: the page has formulas but none reached the browser"
    unchanged.passed()


def diagram_fences(pages):
    from tests.tooling.diagrams import fences
    return fences(pages)


def _labels(source: str) -> list[str]:
    """The quoted labels of a Mermaid source as a reader sees them: without markup and white space, with
    character references decoded (`&lt;eos&gt;` reads as `<eos>`)."""
    return [html.unescape(re.sub(r"<[^>]*>|\s", "", label)) for label in re.findall(r'"([^"]+)"', source)]


@pytest.mark.parametrize("source", PAGES, ids=rel)
def test_page_fits_a_phone(browser, server, source, unchanged):
    """At 390×844 nothing makes the page scroll sideways: wide formulas, tables and code scroll in their own box."""
    if unchanged(page_url(source)):
        return
    context, page, offsite, errors = open_page(browser, server, page_url(source), viewport={"width": 390, "height": 844})
    try:
        page.wait_for_function(RENDERED, timeout=15000)
        report = page.evaluate("""() => {
          const width = document.documentElement.clientWidth;
          const wide = [...document.querySelectorAll('.md-content *')].filter(el => {
            if (el.closest('.katex-mathml')) return false;  // KaTeX's hidden MathML copy for screen readers
            const r = el.getBoundingClientRect();
            if (r.right <= width + 1) return false;
            // inside a box that scrolls on its own (or clips, like KaTeX's square-root tails): fine
            for (let p = el.parentElement; p; p = p.parentElement) {
              const o = getComputedStyle(p).overflowX;
              if (o !== 'visible' && p.getBoundingClientRect().right <= width + 1) return false;
            }
            return true;
          }).slice(0, 5).map(el => el.tagName.toLowerCase() + '.' + [...el.classList].join('.') + ': ' + (el.textContent || '').trim().slice(0, 40));
          // a diagram keeps its natural width (text not shrunk) and scrolls inside its box, which fits the page
          const diagrams = [...document.querySelectorAll('.diagram')].map(box => {
            const svg = box.querySelector(':scope > svg');
            return { id: svg && svg.id, fits: box.getBoundingClientRect().right <= width + 1,
                     scrolls: getComputedStyle(box).overflowX === 'auto',
                     natural: !!svg && Math.abs(svg.getBoundingClientRect().width - svg.width.baseVal.value) < 1 };
          }).filter(d => !(d.fits && d.scrolls && d.natural));
          return { scrollWidth: document.documentElement.scrollWidth, width, wide, diagrams };
        }""")
    finally:
        context.close()
    assert report["scrollWidth"] <= report["width"] and not report["wide"], \
        f"{rel(source)}: scrolls sideways on a phone ({report['scrollWidth']} > {report['width']} px): {report['wide']}"
    assert not report["diagrams"], f"{rel(source)}: diagrams that shrink or do not scroll in their box: {report['diagrams']}"
    unchanged.passed()


def page_title(source) -> str:
    text = source.read_text(encoding="utf-8")
    m = re.search(r"^# # (.+)$" if source.name.endswith(NOTEBOOK_SUFFIX) else r"^# (.+)$", text, re.M)
    title = re.sub(r"`([^`]*)`", r"\1", m.group(1)) if m else ""   # inline code reads as plain text on the site
    return re.sub(r"^[\d.]+\s*", "", title).strip()


def search(page, query: str) -> list[str]:
    box = page.locator("input.md-search__input")
    box.click()
    if page.locator(".md-search-result__item").count():  # clear the previous query's results first
        box.fill("")
        box.press("End")
        page.wait_for_selector(".md-search-result__item", state="detached", timeout=10000)
    box.fill(query)
    box.press("End")  # Material searches on key events; typed Chinese arrives through an input method
    page.wait_for_selector(".md-search-result__item", timeout=10000)
    hrefs = page.evaluate("""() => [...document.querySelectorAll('.md-search-result__item')]
        .map(li => li.querySelector('a').getAttribute('href'))""")
    pages = []
    for href in hrefs:
        path = href.split("#")[0].split("?")[0]
        path = path.split("127.0.0.1", 1)[-1].split("/", 1)[-1] if "://" in path else path.lstrip("./")
        if path not in pages:
            pages.append(path)
    return pages


SEARCH_QUERIES = ["反向传播", "卷积", "注意力"]


def test_the_search_index_loads_only_when_search_is_used(browser, server):
    """A reader who never searches does not download search_index.json (assets/javascripts/lazy-search.js);
    the first use of the search box loads it, and search works."""
    context, page, offsite, errors = open_page(browser, server, "part2/backprop/")
    try:
        loaded = "() => performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('search_index'))"
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)
        assert not page.evaluate(loaded), f"the search index was requested before any search: {page.evaluate(loaded)}"
        assert search(page, "反向传播"), "no result after the index was loaded"
        assert any(u.endswith("search/search_index.json") for u in page.evaluate(loaded))
    finally:
        context.close()
    assert not errors, f"console errors: {errors}"


@pytest.fixture(scope="module")
def search_page(browser, server):
    """The home page, opened once for all the search queries this worker runs."""
    context, page, offsite, errors = open_page(browser, server, "")
    yield page, offsite, errors
    context.close()


def _about(query: str):
    """The page a query is about: the one titled exactly so, else the first whose title contains it
    ("LeNet" is about 3.3 LeNet, not 3.6 NiN 与 GoogLeNet)."""
    exact = [s for s in PAGES if page_title(s) == query]
    return exact[0] if exact else next((s for s in PAGES if query in page_title(s)), None)


@pytest.mark.parametrize("query", SEARCH_QUERIES + [page_title(s) for s in PAGES
                                                     if page_title(s) and s.name != "index.md"])
def test_chinese_search_finds_the_page(request, query, unchanged):
    about = _about(query)
    if about is None:
        pytest.skip(f"no page has {query!r} in its title yet")
    if unchanged("", "search/search_index.json"):
        return
    search_page = request.getfixturevalue("search_page")
    page, offsite, errors = search_page
    results = search(page, query)
    assert not offsite and not errors, (offsite, errors)
    expected = page_url(about)
    assert expected in results[:3], f"searching {query!r}: {rel(about)} (/{expected}) is not in the top 3: {results[:5]}"
    unchanged.passed()


def _with_figures():
    return [s for s in page_files() if "](figures/" in s.read_text(encoding="utf-8")]


@pytest.mark.parametrize("source", _with_figures()[:2], ids=rel)
def test_dark_mode_toggle_keeps_figures_legible(browser, server, source, unchanged):
    if unchanged(page_url(source)):
        return
    context, page, offsite, errors = open_page(browser, server, page_url(source))
    try:
        scheme = "() => document.body.getAttribute('data-md-color-scheme')"
        assert page.evaluate(scheme) == "default"
        page.locator("label[title='切换到深色模式']").first.click()
        page.wait_for_function(f"() => ({scheme})() === 'slate'", timeout=5000)
        figures = page.evaluate("""() => [...document.querySelectorAll('.md-typeset img[src$=".svg"]')]
            .map(img => ({ src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
                           background: getComputedStyle(img).backgroundColor }))""")
        page.locator("label[title='切换到浅色模式']").first.click()
        page.wait_for_function(f"() => ({scheme})() === 'default'", timeout=5000)
    finally:
        context.close()
    assert figures, f"{rel(source)}: no SVG figure found on the page"
    for fig in figures:
        assert fig["loaded"], f"{rel(source)}: figure {fig['src']} did not load"
        assert fig["background"] == "rgb(255, 255, 255)", \
            f"{rel(source)}: figure {fig['src']} has no light background in dark mode ({fig['background']})"
    unchanged.passed()


def _with_diagrams():
    return [s for s in page_files() if "```mermaid" in s.read_text(encoding="utf-8")]


@pytest.mark.parametrize("source", _with_diagrams()[:2], ids=rel)
def test_dark_mode_toggle_keeps_diagrams_legible(browser, server, source, unchanged):
    """In dark mode a diagram keeps its white box, and its labels stay dark on it (contrast at least 4.5)."""
    if unchanged(page_url(source)):
        return
    context, page, offsite, errors = open_page(browser, server, page_url(source))
    try:
        page.wait_for_function(RENDERED, timeout=15000)
        page.locator("label[title='切换到深色模式']").first.click()
        page.wait_for_function("() => document.body.getAttribute('data-md-color-scheme') === 'slate'", timeout=5000)
        boxes = page.evaluate("""() => [...document.querySelectorAll('.diagram')].map(box => ({
            background: getComputedStyle(box).backgroundColor,
            fills: [...new Set([...box.querySelectorAll('svg text')].map(t => getComputedStyle(t).fill))] }))""")
    finally:
        context.close()
    assert boxes, f"{rel(source)}: no diagram on the page"

    def luminance(rgb):
        channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
        return sum(w * (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
                   for w, c in zip((0.2126, 0.7152, 0.0722), channels))
    for box in boxes:
        assert box["background"] == "rgb(255, 255, 255)", \
            f"{rel(source)}: a diagram has no white box in dark mode ({box['background']})"
        low = [fill for fill in box["fills"] if 1.05 / (luminance(fill) + 0.05) < 4.5]
        assert not low, f"{rel(source)}: diagram labels too light on the white box in dark mode: {low}"
    assert not errors, errors
    unchanged.passed()


def _formula_heaviest():
    return max(page_files(), key=lambda s: s.read_text(encoding="utf-8").count("$"))


def test_screenshots(browser, server):
    """Screenshots of the home page and the most formula-heavy page, light and dark (for people to look at;
    `make bench` lists them). Written to .bench/screenshots/, which git ignores."""
    from tests.tooling.sources import ROOT
    out = ROOT / ".bench" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    targets = {"home": DOCS / "index.md", "formulas": _formula_heaviest()}
    for name, source in targets.items():
        for scheme in ("light", "dark"):
            context, page, offsite, errors = open_page(browser, server, page_url(source), color_scheme=scheme)
            try:
                page.wait_for_function(RENDERED, timeout=15000)
                path = out / f"{name}-{scheme}.png"
                page.screenshot(path=str(path), full_page=False)
            finally:
                context.close()
            assert not errors, f"{rel(source)} ({scheme}): {errors}"
            assert path.stat().st_size > 10_000, f"{path} looks empty"



@pytest.fixture(scope="session")
def offline_edition(tmp_path_factory, built_site):
    """The offline edition, built and zipped as `make offline` does, then unpacked."""
    import zipfile
    from tests.tooling import offline
    tmp = tmp_path_factory.mktemp("offline")
    proc = offline.build(tmp / "site")
    assert proc.returncode == 0, "offline build failed:\n" + (proc.stdout + proc.stderr)[-3000:]
    archive = offline.pack(tmp / "site", tmp / "dl-book-offline.zip")
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp / "unpacked")
    return tmp / "unpacked" / "dl-book"


def test_offline_edition_works_from_file_urls(browser, offline_edition):
    """Unpacked from the zip and opened from file:// with the network cut: pages render, search finds
    Chinese words, and links lead to other pages."""
    index = (offline_edition / "index.html").as_uri()
    context, page, offsite, errors = open_page(browser, None, index)
    try:
        results = search(page, "自动求导")
        assert results, "offline search found nothing for 自动求导"
        page.locator(".md-search-result__item a").first.click()
        page.wait_for_load_state("load")
        assert page.url.startswith("file:") and "autograd" in page.url, page.url
        page.wait_for_function(RENDERED, timeout=15000)
        assert page.evaluate("document.querySelectorAll('.arithmatex .katex').length") > 0
        # follow a link in the navigation to another page and back to the notebook page
        page.locator("nav.md-nav--primary a[href$='data.html']").first.click()
        page.wait_for_load_state("load")
        assert page.url.endswith("data.html"), page.url
        page.wait_for_function(RENDERED, timeout=15000)
        page.locator("nav.md-nav--primary a[href$='mnist1d_tour.html']").first.click()
        page.wait_for_load_state("load")
        page.wait_for_function(RENDERED, timeout=15000)
        assert page.locator(".jupyter-wrapper img").count() > 0
    finally:
        context.close()
    assert not offsite, f"the offline edition made requests off the machine: {offsite}"
    assert not errors, f"console errors in the offline edition: {errors}"
