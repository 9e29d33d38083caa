"""Diagrams: every ```mermaid fence is shipped as the SVG that `make diagrams` rendered from it ahead of
time (tests/tooling/diagrams.py, with the vendored Mermaid in headless Chromium) and committed beside the
page as docs/<part>/diagrams/<page>-<n>.svg, the page's n-th fence. Readers download no diagram script:
the build replaces each <pre class="mermaid"> with that SVG inline, in a <div class="diagram">, so its text
is text (selectable, searchable) and no `.mermaid` element is left for Material to load Mermaid for.

Each SVG opens with a comment recording the sha256 of the fence source it was made from. A fence without
its SVG, or whose SVG was made from other source, fails the build naming the page, the fence's line and
`make diagrams`. This module is the contract between the build and the renderer: where a diagram's SVG
lives, how its source is hashed and read back; tests/tooling/diagrams.py uses the same functions."""
import hashlib
import html as htmllib
import os
import re

from mkdocs.exceptions import PluginError

DIAGRAM_DIR = "diagrams"
COMMAND = "make diagrams"
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*\{?[ \t]*\.?(?P<info>[^\s`{}]*)")
_PRE = re.compile(r'<pre class="mermaid"><code>(.*?)</code></pre>', re.S)
_RECORDED = re.compile(r"^<!--.*?source-sha256: (?P<source>[0-9a-f]{64})\b.*?-->\s*", re.S)

_fences = {}  # page src_uri -> [(line, source hash)], filled by on_page_markdown


def normalize(source):
    """The fence source as both sides see it: tabs expanded and line ends stripped as Python-Markdown
    does, no blank lines around it (superfences keeps a trailing one, the Markdown file has none)."""
    lines = [line.expandtabs(4).rstrip() for line in source.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def source_hash(source):
    return hashlib.sha256(normalize(source).encode("utf-8")).hexdigest()


def mermaid_fences(markdown):
    """[(line, source)] of the ```mermaid fences in a Markdown text, lines counted from 1 in that text.
    Fences inside other fences (a ````markdown example showing a Mermaid fence) are not diagrams."""
    found, lines, i = [], markdown.replace("\r\n", "\n").split("\n"), 0
    while i < len(lines):
        m = _OPEN.match(lines[i].expandtabs(4))
        if not m:
            i += 1
            continue
        indent, fence = len(m.group("indent")), m.group("fence")
        close = re.compile(r"^ {0,%d}%s%s*[ \t]*$" % (indent + 3, re.escape(fence), re.escape(fence[0])))
        body, j = [], i + 1
        while j < len(lines) and not close.match(lines[j].expandtabs(4)):
            line = lines[j].expandtabs(4)
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            j += 1
        if m.group("info").lower() == "mermaid":
            found.append((i + 1, "\n".join(body)))
        i = j + 1
    return found


def svg_path(page_path, n):
    """docs/<part>/diagrams/<stem>-<n>.svg: the SVG of the n-th (from 1) Mermaid fence of a page."""
    folder, name = os.path.split(page_path)
    return os.path.join(folder, DIAGRAM_DIR, f"{os.path.splitext(name)[0]}-{n}.svg")


def diagram_id(page_path, n):
    """The SVG's id (Mermaid scopes the diagram's styles by it): unique within the page."""
    return f"diagram-{re.sub(r'[^A-Za-z0-9_-]', '-', os.path.splitext(os.path.basename(page_path))[0])}-{n}"


def recorded_hash(svg_text):
    """The source hash an SVG records in its opening comment (None if it records none)."""
    m = _RECORDED.match(svg_text)
    return m.group("source") if m else None


def inline_svg(svg_text):
    """The SVG element alone, as it goes into the page (the opening comment stays in the file)."""
    return svg_text[_RECORDED.match(svg_text).end():].strip() if _RECORDED.match(svg_text) else svg_text.strip()


def inline_diagrams(html, src_path, src_uri, fences):
    """Replace each <pre class="mermaid"> in a page's HTML with its committed SVG, or fail naming the fence."""
    found = _PRE.findall(html)
    if len(found) != len(fences):
        raise PluginError(f"{src_uri}: the page has {len(fences)} ```mermaid fences but its HTML "
                          f"{len(found)} Mermaid diagrams (a fence inside an include or a notebook is not supported)")
    pieces = iter(range(1, len(found) + 1))

    def replace(m):
        n = next(pieces)
        line, expected = fences[n - 1]
        where = f"{src_uri}:{line}"
        if source_hash(htmllib.unescape(m.group(1))) != expected:
            raise PluginError(f"{where}: Mermaid diagram {n} in the HTML is not the page's fence {n}")
        path = svg_path(src_path, n)
        shown = os.path.relpath(path)
        if not os.path.isfile(path):
            raise PluginError(f"{where}: Mermaid diagram {n} has no rendered SVG ({shown} is missing); "
                              f"run `{COMMAND}` and commit the SVG")
        with open(path, encoding="utf-8") as f:
            svg = f.read()
        if recorded_hash(svg) != expected:
            raise PluginError(f"{where}: {shown} was rendered from other source than Mermaid diagram {n} "
                              f"(stale); run `{COMMAND}` and commit the SVG")
        return f'<div class="diagram">{inline_svg(svg)}</div>'
    return _PRE.sub(replace, html)


def on_page_markdown(markdown, page, config, files):
    """Record the page's fences with their lines in the source file (front matter included)."""
    source = getattr(page.file, "content_string", None)
    if source is None:
        with open(page.file.abs_src_path, encoding="utf-8-sig") as f:
            source = f.read()
    _fences[page.file.src_uri] = [(line, source_hash(text)) for line, text in mermaid_fences(source)]
    return markdown


def on_page_content(html, page, config, files):
    fences = _fences.get(page.file.src_uri, [])
    if not fences and '<pre class="mermaid">' not in html:
        return html
    return inline_diagrams(html, page.file.abs_src_path, page.file.src_uri, fences)
