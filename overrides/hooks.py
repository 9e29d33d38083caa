"""MkDocs hooks for the book (listed in mkdocs.yml under `hooks:`).

- Marks pages that contain a Mermaid diagram, so that overrides/main.html loads the vendored
  mermaid.min.js on those pages only.
- Gives notebook pages clean addresses: docs/part1/mnist1d_tour.nb.py is served at part1/mnist1d_tour/
  (mkdocs-jupyter would use part1/mnist1d_tour.nb/). The `.nb.py` suffix only tells notebooks apart
  from ordinary Python files.
- Gives notebook headings the same Chinese-friendly anchors as Markdown pages (pymdownx.slugs): by
  default mkdocs-jupyter drops every non-ASCII character, so Chinese headings get an empty id and the
  table of contents links nowhere.
- Makes the notebook's math script address (mkdocs-jupyter's `custom_mathjax_url`, our local KaTeX)
  relative to each page, so it works in both editions (directory URLs online, .html files offline).
- Offline edition: loads the iframe-worker shim (search from file://) from the vendored copy instead of
  the unpkg.com address Material's offline plugin adds.
- Rewrites the search index with UTF-8 characters instead of backslash-u escapes: the same index, a third
  smaller for Chinese text (every reader downloads it on every page).
- Typesets every formula at build time with the vendored KaTeX (run by QuickJS, so no Node.js is
  needed): readers download no math JavaScript and see formulas at once, and a formula KaTeX cannot
  parse fails the build with the page's name. Notebook pages keep KaTeX in the browser (their
  Markdown cells are rendered by nbconvert, not by pymdownx.arithmatex).
- Resolves links in notebooks' Markdown cells to other pages ([12.1](reading.md)), as mkdocs does for
  Markdown pages.
- Renders each notebook page with the outputs committed beside it (docs/<part>/<name>.nb.out.json,
  written by `make outputs` and compared with a real run by the tests): the build runs no code. A
  notebook whose outputs are missing or were made from other code is reported (which fails the strict
  build) and names the command that refreshes them. With BOOK_EXECUTE_NOTEBOOKS=true the build executes
  notebooks instead, as it used to (`make bench` measures that path); each runs in its own folder, as
  Jupyter does, so that it can read the files beside it.
- Removes the Mermaid loader that nbconvert writes into every notebook page: it imports Mermaid
  from cdnjs.cloudflare.com. The book's notebooks have no Mermaid cells; diagrams belong in
  Markdown pages, where the theme renders them with the vendored copy.
"""
import html as htmllib
import importlib
import json
import logging
import os
import posixpath
import re
from functools import lru_cache

from mkdocs.exceptions import PluginError
from mkdocs.utils import get_relative_url

IFRAME_WORKER = "assets/vendor/iframe-worker/index.js"
log = logging.getLogger("mkdocs.hooks.book")

_NB_MERMAID = re.compile(
    r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?mermaid.*?</script>',
    re.S,
)


def on_config(config):
    polyfills = config.extra.get("polyfills")
    if polyfills:  # set by Material's offline plugin, which runs before this hook
        config.extra["polyfills"] = [IFRAME_WORKER if "iframe-worker" in str(p) else p for p in polyfills]
    try:
        import markdown
        import mkdocs_jupyter.convert as nb_convert
        import mkdocs_jupyter.plugin as nb_plugin
    except ImportError:  # mkdocs-jupyter not installed: nothing to fix
        return config
    from defusedxml import ElementTree
    from markdown.extensions.toc import TocExtension
    from nbconvert.filters.strings import html2text
    from pymdownx.slugs import slugify

    slug = slugify(case="lower")

    def add_anchor(html, anchor_link_text="¶"):
        try:
            heading = ElementTree.fromstring(html)
        except Exception:
            return html
        anchor = slug(html2text(heading), "-")
        heading.set("id", anchor)
        link = ElementTree.fromstring(f'<a class="anchor-link" href="#{anchor}"></a>')
        link.text = anchor_link_text
        heading.append(link)
        return ElementTree.tostring(heading).decode("utf-8", "replace")

    def markdown_toc(markdown_source, toc_depth):
        md = markdown.Markdown(extensions=[TocExtension(toc_depth=toc_depth, slugify=slug)])
        md.convert(markdown_source)
        return md.toc_tokens

    nb_convert.add_anchor_lower_id = add_anchor
    nb_plugin._get_markdown_toc = markdown_toc
    _patch_notebooks(nb_convert)
    return config


def _patch_notebooks(nb_convert):
    """Execute each notebook with its own folder as the working directory, as Jupyter does (mkdocs-jupyter
    leaves the kernel in the directory mkdocs was started from), so that a notebook can read the files
    beside it: the reproduction case studies read their results from results/ next to the page."""
    from nbconvert.preprocessors import ExecutePreprocessor

    if getattr(nb_convert.nb2html, "_book_patched", False):  # `mkdocs serve` runs on_config on every rebuild
        return
    real_nb2html, real_preprocess = nb_convert.nb2html, ExecutePreprocessor.preprocess
    current = {}

    def nb2html(nb_path, *args, **kwargs):
        current["folder"] = os.path.dirname(os.path.abspath(nb_path))
        current["execute"] = kwargs.get("execute", False)
        if current["execute"] and os.environ.get("BOOK_HARNESS_LOG"):  # counted by `make bench`
            with open(os.environ["BOOK_HARNESS_LOG"], "a", encoding="utf-8") as f:
                f.write(json.dumps({"unit": os.path.relpath(nb_path), "kind": "notebook", "device": "cpu",
                                    "how": "build"}) + "\n")
        try:
            return real_nb2html(nb_path, *args, **kwargs)
        finally:
            current.clear()

    def preprocess(self, nb, resources=None, km=None):
        # nbconvert's resources are a defaultdict (ResourcesDict) that later preprocessors rely on: edit in place
        if "folder" in current and resources is not None and not resources["metadata"].get("path"):
            resources["metadata"]["path"] = current["folder"]
        return real_preprocess(self, nb, resources, km)

    nb2html._book_patched = True
    nb_convert.nb2html, ExecutePreprocessor.preprocess = nb2html, preprocess
    nbconvert2 = importlib.import_module("mkdocs_jupyter.nbconvert2")
    nbconvert2.jupytext = _JupytextWithOutputs(nbconvert2.jupytext, current)


class _JupytextWithOutputs:
    """Stands in for the jupytext module inside mkdocs-jupyter: a notebook that is not being executed is
    read with its committed outputs."""

    def __init__(self, jupytext, current):
        self._jupytext, self._current = jupytext, current

    def __getattr__(self, name):
        return getattr(self._jupytext, name)

    def read(self, nb_path, *args, **kwargs):
        nb = self._jupytext.read(nb_path, *args, **kwargs)
        if not self._current.get("execute"):
            attach_outputs(nb, nb_path)
        return nb


def attach_outputs(nb, nb_path):
    """Put the committed outputs (<name>.nb.out.json) into the code cells they were made from."""
    import nbformat

    path = str(nb_path)[: -len(".py")] + ".out.json"
    name = os.path.relpath(nb_path)
    if not os.path.isfile(path):
        log.warning(f"{name}: no outputs ({os.path.relpath(path)} is missing); run `make outputs FILES={name}`")
        return nb
    with open(path, encoding="utf-8") as f:
        stored = json.load(f)["cells"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    stale = len(code) != len(stored)
    for i, (cell, kept) in enumerate(zip(code, stored)):
        if cell.source.rstrip("\n") != kept["source"].rstrip("\n"):
            stale = True
            continue
        cell.outputs = [nbformat.from_dict(o) for o in kept["outputs"]]
        cell.execution_count = i + 1
    if stale:
        log.warning(f"{name}: its committed outputs were made from other code; run `make outputs FILES={name}`")
    return nb


def on_files(files, config):
    for f in files:
        if f.src_uri.endswith(".nb.py") and f.is_documentation_page():
            f.dest_path = f.dest_path.replace(".nb/", "/").replace(".nb.html", ".html")
            f.abs_dest_path = os.path.normpath(os.path.join(config["site_dir"], f.dest_path))
            f.url = f.url.replace(".nb/", "/").replace(".nb.html", ".html")
    return files


_ARITHMATEX = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)


@lru_cache(maxsize=None)
def _katex(docs_dir):
    import quickjs
    ctx = quickjs.Context()
    ctx.eval("var window = globalThis, self = globalThis;")
    with open(os.path.join(docs_dir, "assets", "vendor", "katex", "katex.min.js"), encoding="utf-8") as f:
        ctx.eval(f.read())
    # strict "error": Chinese inside math must go through \text{...} (style guide), or KaTeX refuses
    return ctx.eval("(tex, display) => katex.renderToString(tex, {displayMode: display, throwOnError: true, strict: 'error'})")


def render_math(html, page, docs_dir):
    def typeset(m):
        tag, body = m.group(1), htmllib.unescape(m.group(2).strip())
        display = tag == "div"
        tex = body[2:-2] if body[:2] in ("\\(", "\\[") else body
        try:
            out = _katex(docs_dir)(tex.strip(), display)
        except Exception as exc:
            raise PluginError(f"{page.file.src_uri}: KaTeX cannot typeset {tex.strip()[:80]!r}: "
                              f"{str(exc).splitlines()[0]}") from None
        return f'<{tag} class="arithmatex">{out}</{tag}>'
    return _ARITHMATEX.sub(typeset, html)


_NB_LINK = re.compile(r'href="(?P<path>[^":#?]+?\.(?:md|nb\.py))(?P<anchor>#[^"]*)?"')


def notebook_links(html, page, files):
    """Links in a notebook's Markdown cells use the same syntax as Markdown pages, [12.1](reading.md);
    mkdocs only rewrites those in Markdown pages, so do it here (for both editions: directory URLs online,
    .html files offline). A link to a page that does not exist fails the build naming the notebook."""
    def fix(m):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), m["path"]))
        linked = files.get_file_from_path(target)
        if linked is None:
            raise PluginError(f"{page.file.src_uri}: the link to '{m['path']}' does not resolve to a page")
        return f'href="{linked.url_relative_to(page.file)}{m["anchor"] or ""}"'
    return _NB_LINK.sub(fix, html)


def on_page_content(html, page, config, files):
    page.meta["has_mermaid"] = '<pre class="mermaid">' in html
    if page.file.src_uri.endswith(".nb.py"):
        html = notebook_links(html, page, files)
    return render_math(html, page, config["docs_dir"])


def on_post_page(output, page, config):
    if page.file.src_uri.endswith(".nb.py"):
        output = _NB_MERMAID.sub("", output)
        math = config["plugins"]["mkdocs-jupyter"].config["custom_mathjax_url"]
        output = output.replace(f'<script src="{math}">', f'<script src="{get_relative_url(math, page.url)}">')
    return output


def on_post_build(config):
    index = os.path.join(config["site_dir"], "search", "search_index.json")
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            data = json.load(f)
        with open(index, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
