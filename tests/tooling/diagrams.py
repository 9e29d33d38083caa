"""Mermaid diagrams rendered ahead of time (`make diagrams`), and the check that the committed SVGs match
the Markdown they were made from.

    python -m tests.tooling.diagrams                        # render every ```mermaid fence, remove orphans
    python -m tests.tooling.diagrams docs/part2/backprop.md # only this page's fences
    python -m tests.tooling.diagrams --check                # list missing, stale and orphaned SVGs (no browser)

The diagrams stay Mermaid source in the pages. Each fence is rendered by the vendored Mermaid
(docs/assets/vendor/mermaid/mermaid.min.js) in the headless Chromium the browser tests use, with the network
cut, and written to docs/<part>/diagrams/<page>-<n>.svg (the page's n-th fence). The build
(overrides/hooks/diagrams.py, which also defines the file names and the source hash used here) inlines that
SVG in place of the fence; readers download no diagram script.

Settings (render_settings): labels are SVG <text> (`htmlLabels: false`: selectable, searchable, no
foreignObject), in the site's body font stack (read from extra.css); the SVG keeps its natural width (the
page scrolls it inside its box on a phone); `securityLevel: 'strict'`; ids are fixed per diagram (unique
within a page) and rough.js's seed is fixed, so rendering twice gives the same bytes. Every run renders
each diagram twice, in two fresh pages and in opposite orders, and fails if the bytes differ. Readers'
fonts set Latin text wider or narrower than the font measured here (Microsoft YaHei, PingFang, Noto), so
nodes get padding around their labels, and every label is checked to stay inside its node's outline also
when set in DejaVu Sans, whose Latin is wider than any of those (FIT_JS). A Mermaid syntax error, HTML
that SVG text cannot show, or a label that does not fit fails naming the page and line.

Each SVG opens with a comment that records the sha256 of the fence source and the renderer (Mermaid's
version and a digest of the settings). An SVG is stale when either differs from what the page and this
file would give now; tests/test_guards.py reports stale, missing and orphaned SVGs by page:line, without
a browser: it only compares these hashes.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.etree import ElementTree

from tests.tooling.sources import DOCS, ROOT, page_files, rel
from tests.tooling.vendor import PACKAGES

MERMAID_JS = DOCS / "assets" / "vendor" / "mermaid" / "mermaid.min.js"
EXTRA_CSS = DOCS / "assets" / "stylesheets" / "extra.css"
COMMAND = "make diagrams"


@lru_cache(maxsize=None)
def hook():
    """overrides/hooks/diagrams.py, the build's side of the contract (file names, source hash)."""
    spec = importlib.util.spec_from_file_location("book_hook_diagrams", ROOT / "overrides" / "hooks" / "diagrams.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def site_font_stack() -> str:
    """The body font stack of the site (--md-text-font in extra.css), so that diagrams use the same fonts."""
    m = re.search(r"--md-text-font:\s*([^;]+);", EXTRA_CSS.read_text(encoding="utf-8"))
    if not m:
        raise SystemExit(f"{rel(EXTRA_CSS)}: no --md-text-font; the diagrams need the site's font stack")
    return " ".join(m.group(1).split())


def render_settings() -> dict:
    """mermaid.initialize() settings. Changing any of them makes every committed SVG stale."""
    font = site_font_stack()
    natural = {"useMaxWidth": False}  # width in px: the box scrolls on a phone instead of shrinking the text
    return {
        "startOnLoad": False,
        "securityLevel": "strict",
        "theme": "default",
        "htmlLabels": False,
        "fontFamily": font,
        "themeVariables": {"fontFamily": font, "fontSize": "16px"},
        "deterministicIds": True,
        "handDrawnSeed": 1,  # rough.js draws some shapes (stadiums, circles) with random control points
        "flowchart": {**natural, "htmlLabels": False, "padding": 16, "diagramPadding": 16,
                      "wrappingWidth": 400, "nodeSpacing": 40, "rankSpacing": 50},
        **{kind: dict(natural) for kind in ("sequence", "class", "state", "er", "gantt", "journey", "mindmap",
                                              "timeline", "block", "architecture", "xyChart", "quadrantChart")},
    }


# Bump when what this file does to Mermaid's output changes (mermaid_text, shift_marks, simplify_path, finish).
POSTPROCESS = 2


def renderer() -> str:
    settings = json.dumps([render_settings(), POSTPROCESS, _SHIFT], sort_keys=True, ensure_ascii=False)
    return f"mermaid {PACKAGES['mermaid'][0]}, settings {hashlib.sha256(settings.encode()).hexdigest()[:16]}"


# ---------------------------------------------------------------- what the pages contain and what is committed

@dataclass
class Fence:
    page: Path
    n: int          # the page's n-th Mermaid fence, from 1
    line: int       # the line of its opening ``` in the page file
    text: str       # the fence body as written (dedented)

    @property
    def where(self) -> str:
        return f"{rel(self.page)}:{self.line}"

    @property
    def source(self) -> str:
        return hook().normalize(self.text)

    @property
    def hash(self) -> str:
        return hook().source_hash(self.text)

    @property
    def svg(self) -> Path:
        return Path(hook().svg_path(str(self.page), self.n))

    @property
    def id(self) -> str:
        return hook().diagram_id(str(self.page), self.n)


def fences(pages: list[Path] | None = None) -> list[Fence]:
    found = []
    for page in pages if pages is not None else page_files():
        text = page.read_text(encoding="utf-8-sig")
        found += [Fence(page, n, line, body) for n, (line, body) in enumerate(hook().mermaid_fences(text), 1)]
    return found


def committed_svgs(docs: Path = DOCS) -> list[Path]:
    return sorted(docs.glob(f"**/{hook().DIAGRAM_DIR}/*.svg"))


_RENDERER = re.compile(r"^<!--.*?renderer: (?P<renderer>[^\n]*?)\s*(?:-->|\n)", re.S)


def recorded(svg: Path) -> tuple[str | None, str | None]:
    """(source hash, renderer) that a committed SVG records."""
    text = svg.read_text(encoding="utf-8")
    m = _RENDERER.match(text)
    return hook().recorded_hash(text), (m.group("renderer") if m else None)


def problems(pages: list[Path] | None = None, docs: Path = DOCS) -> list[str]:
    """Fences without a current SVG and SVGs without a fence, each naming where and the command. Only
    compares hashes: no browser. (pages and docs default to the book's; the tooling tests pass copies.)"""
    found, wanted, current = [], set(), renderer()
    for fence in fences(pages):
        wanted.add(fence.svg)
        if not fence.svg.is_file():
            found.append(f"{fence.where}: Mermaid diagram {fence.n} has no SVG ({rel(fence.svg)} is missing); "
                         f"run `{COMMAND}`")
            continue
        source, made_by = recorded(fence.svg)
        if source != fence.hash:
            found.append(f"{fence.where}: {rel(fence.svg)} is stale: it was rendered from other source than "
                         f"Mermaid diagram {fence.n}; run `{COMMAND}`")
        elif made_by != current:
            found.append(f"{fence.where}: {rel(fence.svg)} is stale: rendered by {made_by}, the renderer is now "
                         f"{current} (Mermaid or the settings in tests/tooling/diagrams.py changed); run `{COMMAND}`")
    for svg in committed_svgs(docs):
        if svg not in wanted:
            found.append(f"{rel(svg)}: orphaned, no page has this Mermaid fence any more; run `{COMMAND}` "
                         f"(it removes orphans) or delete the file")
    return found


# ---------------------------------------------------------------- rendering

class DiagramError(Exception):
    """A diagram Mermaid cannot render (or whose labels would not fit); the message names the page and line."""


# Labels are SVG text, which knows no HTML: Mermaid would print `<sub>` literally. <br> is Mermaid's own line
# break; <sub> and <sup> are passed to Mermaid as invisible marks (zero width, one word with their
# neighbours) and turned into shifted, smaller tspans afterwards; any other tag fails, naming its line.
_TAG = re.compile(r"(?<!<)<(/?)([A-Za-z][\w-]*)[^<>]*>")
_MARKS = {"sub": ("\u2061", "\u2062"), "sup": ("\u2063", "\u2064")}
_SHIFT = {"": 0, "sub": 4, "sup": -6}  # baseline shift in px at the diagrams' 16 px font size


def mermaid_text(fence: Fence) -> str:
    """The fence source as given to Mermaid: <sub>/<sup> replaced by marks; other HTML tags refused."""
    for i, line in enumerate(fence.source.split("\n"), 1):
        for m in _TAG.finditer(line):
            if m.group(2).lower() not in ("br", "sub", "sup"):
                raise DiagramError(f"{rel(fence.page)}:{fence.line + _lead(fence) + i}: Mermaid diagram {fence.n} "
                                   f"uses {m.group(0)!r}; labels are SVG text, where only <br/>, <sub> and <sup> "
                                   f"work (write x₁, ᵀ… as Unicode, or use <sub>/<sup>)")
    text = fence.source
    for tag, (start, end) in _MARKS.items():
        text = re.sub(f"<{tag}>", start, text, flags=re.I)
        text = re.sub(f"</{tag}>", end, text, flags=re.I)
    return text


_INNER = re.compile(r'(<tspan class="text-outer-tspan row"[^>]*>)|<tspan ([^>]*class="text-inner-tspan"[^>]*)>([^<]*)</tspan>')


def shift_marks(svg: str) -> str:
    """Turn the <sub>/<sup> marks back into subscripts and superscripts (smaller, with dy; dy rather than
    baseline-shift, which Firefox ignores), shifting back where the normal text resumes."""
    if not any(mark in svg for pair in _MARKS.values() for mark in pair):
        return svg
    kind_of = {mark: (tag if i == 0 else "") for tag, pair in _MARKS.items() for i, mark in enumerate(pair)}
    state = {"kind": "", "shift": 0}

    def inner(m):
        if m.group(1):  # a new row is positioned absolutely: no shift carried over
            state.update(kind="", shift=0)
            return m.group(1)
        pieces, kind, buf = [], state["kind"], ""
        for ch in m.group(3):
            if ch in kind_of:
                pieces.append((kind, buf))
                kind, buf = kind_of[ch], ""
            else:
                buf += ch
        pieces.append((kind, buf))
        state["kind"] = kind
        out = ""
        for kind, text in pieces:
            if not text:
                continue
            dy = _SHIFT[kind] - state["shift"]
            state["shift"] = _SHIFT[kind]
            attrs = (f' dy="{dy}"' if dy else "") + (' style="font-size:75%"' if kind else "")
            out += f"<tspan{attrs}>{text}</tspan>" if attrs else text
        return f"<tspan {m.group(2)}>{out}</tspan>"
    return _INNER.sub(inner, svg)


RENDER_JS = """async ([settings, jobs]) => {
  mermaid.initialize(settings);
  const out = [];
  for (const [id, text] of jobs) {
    try {
      out.push({ svg: (await mermaid.render(id, text)).svg });
    } catch (e) {
      out.push({ error: String((e && (e.message || e.str)) || e) });
    }
    document.querySelectorAll('body > :not(script)').forEach(el => el.remove());  // Mermaid's leftovers
  }
  return out;
}"""

# A wide Latin font: DejaVu Sans sets Latin letters, digits and math signs wider than the Latin of
# Microsoft YaHei, PingFang SC, Noto Sans CJK or Segoe UI (Chinese characters are one em in every font).
WIDE_FONT = '"DejaVu Sans"'
MARGIN = 3  # px a label keeps from its node's outline in the wide font

# Every node label must lie inside its node's shape (corners and edge midpoints tested with isPointInFill)
# in the site's font and in the wide font; otherwise a reader whose font is wider sees text cross the outline.
FIT_JS = """([svgText, wide, margin]) => {
  const box = document.createElement('div');
  box.innerHTML = svgText;
  document.body.appendChild(box);
  const wideInstalled = (() => {
    const c = document.createElement('canvas').getContext('2d');
    const w = f => { c.font = '16px ' + f; return c.measureText('mmmmmmmmmmlli1WMx').width; };
    return w(wide + ', monospace') !== w('monospace') || w(wide + ', serif') !== w('serif');
  })();
  const fonts = wideInstalled ? [null, wide] : [null];
  const misfits = [];
  for (const node of box.querySelectorAll('g.node')) {
    const text = node.querySelector('text');
    const shapes = [...node.querySelectorAll(':scope > rect, :scope > path, :scope > polygon, :scope > circle, '
                                             + ':scope > ellipse, :scope > g:not(.label) > path')]
                     .filter(s => s.isPointInFill);
    if (!text || !shapes.length) continue;
    for (const font of fonts) {
      const stack = font ? font + ', ' + getComputedStyle(text).fontFamily : '';
      text.style.fontFamily = stack;
      const b = text.getBBox();
      const toShape = (s, x, y) => {
        const p = new DOMPoint(x, y).matrixTransform(text.getScreenCTM()).matrixTransform(s.getScreenCTM().inverse());
        return s.isPointInFill(p);
      };
      const m = font ? margin : 0;
      const xs = [b.x - m, b.x + b.width / 2, b.x + b.width + m], ys = [b.y + 2, b.y + b.height / 2, b.y + b.height - 2];
      const outside = xs.some(x => ys.some(y => !shapes.some(s => toShape(s, x, y))));
      if (outside) misfits.push({ label: text.textContent.trim(), font: font || 'the site font' });
      text.style.fontFamily = '';
    }
  }
  box.remove();
  return { wideInstalled, misfits };
}"""

# rough.js (which Mermaid uses for stadiums, circles and other shapes even in the classic look) draws every
# straight piece of an outline as a cubic Bézier with its control points on the line, twice, plus pieces of
# length zero: half of a diagram's bytes. simplify_path writes those pieces as what they are (L, or nothing),
# which draws the same outline.
_PATH_TOKEN = re.compile(r"[A-Za-z]|-?(?:\d+\.?\d*|\.\d+)(?:e-?\d+)?")


def _fmt(v: float) -> str:
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _straight(a, b, c, d, tol=0.02) -> bool:
    """Control points b, c lie on the segment a-d (so the Bézier is that segment)."""
    dx, dy = d[0] - a[0], d[1] - a[1]
    length = (dx * dx + dy * dy) ** 0.5
    if length < 1e-9:
        return all(abs(q[0] - a[0]) <= tol and abs(q[1] - a[1]) <= tol for q in (b, c))
    for qx, qy in ((b[0] - a[0], b[1] - a[1]), (c[0] - a[0], c[1] - a[1])):
        along = (qx * dx + qy * dy) / length
        if abs(qx * dy - qy * dx) / length > tol or along < -tol or along > length + tol:
            return False
    return True


def simplify_path(d: str) -> str:
    """A path's data with straight Béziers as L and zero-length pieces dropped (absolute M, L, C, Z only;
    any other path is returned as it is)."""
    tokens = _PATH_TOKEN.findall(d)
    if any(t.isalpha() and t not in "MLCZ" for t in tokens):
        return d
    out, cur, start, pending_m, cmd, i = [], None, None, None, None, 0
    num = lambda k: float(tokens[k])  # noqa: E731
    try:
        while i < len(tokens):
            t = tokens[i]
            if t.isalpha():
                cmd, i = t, i + 1
                if cmd == "Z":
                    if pending_m is None:  # a subpath that drew nothing needs no closing
                        out.append("Z")
                    cur = start
                continue
            if cmd == "M":
                pending_m = cur = start = (num(i), num(i + 1))
                i, cmd = i + 2, "L"  # coordinates after a moveto are linetos
                continue
            if cmd == "L":
                p, i = (num(i), num(i + 1)), i + 2
                seg = f"L{_fmt(p[0])} {_fmt(p[1])}"
            elif cmd == "C":
                b, c, p, i = (num(i), num(i + 1)), (num(i + 2), num(i + 3)), (num(i + 4), num(i + 5)), i + 6
                seg = (f"L{_fmt(p[0])} {_fmt(p[1])}" if _straight(cur, b, c, p)
                       else "C" + " ".join(f"{_fmt(x)} {_fmt(y)}" for x, y in (b, c, p)))
            else:
                return d
            if seg.startswith("L") and p == cur:
                continue
            if pending_m is not None:
                out.append(f"M{_fmt(pending_m[0])} {_fmt(pending_m[1])}")
                pending_m = None
            out.append(seg)
            cur = p
    except (IndexError, TypeError):
        return d
    return "".join(out) if out else d


# Numbers in geometry attributes: Mermaid writes up to 17 digits (rough.js paths of 30 KB for one stadium).
_GEOMETRY = re.compile(r'\b(d|points|transform|viewBox|x|y|x1|x2|y1|y2|cx|cy|r|rx|ry|width|height)="([^"]*)"')
_NUMBER = re.compile(r"-?\d+\.\d{3,}(?:e-?\d+)?")


def _round(value: str) -> str:
    def short(m):
        text = f"{float(m.group(0)):.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return _NUMBER.sub(short, value)


def finish(svg: str, fence: Fence) -> str:
    """Subscripts back in, straight Béziers as lines, geometry rounded to 1/100 px, the SVG proven
    well-formed XML without HTML."""
    svg = re.sub(r'(<path\b[^>]*?\sd=")([^"]*)"', lambda m: f'{m.group(1)}{simplify_path(m.group(2))}"', shift_marks(svg))
    svg = _GEOMETRY.sub(lambda m: f'{m.group(1)}="{_round(m.group(2))}"', svg)
    try:
        ElementTree.fromstring(svg)
    except ElementTree.ParseError as exc:
        raise DiagramError(f"{fence.where}: Mermaid produced an SVG that is not well-formed XML ({exc})") from None
    if "<foreignObject" in svg:
        raise DiagramError(f"{fence.where}: the SVG has HTML labels (foreignObject); labels must be SVG text")
    return svg


def with_record(svg: str, fence: Fence) -> str:
    """The file's text: a comment recording the source hash and the renderer, then the SVG."""
    return (f"<!-- Rendered by `{COMMAND}` (tests/tooling/diagrams.py) from Mermaid diagram {fence.n} of "
            f"{rel(fence.page)}; do not edit.\n"
            f"     source-sha256: {fence.hash}\n"
            f"     renderer: {renderer()} -->\n{svg}\n")


def _lead(fence: Fence) -> int:
    """Blank lines at the top of the fence, which the rendered source drops."""
    return next((i for i, text in enumerate(fence.text.split("\n")) if text.strip()), 0)


def _error(fence: Fence, message: str) -> DiagramError:
    """Name the page line Mermaid complains about (its 'line N' counts from the fence's first line; at the
    end of the input it counts one line past the last)."""
    for tag, (start, end) in _MARKS.items():
        message = message.replace(start, f"<{tag}>").replace(end, f"</{tag}>")
    where = fence.where
    m = re.search(r"\bline (\d+)\b", message)
    if m:
        line = min(int(m.group(1)), len(fence.source.split("\n")))
        where = f"{rel(fence.page)}:{fence.line + _lead(fence) + line}"
    return DiagramError(f"{where}: Mermaid cannot render diagram {fence.n} (the fence at line {fence.line}):\n"
                        f"{message.strip()}\nFix the diagram, then run `{COMMAND}`.")


def render(todo: list[Fence], log=print, browser=None) -> dict[Path, str]:
    """Render every fence twice (two fresh pages, opposite orders) and check that its labels fit; the
    file text per SVG path. `browser`: a Playwright Chromium already running in this process (the tests'
    one; Playwright's sync API cannot be started twice in one thread), else one is started here."""
    if browser is None:
        from playwright.sync_api import sync_playwright

        from tests.tooling.browser import CHROMIUM_ARGS, chromium_executable
        with sync_playwright() as p:
            launched = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
            try:
                return render(todo, log, launched)
            finally:
                launched.close()
    settings = render_settings()
    jobs, refused = [], []
    for fence in todo:
        try:
            jobs.append([fence.id, mermaid_text(fence)])
        except DiagramError as exc:
            refused.append(str(exc))
    if refused:
        raise DiagramError("\n".join(refused))
    passes, fits = [], {}
    for order in (list(range(len(todo))), list(range(len(todo)))[::-1]):
        context = browser.new_context()
        page = context.new_page()
        requests = []
        page.route("**/*", lambda r: (requests.append(r.request.url), r.abort()))
        page.set_content("<!doctype html><html><head><meta charset='utf-8'></head>"
                         f"<body style='font-family: {settings['fontFamily']}; font-size: 16px'></body></html>")
        page.add_script_tag(content=MERMAID_JS.read_text(encoding="utf-8"))
        results = page.evaluate(RENDER_JS, [settings, [jobs[i] for i in order]])
        if requests:
            context.close()
            raise DiagramError(f"rendering the diagrams tried to fetch {requests[:3]}")
        passes.append({i: r for i, r in zip(order, results)})
        if not fits:
            for i, result in passes[0].items():
                if "svg" in result:
                    fits[i] = page.evaluate(FIT_JS, [finish(result["svg"], todo[i]), WIDE_FONT, MARGIN])
        context.close()
    out, problems = {}, []
    for i, fence in enumerate(todo):
        result = passes[0][i]
        if "error" in result:
            problems.append(str(_error(fence, result["error"])))
        elif passes[1][i].get("svg") != result["svg"]:
            problems.append(f"{fence.where}: rendering diagram {fence.n} twice gave different SVGs; "
                            "the renderer is not deterministic (see render_settings)")
        elif fits[i]["misfits"]:
            labels = "; ".join(f"{m['label']!r} in {m['font']}" for m in fits[i]["misfits"])
            problems.append(f"{fence.where}: labels of Mermaid diagram {fence.n} would cross their node's outline: "
                            f"{labels}. Break the label with <br/> or shorten it, then run `{COMMAND}`.")
        else:
            out[fence.svg] = with_record(finish(result["svg"], fence), fence)
    if problems:
        raise DiagramError("\n".join(problems))
    if todo and not all(f["wideInstalled"] for f in fits.values()):
        log(f"note: {WIDE_FONT} is not installed here, so labels were checked in the site's font only "
            "(Debian: fonts-dejavu-core)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.tooling.diagrams", description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="only these pages (default: every page)")
    parser.add_argument("--check", action="store_true", help="only report missing, stale and orphaned SVGs")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        print("\n".join(found) if found else f"{len(fences())} diagrams, every SVG current")
        return 1 if found else 0
    pages = [p.resolve() for p in args.pages] or None
    todo = fences(pages)
    try:
        rendered = render(todo) if todo else {}
    except DiagramError as exc:
        print(exc, file=sys.stderr)
        return 1
    written = 0
    for path, text in rendered.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written += 1
            print(f"wrote {rel(path)}")
    if pages is None:
        for svg in committed_svgs():
            if svg not in rendered:
                svg.unlink()
                print(f"removed {rel(svg)} (no page has this diagram any more)")
    print(f"{len(rendered)} diagrams rendered, {written} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
