"""MkDocs hooks for the book (listed in mkdocs.yml under `hooks:`).

- Marks pages that contain a Mermaid diagram, so that overrides/main.html loads the vendored
  mermaid.min.js on those pages only.
- Gives notebook pages clean addresses: docs/part1/mnist1d_tour.nb.py is served at part1/mnist1d_tour/
  (mkdocs-jupyter would use part1/mnist1d_tour.nb/). The `.nb.py` suffix only tells notebooks apart
  from ordinary Python files.
- Removes the Mermaid loader that nbconvert writes into every notebook page: it imports Mermaid
  from cdnjs.cloudflare.com. The book's notebooks have no Mermaid cells; diagrams belong in
  Markdown pages, where the theme renders them with the vendored copy.
"""
import os
import re

_NB_MERMAID = re.compile(
    r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?mermaid.*?</script>',
    re.S,
)


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
    return _NB_MERMAID.sub("", output)
