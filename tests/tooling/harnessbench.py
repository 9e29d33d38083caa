"""The harness table of `make bench`: the test suite through today's fast paths against the path the
harness used to take, on the same sources, in one run on one machine.

- before: every run in a fresh interpreter, every page run on its own, no cache, one process, and the
  strict and offline builds executing every notebook (BOOK_FRESH=1 BOOK_NO_CACHE=1
  BOOK_EXECUTE_NOTEBOOKS=true pytest -p no:xdist);
- after, cold: the fork server, shared runs, notebooks executed once, all cores, no cache
  (BOOK_NO_CACHE=1 pytest -n auto), which is what CI runs;
- after, warm: the local cache filled by a first run, then one page edited (a sentence of prose appended
  and removed afterwards): what a contributor waits for after an edit. The table checks that the edited
  page's code really ran again.

Every run the harness makes is logged (BOOK_HARNESS_LOG, see execution.log_run): executions per source and
device, notebook executions, the harness's own overhead per run (wall time minus the code's own time) and
the CPU time of each part's code come from those logs.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from tests.tooling.runs import unit_of_page
from tests.tooling.sources import ROOT, notebook_files, page_files, rel, snippet_files

CI_LIMIT_S = 90 * 60
BOOK_PAGES = 90          # the size the syllabus plans for


def _pytest(log: Path, env: dict[str, str], args: list[str], junit: Path | None = None) -> tuple[float, str]:
    log.unlink(missing_ok=True)
    env = dict(os.environ) | env | {"BOOK_HARNESS_LOG": str(log)}
    cmd = [sys.executable, "-m", "pytest", "-q", *args] + ([f"--junitxml={junit}"] if junit else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary = next((line for line in reversed(proc.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "?")
    return seconds, summary.strip("= ")


def _records(log: Path) -> list[dict]:
    """The runs of the book's own sources (the tooling tests' runs of temporary files are left out)."""
    if not log.is_file():
        return []
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if not Path(r["unit"]).is_absolute()]


def _owner(unit: str) -> str:
    """The source whose code a run executed: a page whose code is exactly a snippet's counts as that snippet
    (so that both paths count the same code)."""
    owners = {rel(p): (unit_of_page(p).name if unit_of_page(p) else rel(p)) for p in page_files()}
    return owners.get(unit, unit)


def _executions(records: list[dict]) -> Counter:
    """Executions of each source's code per device."""
    counts: Counter = Counter()
    for r in records:
        if r.get("how") in ("fork", "fresh", "kernel", "build"):
            counts[(_owner(r["unit"]), r["device"])] += 1
    return counts


def _overheads(records: list[dict], warm: list[dict] | None = None) -> list[float]:
    """Wall time minus the code's own time, per run through the runner. A fresh interpreter's imports run
    inside the code's time, so for `records` of the fresh path pass the fork server's records as `warm`:
    the code's own time is then its time in an interpreter that has already imported the libraries."""
    code = {(_owner(r["unit"]), r["device"]): r["code"] for r in (warm or []) if "code" in r}
    return [r["wall"] - code.get((_owner(r["unit"]), r["device"]), r["code"])
            for r in records if r.get("how") in ("fork", "fresh") and "wall" in r]


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "-"


def _warm(page: Path, log: Path, args: list[str]) -> tuple[float, str, bool]:
    """Fill the cache, edit one page, run again; restore the page."""
    _pytest(log, {}, args)
    original = page.read_bytes()
    try:
        page.write_bytes(original + "\n本段是基准测试的临时改动。\n".encode())
        seconds, summary = _pytest(log, {}, args)
    finally:
        page.write_bytes(original)
    unit = unit_of_page(page)
    reran = any(r["unit"] == unit.name and r.get("how") in ("fork", "fresh", "kernel") for r in _records(log))
    return seconds, summary, reran


def harness_table(tmp: Path) -> tuple[list[tuple[str, str, str, str]], Path]:
    """Rows (measure, before, after, target) and the junit file of the cold run."""
    sources = snippet_files() + notebook_files()
    before_log, after_log, warm_log = tmp / "before.jsonl", tmp / "after.jsonl", tmp / "warm.jsonl"
    junit = tmp / "junit.xml"
    before_s, before_sum = _pytest(before_log, {"BOOK_FRESH": "1", "BOOK_NO_CACHE": "1",
                                                "BOOK_EXECUTE_NOTEBOOKS": "true"}, ["-p", "no:xdist"])
    after_s, after_sum = _pytest(after_log, {"BOOK_NO_CACHE": "1"}, ["-n", "auto"], junit)
    before, after = _records(before_log), _records(after_log)
    page = next(p for p in page_files() if unit_of_page(p) is not None and unit_of_page(p).pages)
    warm_s, warm_sum, reran = _warm(page, warm_log, ["-n", "auto"])

    b_exec, a_exec = _executions(before), _executions(after)
    per = lambda c: f"max {max(c.values())}, mean {sum(c.values()) / len(c):.2f} over {len(c)} (source, device)"
    nb = lambda rs: sum(1 for r in rs if r.get("kind") == "notebook" and r.get("how") in ("kernel", "fresh", "fork", "build"))
    cpu_part: dict[str, float] = defaultdict(float)
    for r in after:
        if "code" in r:
            cpu_part[r["part"]] += r["code"]
    workers = os.cpu_count() or 1
    pages_now = len(page_files()) + len(notebook_files())
    projected = after_s * BOOK_PAGES / pages_now
    rows = [
        ("cold full suite, wall time", f"{before_s:.0f} s", f"{after_s:.0f} s ({after_s / before_s:.0%})", "≤ 45 %"),
        ("  pytest summary", before_sum, after_sum, ""),
        ("executions per source per device", per(b_exec), per(a_exec), "1"),
        ("notebook executions per test run", f"{nb(before)} ({len(notebook_files())} notebooks)",
         f"{nb(after)} ({len(notebook_files())} notebooks)", "1 per notebook"),
        ("harness overhead per run (median)", _median(_overheads(before, after)), _median(_overheads(after)), "≤ 0.3 s"),
        (f"warm loop, cache on, {rel(page)} edited", "-",
         f"{warm_s:.0f} s ({warm_sum}); its code ran again: {'yes' if reran else 'NO'}", "≤ 60 s"),
    ]
    rows += [(f"time in part {part}'s code (one thread: ≈ CPU time)", "", f"{secs:.0f} s", "") for part, secs in sorted(cpu_part.items())]
    rows.append((f"projected `.ci/run` test time at {BOOK_PAGES} pages", f"{before_s * BOOK_PAGES / pages_now / 60:.0f} min",
                 f"{projected / 60:.0f} min (+ install)", f"≪ {CI_LIMIT_S // 60} min"))
    rows.append(("  basis", "", f"{pages_now} pages and {len(sources)} sources now, scaled linearly; "
                 f"{workers} workers", ""))
    return rows, junit
