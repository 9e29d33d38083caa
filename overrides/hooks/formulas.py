"""Formulas: every formula is typeset at build time by the vendored KaTeX (run by QuickJS, so no Node.js
is needed). Readers download no math JavaScript and see formulas at once; a formula KaTeX cannot parse
fails the build with the page's name. On Markdown pages pymdownx.arithmatex marks the formulas; in a
notebook's Markdown cells (rendered by nbconvert, which leaves `$…$` and `$$…$$` as text for a browser
script) this module finds them itself, outside code, and removes the math script that mkdocs-jupyter
adds to every notebook page (its `custom_mathjax_url`)."""
import html as htmllib
import os
import re
from functools import lru_cache

from mkdocs.exceptions import PluginError

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


_NB_MARKDOWN = re.compile(r'(<div class="[^"]*jp-RenderedMarkdown[^"]*"[^>]*>)(.*?)(</div>)', re.S)
_CODE = re.compile(r"(<(code|pre)\b.*?</\2>)", re.S)
_NB_MATH = re.compile(r"\$\$(?P<display>.+?)\$\$|(?<![\\$])\$(?P<inline>[^$\n]+?)\$", re.S)


def notebook_math(html, page, docs_dir):
    """Mark the formulas of a notebook's Markdown cells as arithmatex does, then typeset them."""
    def cell(m):
        parts = _CODE.split(m.group(2))
        for i in range(0, len(parts), 3):  # text between code spans; parts[i+1], parts[i+2] are the code
            parts[i] = _NB_MATH.sub(lambda f: f'<div class="arithmatex">\\[{f["display"]}\\]</div>' if f["display"]
                                    else f'<span class="arithmatex">\\({f["inline"]}\\)</span>', parts[i])
        kept = [p for i, p in enumerate(parts) if i % 3 != 2]
        return m.group(1) + "".join(kept) + m.group(3)
    return render_math(_NB_MARKDOWN.sub(cell, html), page, docs_dir)


_NB_MATH_SCRIPTS = re.compile(r'(?:<!-- Load mathjax -->\s*)?<script[^>]*src="[^"]*katex\.min\.js"[^>]*>\s*</script>'
                              r'|(?:<!-- MathJax configuration -->\s*)?<script type="text/x-mathjax-config">.*?</script>',
                              re.S)


def on_page_content(html, page, config, files):
    if page.file.src_uri.endswith(".nb.py"):
        # formulas are typeset here: drop the math script and MathJax configuration nbconvert writes
        return _NB_MATH_SCRIPTS.sub("", notebook_math(html, page, config["docs_dir"]))
    return render_math(html, page, config["docs_dir"])
