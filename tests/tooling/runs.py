"""Which execution proves which test.

A *unit* is one execution: a snippet (or notebook), together with the pages whose Python is exactly that
snippet's sections in file order, or a page whose code is anything else (reordered, partial, extra blocks,
code from two snippets), run on its own. The snippet test and the page test of a shared unit use the same
run: each page block's output is still compared with the output block shown after it. With BOOK_FRESH=1
nothing is shared (every page runs on its own, as a reader who copies it would).

RunStore executes each unit at most once per device per test run: under pytest-xdist the workers share a
folder of this run's results, and the first worker that needs a unit runs it while the others wait for it
(a file lock per unit). On a contributor's machine it also reads and writes the local result cache
(cache.py).
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tests.tooling import cache
from tests.tooling.execution import (RunResult, fresh_only, log_run, page_plan, prepare_workdir, run_plan,
                                     run_source, snippet_plan)
from tests.tooling.sources import (DOCS, SNIPPETS, BookError, expand_page, is_notebook, notebook_files, page_files,
                                   rel, snippet_files)


@dataclass(frozen=True)
class Unit:
    source: Path                   # what runs: a snippet, a notebook, or a page run on its own
    pages: tuple[Path, ...] = ()   # pages proven by this run besides the source itself

    @property
    def name(self) -> str:
        return rel(self.source)

    @property
    def kind(self) -> str:
        return "page" if self.source.suffix == ".md" else "notebook" if is_notebook(self.source) else "snippet"


def _blocks(plan: dict) -> list[tuple]:
    return [(b["code"], b["filename"], b["firstline"]) for b in plan["blocks"]]


def shares_run(page_code: dict, snippet_code: dict) -> bool:
    """A page's code may be proven by its snippet's run when, block by block, it is exactly the snippet's
    sections in file order (same code, same file, same lines) and nothing in it depends on which file is
    running (`__file__`)."""
    blocks = _blocks(page_code)
    return bool(blocks) and blocks == _blocks(snippet_code) and not any("__file__" in b[0] for b in blocks)


@lru_cache(maxsize=None)
def units() -> tuple[dict[Path, Unit], dict[Path, Unit | None]]:
    """(source -> unit, page -> unit or None when the page has no code to run)."""
    shared: dict[Path, list[Path]] = {s: [] for s in snippet_files() + notebook_files()}
    by_page: dict[Path, Unit | None] = {}
    for page in page_files():
        try:
            plan, run = page_plan(page, expand_page(page))
        except (BookError, ImportError):
            by_page[page] = Unit(page)  # the page test reports it
            continue
        if not run:
            by_page[page] = None
            continue
        first = Path(plan["blocks"][0]["filename"])
        if not fresh_only() and first in shared and first.is_relative_to(SNIPPETS) \
                and shares_run(plan, snippet_plan(first)):
            shared[first].append(page)
        else:
            by_page[page] = Unit(page)
    by_source = {s: Unit(s, tuple(pages)) for s, pages in shared.items()}
    for source, unit in by_source.items():
        for page in unit.pages:
            by_page[page] = unit
    return by_source, by_page


def unit_of_source(source: Path) -> Unit:
    return units()[0].get(source) or Unit(source)


def unit_of_page(page: Path) -> Unit | None:
    return units()[1].get(page, Unit(page))


def part_of(path: Path) -> str:
    for base in (SNIPPETS, DOCS):
        if path.is_relative_to(base):
            return path.relative_to(base).parts[0]
    return "-"


class RunStore:
    """Results of this worker's runs, by (unit, device); see the module docstring."""

    def __init__(self, shared: Path | None = None):
        self.memo: dict[tuple[str, str], RunResult] = {}
        self.use_cache = cache.enabled()
        self.shared = shared  # this test run's results, common to all workers (None: one process)

    def get(self, unit: Unit, device: str) -> tuple[RunResult, str]:
        """The run of `unit` on `device` and how it was obtained: "ran", "memo" (another test's run in
        this test run, on any worker) or "cache" (a run of an earlier session with the same inputs)."""
        memo_key = (unit.name, device)
        if memo_key in self.memo:
            return self.memo[memo_key], "memo"
        if self.shared is None:
            return self._get(unit, device, memo_key)
        from filelock import FileLock
        self.shared.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(f"{unit.name}\0{device}".encode()).hexdigest()[:24]
        record = self.shared / f"{name}.json"
        with FileLock(str(self.shared / f"{name}.lock")):
            if record.is_file():
                result = self.memo[memo_key] = RunResult.from_json(json.loads(record.read_text(encoding="utf-8")))
                return result, "memo"
            result, how = self._get(unit, device, memo_key)
            record.write_text(json.dumps(result.to_json(), ensure_ascii=False), encoding="utf-8")
        return result, how

    def _get(self, unit: Unit, device: str, memo_key: tuple[str, str]) -> tuple[RunResult, str]:
        entry_key = cache.key(unit.source, unit.pages, device) if self.use_cache else None
        result = cache.load(entry_key) if entry_key else None
        how = "cache"
        if result is None:
            how = "ran"
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="book-cwd-") as tmp:
                cwd = prepare_workdir(unit.source, Path(tmp))
                if unit.kind == "page":
                    plan, _ = page_plan(unit.source, expand_page(unit.source))
                    result = run_plan(plan, cwd, device)
                else:
                    result = run_source(unit.source, cwd, device)
            log_run({"unit": unit.name, "kind": unit.kind, "pages": len(unit.pages), "device": device,
                     "how": result.how, "part": part_of(unit.source), "wall": time.perf_counter() - start,
                     "code": result.seconds, "ok": result.error is None})
            if entry_key and result.error is None:
                cache.store(entry_key, result)
        else:
            log_run({"unit": unit.name, "kind": unit.kind, "device": device, "how": "cache",
                     "part": part_of(unit.source)})
        self.memo[memo_key] = result
        return result, how
