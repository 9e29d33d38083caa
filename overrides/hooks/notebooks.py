"""Notebook pages (docs/<part>/<name>.nb.py, rendered by mkdocs-jupyter, whose internals this module
patches; tests/test_tooling.py pins the version and fails loudly if those internals change).

- Clean addresses: docs/part1/mnist1d_tour.nb.py is served at part1/mnist1d_tour/ (mkdocs-jupyter would use
  part1/mnist1d_tour.nb/). The `.nb.py` suffix only tells notebooks apart from ordinary Python files.
- Chinese-friendly heading anchors, as on Markdown pages (pymdownx.slugs): by default mkdocs-jupyter drops
  every non-ASCII character, so Chinese headings get an empty id and the table of contents links nowhere.
- Links in Markdown cells to other pages ([12.1](reading.md)) are resolved as mkdocs does for Markdown pages.
- Each page is rendered with the outputs committed beside it (docs/<part>/<name>.nb.out.json, written by
  `make outputs` and compared with a real run by the tests): the build runs no code. A notebook whose
  outputs are missing or were made from other code is reported (which fails the strict build) and names
  the command that refreshes them. With BOOK_EXECUTE_NOTEBOOKS=true the build executes notebooks instead
  (`make bench` measures that path); each runs in its own folder, as Jupyter does, so that it can read
  the files beside it.
- The Mermaid loader that nbconvert writes into every notebook page is removed: it imports Mermaid from
  cdnjs.cloudflare.com. The book's notebooks have no Mermaid cells; diagrams belong in Markdown pages.
- The JupyterLab stylesheet nbconvert inlines into every page is pruned to the rules that can apply to
  the page (see prune_styles).
"""
import importlib
import json
import logging
import os
import posixpath
import re

from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.hooks.book")
MKDOCS_JUPYTER_VERSION = "0.26.3"  # the version whose internals are patched below

_NB_MERMAID = re.compile(
    r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?mermaid.*?</script>',
    re.S,
)


def internals_problems():
    """What this module relies on in mkdocs-jupyter and nbconvert that is missing or changed (empty when
    all is as expected). The build refuses to run with a different mkdocs-jupyter."""
    from importlib.metadata import version
    problems = []
    if version("mkdocs-jupyter") != MKDOCS_JUPYTER_VERSION:
        problems.append(f"mkdocs-jupyter is {version('mkdocs-jupyter')}, but overrides/hooks/notebooks.py "
                        f"patches the internals of {MKDOCS_JUPYTER_VERSION}")
    expected = {"mkdocs_jupyter.convert": ["add_anchor_lower_id", "nb2html"],
                "mkdocs_jupyter.plugin": ["_get_markdown_toc"],
                "mkdocs_jupyter.nbconvert2": ["jupytext"],
                "nbconvert.preprocessors": ["ExecutePreprocessor"]}
    for module, names in expected.items():
        mod = importlib.import_module(module)
        problems += [f"{module}.{name} is gone" for name in names if not hasattr(mod, name)]
    return problems


def on_config(config):
    try:
        import markdown
        import mkdocs_jupyter.convert as nb_convert
        import mkdocs_jupyter.plugin as nb_plugin
    except ImportError:  # mkdocs-jupyter not installed: nothing to fix
        return config
    problems = internals_problems()
    if problems:
        raise PluginError("overrides/hooks/notebooks.py: " + "; ".join(problems))
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
    if page.file.src_uri.endswith(".nb.py"):
        html = notebook_links(html, page, files)
    return html


def on_post_page(output, page, config):
    if page.file.src_uri.endswith(".nb.py"):
        output = prune_styles(_NB_MERMAID.sub("", output))
    return output


# ---------------------------------------------------------------- the Jupyter stylesheet, pruned

_PSEUDO = re.compile(r"::?[a-zA-Z-]+(\((?:[^()]|\([^()]*\))*\))?")
_ATTR = re.compile(r"\[[^\]]*\]")
_VAR_USE = re.compile(r"var\(\s*(--[\w-]+)")
_DECL = re.compile(r"(--[\w-]+)\s*:")
_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def css_blocks(css):
    """The top-level (prelude, body) pairs of a stylesheet; statements such as @charset are dropped."""
    out, i, n = [], 0, len(css)
    while i < n:
        j = css.find("{", i)
        if j < 0:
            break
        semi = css.find(";", i)
        if 0 <= semi < j and css[i:semi].strip().startswith("@"):
            i = semi + 1
            continue
        depth, k = 1, j + 1
        while k < n and depth:
            depth += {"{": 1, "}": -1}.get(css[k], 0)
            k += 1
        out.append((css[i:j].strip(), css[j + 1:k - 1]))
        i = k
    return out


def split_top(text, sep):
    """Split at `sep` outside parentheses and quotes (selectors at commas, declarations at semicolons)."""
    parts, depth, quote, current = [], 0, None, []
    for c in text:
        if quote:
            quote = None if c == quote else quote
        elif c in "\"'":
            quote = c
        else:
            depth += {"(": 1, ")": -1}.get(c, 0)
        if c == sep and depth == 0 and not quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def split_decls(body):
    return split_top(body, ";")


def present(html):
    """Class names, ids and element names that occur in a page."""
    classes = {c for m in re.finditer(r'class="([^"]*)"', html) for c in m.group(1).split()}
    ids = set(re.findall(r'id="([^"]*)"', html))
    tags = {t.lower() for t in re.findall(r"<([a-zA-Z][a-zA-Z0-9-]*)", html)}
    return classes, ids, tags


def could_match(selector, classes, ids, tags):
    """False only if the selector names a class, id or element the page does not have. Material's own
    classes (md-*) always count as present: its script adds some at run time (md-typeset__scrollwrap)."""
    simple = _ATTR.sub("", _PSEUDO.sub("", selector))
    return (all(c in classes or c.startswith("md-") for c in re.findall(r"\.([\w-]+)", simple))
            and all(i in ids for i in re.findall(r"#([\w-]+)", simple))
            and all(t.lower() in tags for t in re.findall(r"(?:^|[\s>+~(])([a-zA-Z][\w-]*)", simple)))


_STYLE = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.S)


def prune_styles(html):
    """nbconvert inlines JupyterLab's whole stylesheet (about 570 KB, 85 KB gzipped) into every notebook
    page, although a static page uses a few dozen of its rules. Keep a rule only if every class, id and
    element its selector names occurs in the page (ignoring pseudo-classes and attribute conditions, so
    hover, focus and the dark scheme's [data-md-color-scheme] rules stay), and a custom property only if
    a kept rule uses it (through any chain of var()). Nothing that can apply to the page is removed."""
    classes, ids, tags = present(html)
    styles = [(m, _walk(m.group(2), classes, ids, tags)) for m in _STYLE.finditer(html)]
    defs, used = {}, set()

    def scan(nodes):
        for kind, prelude, body in nodes:
            if kind == "media":
                scan(body)
            elif kind == "rule":
                for d in split_decls(body):
                    m = _DECL.match(d)
                    if m:
                        defs.setdefault(m.group(1), []).append(d)
                    else:
                        used.update(_VAR_USE.findall(d))
    for _, tree in styles:
        scan(tree)
    frontier = list(used)
    while frontier:
        for d in defs.get(frontier.pop(), []):
            for w in _VAR_USE.findall(d):
                if w not in used:
                    used.add(w)
                    frontier.append(w)

    def emit(nodes):
        out = []
        for kind, prelude, body in nodes:
            if kind == "media":
                inner = emit(body)
                if inner:
                    out.append(f"{prelude}{{{inner}}}")
            elif kind == "at":
                out.append(f"{prelude}{{{body}}}")
            else:
                decls = [d for d in split_decls(body) if not ((m := _DECL.match(d)) and m.group(1) not in used)]
                if decls:
                    out.append(f"{prelude}{{{';'.join(decls)}}}")
        return "".join(out)

    pieces, last = [], 0
    for m, tree in styles:
        pieces += [html[last:m.start()], *( [m.group(1), emit(tree), m.group(3)] if emit(tree) else [])]
        last = m.end()
    return "".join(pieces) + html[last:]


def _walk(css, classes, ids, tags):
    out = []
    for prelude, body in css_blocks(_COMMENT.sub("", css)):
        if prelude.startswith(("@media", "@supports")):
            inner = _walk(body, classes, ids, tags)
            if inner:
                out.append(("media", prelude, inner))
        elif prelude.startswith("@"):
            out.append(("at", prelude, body))
        else:
            sels = [s for s in split_top(prelude, ",") if could_match(s, classes, ids, tags)]
            if sels:
                out.append(("rule", ",".join(sels), body))
    return out
