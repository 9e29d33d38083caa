"""Run the book's reproduction case studies in full and rewrite their results files.

    python -m tests.tooling.reproduce [NAME ...]      (= make reproduce [CASES="NAME ..."])

A case study is a notebook page (docs/<part>/<name>.nb.py) that reads the environment variable
BOOK_REPRO: unset (or "quick") it trains a short version, which is what the site build and the tests
run; with BOOK_REPRO=full it runs the experiments as the paper describes them (tens of minutes on a
2-core CPU) and writes docs/<part>/results/<name>.json with its provenance (command, seeds, versions,
CPU, date, wall time). The pages render their tables and figures from those files, so the committed
files are always the unedited output of this command.

Each notebook runs as a plain Python script (a jupytext percent file is one), in its own folder, as
Jupyter would run it. Standard library only.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.tooling.execution import device_env
from tests.tooling.sources import NOTEBOOK_SUFFIX, notebook_files, rel

MARKER = "BOOK_REPRO"
COMMAND = "make reproduce"


def case_studies() -> list[Path]:
    """Notebook pages that have a full reproduction mode."""
    return [nb for nb in notebook_files() if MARKER in nb.read_text(encoding="utf-8")]


def name_of(notebook: Path) -> str:
    return notebook.name.removesuffix(NOTEBOOK_SUFFIX)


def results_file(notebook: Path) -> Path:
    """Where a case study writes its results: docs/<part>/results/<name>.json."""
    return notebook.parent / "results" / f"{name_of(notebook)}.json"


def main(names: list[str]) -> int:
    cases = case_studies()
    known = {name_of(nb): nb for nb in cases}
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown case study {', '.join(unknown)}; choose from: {', '.join(known)}", file=sys.stderr)
        return 2
    chosen = [known[n] for n in names] or cases
    env = device_env("cpu") | {"BOOK_REPRO": "full"}  # the book's claims are about a CPU run
    failures = 0
    for nb in chosen:
        env["BOOK_REPRO_COMMAND"] = f"{COMMAND} CASES={name_of(nb)}" if names else COMMAND
        print(f"== {rel(nb)} (BOOK_REPRO=full)", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, nb.name], cwd=nb.parent, env=env)
        print(f"== {rel(nb)}: exit {proc.returncode} after {time.perf_counter() - start:.0f} s", flush=True)
        failures += proc.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
