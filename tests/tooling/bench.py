"""Benchmark tables (`make bench`): the test harness before and after its fast paths (harnessbench.py),
the 10 slowest snippets, `mkdocs build` time,
built site size and the heaviest page; then, for every page in Chromium on 127.0.0.1, the bytes
transferred (gzip, as GitHub Pages serves them) and the milliseconds until formulas and diagrams are
rendered (median of 5 cold loads), against the targets. Speed and size targets live here, never in
timed tests.

    python -m tests.tooling.bench [--skip-tests] [--skip-pages]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.tooling.sources import ROOT, notebook_files, page_files, rel

TARGET_BYTES = 600_000   # a text-and-formula page, everything it transfers
TARGET_MS = 500          # until every formula and diagram is rendered
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


def page_speed(site: Path, loads: int = 5) -> list[tuple[str, ...]]:
    """One row per page: kind, KB transferred, ms until rendered (medians of `loads` cold loads)."""
    import statistics

    from playwright.sync_api import sync_playwright

    from tests.tooling.browser import CHROMIUM_ARGS, OPEN_SHADOW_ROOTS, RENDERED, chromium_executable, page_url
    from tests.tooling.siteserver import serve

    rows = []
    with serve(site, compress=True) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        for source in page_files() + notebook_files():
            sizes, times, diagram = [], [], False
            for _ in range(loads):
                context = browser.new_context()  # a fresh context: nothing cached
                context.add_init_script(OPEN_SHADOW_ROOTS)
                page = context.new_page()
                finished = []
                page.on("requestfinished", lambda request: finished.append(request))
                page.goto(base + page_url(source))
                page.wait_for_function(RENDERED, polling="raf", timeout=30000)
                times.append(page.evaluate("performance.now()"))
                diagram = page.evaluate("document.querySelectorAll('.mermaid').length > 0")
                page.wait_for_load_state("networkidle")
                sizes.append(sum(r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"] for r in finished))
                context.close()
            kb, ms = statistics.median(sizes) / 1e3, statistics.median(times)
            kind = "diagrams" if diagram else "text+formulas"
            size_ok = "yes" if kb * 1e3 < TARGET_BYTES else ("no" if not diagram else "no (Mermaid)")
            time_ok = "yes" if ms < TARGET_MS else "no"
            rows.append((rel(source), kind, f"{kb:.0f}", size_ok, f"{ms:.0f}", time_ok))
        browser.close()
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
            speed = page_speed(site)
    shots = sorted(SCREENSHOTS.glob("*.png")) if SCREENSHOTS.is_dir() else []
    rows.append(("screenshots (written by the browser tests)",
                 f"{SCREENSHOTS.relative_to(ROOT)}/: " + (", ".join(p.name for p in shots) or "none yet")))
    if harness:
        print("Test harness: before = fresh interpreter per run, no sharing, no cache, one process, builds "
              "executing notebooks; after = the fast paths (see tests/tooling/harnessbench.py)\n")
        print(markdown_table(("measure", "before", "after", "target"), harness) + "\n")
    print(table(rows))
    if speed:
        print(f"\nPages in Chromium, served with gzip on 127.0.0.1; medians of 5 cold loads. Targets for a "
              f"text-and-formula page: < {TARGET_BYTES // 1000} KB transferred, rendered < {TARGET_MS} ms.\n")
        print(markdown_table(("page", "kind", "KB transferred", "< 600 KB", "ms to rendered", "< 500 ms"), speed))


if __name__ == "__main__":
    main()
