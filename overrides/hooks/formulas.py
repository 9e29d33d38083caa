"""Formulas: every formula is typeset at build time by the vendored KaTeX (run by QuickJS, so no Node.js
is needed). Readers download no math JavaScript and see formulas at once; a formula KaTeX cannot parse
fails the build with the page's name. Notebook pages keep KaTeX in the browser (their Markdown cells are
rendered by nbconvert, not by pymdownx.arithmatex): their math script address (mkdocs-jupyter's
`custom_mathjax_url`, our local KaTeX) is made relative to each page, so that it works in both editions
(directory URLs online, .html files offline)."""
import html as htmllib
import os
import re
from functools import lru_cache

from mkdocs.exceptions import PluginError
from mkdocs.utils import get_relative_url

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


def notebook_math_script(output, page, config):
    """Point a notebook page's KaTeX script at the vendored copy, relative to the page."""
    math = config["plugins"]["mkdocs-jupyter"].config["custom_mathjax_url"]
    return output.replace(f'<script src="{math}">', f'<script src="{get_relative_url(math, page.url)}">')


def on_page_content(html, page, config, files):
    return render_math(html, page, config["docs_dir"])


def on_post_page(output, page, config):
    if page.file.src_uri.endswith(".nb.py"):
        output = notebook_math_script(output, page, config)
    return output
