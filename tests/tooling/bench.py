"""Benchmark table (`make bench`): test-suite wall time, the 10 slowest snippets, `mkdocs build` time,
built site size and the heaviest page. Speed and size targets live here, never in timed tests.

    python -m tests.tooling.bench [--skip-tests]
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

from tests.tooling.book import ROOT


def run_tests(junit: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", f"--junitxml={junit}"], cwd=ROOT,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary = next((line for line in reversed(proc.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "?")
    return seconds, summary.strip("= ")


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


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tests", action="store_true", help="only the build and size rows")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if not args.skip_tests:
            junit = tmp_path / "junit.xml"
            seconds, summary = run_tests(junit)
            rows.append(("test suite wall time", f"{seconds:.1f} s ({summary})"))
            for name, secs in slowest_snippets(junit):
                rows.append((f"snippet {name}", f"{secs:.2f} s"))
        site = tmp_path / "site"
        rows.append(("mkdocs build --strict", f"{build(site):.1f} s"))
        size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
        rows.append(("built site size", f"{size / 1e6:.2f} MB in {sum(1 for _ in site.rglob('*'))} files"))
        weights = sorted(((page_weight(site, p), p) for p in site.rglob("index.html")), reverse=True)
        heaviest, page = weights[0]
        rows.append(("heaviest page (HTML + direct assets)", f"{heaviest / 1e3:.0f} KB: /{page.parent.relative_to(site).as_posix()}/"))
    print(table(rows))


if __name__ == "__main__":
    main()
