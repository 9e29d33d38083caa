"""Search and the offline edition.

- The offline edition loads the iframe-worker shim (search from file://) from the vendored copy instead of
  the unpkg.com address Material's offline plugin adds.
- The search index is rewritten with UTF-8 characters instead of backslash-u escapes: the same index, a
  third smaller for Chinese text."""
import json
import os

IFRAME_WORKER = "assets/vendor/iframe-worker/index.js"


def on_config(config):
    polyfills = config.extra.get("polyfills")
    if polyfills:  # set by Material's offline plugin, which runs before this hook
        config.extra["polyfills"] = [IFRAME_WORKER if "iframe-worker" in str(p) else p for p in polyfills]
    return config


def compact_index(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))


def on_post_build(config):
    index = os.path.join(config["site_dir"], "search", "search_index.json")
    if os.path.isfile(index):
        compact_index(index)
