"""Benchmark tables (`make bench`): the test harness before and after its fast paths (harnessbench.py),
the 10 slowest snippets, `mkdocs build` time,
built site size and the heaviest page; then, for every page in Chromium on 127.0.0.1, the bytes
transferred (gzip, as GitHub Pages serves them) and the milliseconds until formulas and diagrams are
rendered (median of 5 cold loads), each also as a ratio to the page's **reference**: the same theme and
configuration serving a page of the same text with no formulas, diagrams or code, built in the same run
and measured the same way. Absolute times on a shared machine are noise; the ratios are the targets.
Speed and size targets live here, never in timed tests.

    python -m tests.tooling.bench [--skip-tests] [--skip-pages]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.tooling.sources import ROOT, notebook_files, page_files, rel

TARGET_BYTES = 600_000   # every page, everything it transfers on a first (cold) load
TARGET_RATIO = 1.3       # bytes of a page / bytes of its reference; median render time / the reference's
SCREENSHOTS = ROOT / ".bench" / "screenshots"


def slowest_snippets(junit: Path, n: int = 10) -> list[tuple[str, float]]:
    rows = []
    for case in ET.parse(junit).iter("testcase"):
        m = re.match(r"test_snippet\[(.+)-(cpu|cuda)\]", case.get("name", ""))
        if m and case.find("skipped") is None:
            rows.append((f"{m.group(1)} ({m.group(2)})", float(case.get("time", 0))))
    return sorted(rows, key=lambda r: -r[1])[:n]


def build(site: Path) -> float:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", CUDA_VISIBLE_DEVICES="")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                   env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def page_weight(site: Path, html: Path) -> int:
    """Bytes of a page plus the same-site scripts, styles and images it references directly."""
    text = html.read_text(encoding="utf-8", errors="replace")
    total = len(text.encode())
    for ref in set(re.findall(r'(?:src|href)="([^"#?]+\.(?:js|css|svg|png|woff2))"', text)):
        if "://" in ref:
            continue
        target = (html.parent / ref).resolve()
        if target.is_file():
            total += target.stat().st_size
    return total


def reference_site(tmp: Path) -> Path:
    """Build the reference pages: for each page of the book, a Markdown page at the same address with the
    same title, the same prose (tooling/prose.py) and the same figures (a notebook's figures as image
    files), but no formulas, diagrams or code, served by the same theme, configuration and assets."""
    import base64

    from tests.tooling.outputs import read_notebook_outputs
    from tests.tooling.prose import prose
    from tests.tooling.sources import DOCS, FIGURE_DIR, NOTEBOOK_SUFFIX, output_file

    docs = tmp / "reference-docs"
    shutil.copytree(DOCS / "assets", docs / "assets")
    for figures in DOCS.glob(f"*/{FIGURE_DIR}"):
        shutil.copytree(figures, docs / figures.relative_to(DOCS))
    math = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
    for source in page_files() + notebook_files():
        lines = [text for _, text in prose(source, links=True)]
        text = math.sub("", "\n".join(lines))
        text = re.sub(r"^\s*\$\$.*?^\s*\$\$\s*$", "", text, flags=re.S | re.M)  # display math over several lines
        text = re.sub(r"^\s*\\(?:begin|end)\{.*$|^.*\\\\\s*$", "", text, flags=re.M)
        target = docs / source.relative_to(DOCS)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.name.endswith(NOTEBOOK_SUFFIX):
            target = target.with_name(source.name[: -len(NOTEBOOK_SUFFIX)] + ".md")
            outputs = [o for cell in read_notebook_outputs(output_file(source)) for o in cell["outputs"]]
            for n, image in enumerate(o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})):
                name = f"{target.stem}-figure-{n}.png"
                (target.parent / name).write_bytes(base64.b64decode("".join(image)))
                text += f"\n\n![]({name})"
        target.write_text(text + "\n", encoding="utf-8")
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").replace(NOTEBOOK_SUFFIX, ".md")
    config = re.sub(r"^exclude_docs:.*?(?=^\S)", "", config, flags=re.S | re.M)
    config += f"\ndocs_dir: {docs}\n"
    yml = ROOT / ".bench" / "reference.yml"  # beside mkdocs.yml's folder depth, so relative paths resolve
    yml.parent.mkdir(exist_ok=True)
    yml.write_text(config.replace("custom_dir: overrides", f"custom_dir: {ROOT / 'overrides'}")
                   .replace("  - overrides/hooks/", f"  - {ROOT}/overrides/hooks/")
                   .replace("\n  - snippets\n  - overrides\n", f"\n  - {ROOT / 'snippets'}\n  - {ROOT / 'overrides'}\n"),
                   encoding="utf-8")
    site = tmp / "reference-site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(yml), "--site-dir", str(site)], cwd=ROOT,
                   env=env, check=True, capture_output=True)
    return site


def page_speed(site: Path, loads: int = 5) -> dict[str, tuple[float, float, str]]:
    """Per page: (KB transferred, ms until rendered, kind), medians of `loads` cold loads, and whether it
    requested a diagram or math script."""
    import statistics

    from playwright.sync_api import sync_playwright

    from tests.tooling.browser import CHROMIUM_ARGS, OPEN_SHADOW_ROOTS, RENDERED, chromium_executable, page_url
    from tests.tooling.siteserver import serve

    found = {}
    with serve(site, compress=True) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        for source in page_files() + notebook_files():
            sizes, times, scripts = [], [], set()
            for _ in range(loads):
                context = browser.new_context()  # a fresh context: nothing cached
                context.add_init_script(OPEN_SHADOW_ROOTS)
                page = context.new_page()
                finished = []
                page.on("requestfinished", lambda request: finished.append(request))
                page.goto(base + page_url(source))
                page.wait_for_function(RENDERED, polling="raf", timeout=30000)
                times.append(page.evaluate("performance.now()"))
                page.wait_for_load_state("networkidle")
                sizes.append(sum(r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"] for r in finished))
                scripts |= {Path(r.url).name for r in finished
                            if re.search(r"(mermaid|katex|auto-render|math)[^/]*\.js$", r.url)}
                context.close()
            found[rel(source)] = (statistics.median(sizes) / 1e3, statistics.median(times), " ".join(sorted(scripts)))
        browser.close()
    return found


def page_table(book: dict, reference: dict) -> list[tuple[str, ...]]:
    rows = []
    for name, (kb, ms, scripts) in book.items():
        ref_kb, ref_ms, _ = reference[name]
        ok = kb * 1e3 <= TARGET_BYTES and kb / ref_kb <= TARGET_RATIO and (not scripts or name.endswith(".nb.py"))
        rows.append((name, f"{kb:.0f}", f"{ref_kb:.0f}", f"{kb / ref_kb:.2f}", f"{ms:.0f}", f"{ref_ms:.0f}",
                     f"{ms / ref_ms:.2f}", scripts or "none", "yes" if ok else "no"))
    return rows


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tests", action="store_true", help="do not run the test suite")
    parser.add_argument("--skip-pages", action="store_true", help="do not measure pages in Chromium")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    speed: list[tuple[str, ...]] = []
    harness: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if not args.skip_tests:
            from tests.tooling.harnessbench import harness_table
            harness, junit = harness_table(tmp_path)
            for name, secs in slowest_snippets(junit):
                rows.append((f"snippet {name}", f"{secs:.2f} s"))
        site = tmp_path / "site"
        rows.append(("mkdocs build --strict", f"{build(site):.1f} s"))
        size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
        rows.append(("built site size", f"{size / 1e6:.2f} MB in {sum(1 for _ in site.rglob('*'))} files"))
        weights = sorted(((page_weight(site, p), p) for p in site.rglob("index.html")), reverse=True)
        heaviest, page = weights[0]
        rows.append(("heaviest page (HTML + direct assets)", f"{heaviest / 1e3:.0f} KB: /{page.parent.relative_to(site).as_posix()}/"))
        if not args.skip_pages:
            book = page_speed(site)
            reference = page_speed(reference_site(tmp_path))
            speed = page_table(book, reference)
    shots = sorted(SCREENSHOTS.glob("*.png")) if SCREENSHOTS.is_dir() else []
    rows.append(("screenshots (written by the browser tests)",
                 f"{SCREENSHOTS.relative_to(ROOT)}/: " + (", ".join(p.name for p in shots) or "none yet")))
    if harness:
        print("Test harness: before = fresh interpreter per run, no sharing, no cache, one process, builds "
              "executing notebooks; after = the fast paths (see tests/tooling/harnessbench.py)\n")
        print(markdown_table(("measure", "before", "after", "target"), harness) + "\n")
    print(table(rows))
    if speed:
        import statistics
        ratios = [float(r[6]) for r in speed]
        print(f"\nPages in Chromium, served with gzip on 127.0.0.1; medians of 5 cold loads. ref = the same "
              f"text with no formulas, diagrams or code, same theme, built and measured in this run. Targets: "
              f"every page <= {TARGET_BYTES // 1000} KB and <= {TARGET_RATIO}x its reference's bytes; median "
              f"render-time ratio <= {TARGET_RATIO} (this run: {statistics.median(ratios):.2f}); no diagram or "
              f"math script (notebook pages excepted).\n")
        print(markdown_table(("page", "KB", "ref KB", "KB ratio", "ms", "ref ms", "ms ratio", "scripts loaded",
                              "meets targets"), speed))


if __name__ == "__main__":
    main()
