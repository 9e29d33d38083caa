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
- Removes the Mermaid loader that nbconvert writes into every notebook page: it imports Mermaid
  from cdnjs.cloudflare.com. The book's notebooks have no Mermaid cells; diagrams belong in
  Markdown pages, where the theme renders them with the vendored copy.
"""
import json
import os
import re

from mkdocs.utils import get_relative_url

IFRAME_WORKER = "assets/vendor/iframe-worker/index.js"

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
    return config


def on_files(files, config):
    for f in files:
        if f.src_uri.endswith(".nb.py") and f.is_documentation_page():
            f.dest_path = f.dest_path.replace(".nb/", "/").replace(".nb.html", ".html")
            f.abs_dest_path = os.path.normpath(os.path.join(config["site_dir"], f.dest_path))
            f.url = f.url.replace(".nb/", "/").replace(".nb.html", ".html")
    return files


def on_page_content(html, page, config, files):
    page.meta["has_mermaid"] = '<pre class="mermaid">' in html
    return html


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
