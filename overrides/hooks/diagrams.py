"""Diagrams: marks pages that contain a Mermaid diagram, so that overrides/main.html loads the vendored
mermaid.min.js on those pages only."""


def on_page_content(html, page, config, files):
    page.meta["has_mermaid"] = '<pre class="mermaid">' in html
    return html
