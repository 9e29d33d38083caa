"""MkDocs hooks for the book (listed in mkdocs.yml under `hooks:`).

- Marks pages that contain a Mermaid diagram, so that overrides/main.html loads the vendored
  mermaid.min.js on those pages only.
- Removes the Mermaid loader that nbconvert writes into every notebook page: it imports Mermaid
  from cdnjs.cloudflare.com. The book's notebooks have no Mermaid cells; diagrams belong in
  Markdown pages, where the theme renders them with the vendored copy.
"""
import re

_NB_MERMAID = re.compile(
    r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?mermaid.*?</script>',
    re.S,
)


def on_page_content(html, page, config, files):
    page.meta["has_mermaid"] = '<pre class="mermaid">' in html
    return html


def on_post_page(output, page, config):
    return _NB_MERMAID.sub("", output)
