"""Shared fixtures, the order in which tests run, and the summary of how pages were proven.
The conventions the tests enforce are described in README.md (贡献指南)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tooling.sources import ROOT


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """The runs of the book's code in this test run (see tooling/runs.py); under pytest-xdist the workers
    share them through this run's temporary folder."""
    from tests.tooling.runs import RunStore
    shared = tmp_path_factory.getbasetemp().parent / "runs" if os.environ.get("PYTEST_XDIST_WORKER") else None
    return RunStore(shared)


def _rank(item) -> int:
    """Longest and most depended-on first, so that parallel workers finish together: the site build (the
    browser tests wait for it), the notebooks, the snippets, then the pages (which mostly reuse the
    snippets' runs), then everything else."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if item.originalname == "test_build_is_strict_and_clean":
        return 0
    if item.originalname == "test_snippet" and params.get("device") != "cuda":
        return 1 if str(params["source"]).endswith(".nb.py") else 2
    if item.originalname == "test_page":
        return 3
    return 4


def pytest_collection_modifyitems(items):
    items.sort(key=_rank)  # a stable sort: the order within each rank is the collection order


def pytest_terminal_summary(terminalreporter):
    proofs, runs, browser, moved, declared, exercises = {}, {}, {}, [], [], {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call" or not getattr(report, "passed", False):
                continue
            props = dict(getattr(report, "user_properties", []))
            if "proof" in props:
                proofs[props["proof"]] = proofs.get(props["proof"], 0) + 1
            if "run" in props:
                runs[props["run"]] = runs.get(props["run"], 0) + 1
            moved += props.get("moved", [])
            declared += props.get("declared_numbers", [])
            if "exercises" in props:
                part, n, answered = props["exercises"]
                total = exercises.setdefault(part, [0, 0])
                total[0] += n
                total[1] += answered
            if "browser" in props:
                browser[props["browser"]] = browser.get(props["browser"], 0) + 1
    if proofs:
        terminalreporter.write_line(
            f"pages proven: {proofs.get('shared', 0)} by a run shared with their snippet, "
            f"{proofs.get('own', 0)} by their own run")
    if exercises:
        terminalreporter.write_line("exercises answered (passing pages): " + ", ".join(
            f"{part} {a}/{n}" for part, (n, a) in sorted(exercises.items(), key=lambda kv: int(kv[0][4:]))))
    if declared:
        terminalreporter.write_line(f"numbers in prose that no output shows, declared with their source ({len(declared)}):")
        for line in sorted(declared):
            terminalreporter.write_line(f"  {line}")
    if browser:
        terminalreporter.write_line(f"browser checks: {browser.get('ran', 0)} ran, {browser.get('cache', 0)} passed "
                                    "before on byte-identical built files (local cache)")
    from tests.tooling.execution import numeric_env, reference_platform
    if not reference_platform():
        terminalreporter.write_line(
            f"not the reference platform ({' '.join(f'{k}={v}' for k, v in sorted(numeric_env().items()))}): "
            f"{len(moved)} shown outputs moved (passing ones within the tolerance their code declares): "
            + (", ".join(sorted(moved)) or "none"))
    if runs:
        terminalreporter.write_line(
            "code of passing tests: " + ", ".join(f"{n} {what}" for what, n in sorted(runs.items()))
            + "  (ran: executed now; memo: another test's run in this session; cache: an earlier session's "
              "run with the same inputs)")


def _build(site: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | {"CUDA_VISIBLE_DEVICES": "", "NO_MKDOCS_2_WARNING": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8")
    return {"dir": str(site), "log": proc.stdout + proc.stderr, "returncode": proc.returncode,
            "seconds": time.perf_counter() - start}


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> dict:
    """`mkdocs build --strict` once per test run; tests of the built site share it. Under pytest-xdist the
    first worker that needs it builds it and the others wait for it."""
    pytest.importorskip("mkdocs", reason="the site's packages are not installed (run `make test`)")
    if os.environ.get("BOOK_BUILT_SITE"):  # for iterating on the browser tests: reuse a site built by hand
        return {"dir": Path(os.environ["BOOK_BUILT_SITE"]), "log": "", "returncode": 0, "seconds": 0.0}
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        info = _build(tmp_path_factory.mktemp("site"))
    else:
        from filelock import FileLock
        shared = tmp_path_factory.getbasetemp().parent  # this run's folder, common to all workers
        record = shared / "site.json"
        with FileLock(str(shared / "site.lock")):
            if record.is_file():
                info = json.loads(record.read_text(encoding="utf-8"))
            else:
                info = _build(shared / "site")
                record.write_text(json.dumps(info), encoding="utf-8")
    return info | {"dir": Path(info["dir"])}


def browser_unavailable(reason: str):
    """Browser tests fail where a browser is required (BOOK_REQUIRE_BROWSER=1, as in CI), else skip."""
    if os.environ.get("BOOK_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here (BOOK_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium per test process (Playwright's sync API runs once per thread)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("playwright is not installed (run `make test`)")
    from tests.tooling.browser import CHROMIUM_ARGS, chromium_executable
    executable = chromium_executable()
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:  # no Debian chromium and no Playwright-downloaded one
            browser_unavailable(f"no Chromium could be started ({str(exc).splitlines()[0]}); "
                                "install Debian's `chromium` package")
        yield b
        b.close()
