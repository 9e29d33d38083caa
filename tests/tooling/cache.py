"""The local result cache for the edit loop (`make test` on a contributor's machine; never in CI, where
.ci/run sets BOOK_NO_CACHE=1, nor with BOOK_FRESH=1).

A run's result is kept under .cache/book-runs/<key>.json once it ran without error. The key is a hash of
everything the run's outcome can depend on that is known before it runs: the source's bytes, its committed
outputs, the pages it proves and every file they include, for a notebook every file in its folder (it runs
in a copy of that folder), the harness (tests/tooling/*.py) and the lock file (requirements.txt), the
device, Python, and the numerical settings. The files the code itself opened inside the repository (a
corpus, a results file; recorded by runner.py) are hashed into the entry and checked when it is read back.
A hit is not a pass: the tests still compare the recorded outputs with what the pages show.

The browser checks use the same switch: a check that passed on byte-identical built files (the page's
HTML, every same-site file it references, the site's assets, the test code and the browser) is not
repeated (see passed / mark_passed).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from tests.tooling.sources import INCLUDE_RE, ROOT, SNIPPETS, is_notebook, output_file, rel

CACHE_DIR = ROOT / ".cache" / "book-runs"
HARNESS = sorted((ROOT / "tests" / "tooling").glob("*.py")) + [ROOT / "requirements.txt"]


def enabled() -> bool:
    return os.environ.get("BOOK_NO_CACHE") != "1" and os.environ.get("BOOK_FRESH") != "1"


def _sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def _included(page: Path) -> list[Path]:
    files = []
    for line in page.read_text(encoding="utf-8").splitlines():
        m = INCLUDE_RE.match(line)
        if m:
            files.append(SNIPPETS / m.group("target").partition(":")[0])
    return files


def inputs(source: Path, pages: tuple[Path, ...] = ()) -> list[Path]:
    """The files a run's outcome depends on, known before it runs (see the module docstring)."""
    files = [source] + list(pages)
    if source.suffix == ".md":
        files += _included(source)
    else:
        files.append(output_file(source))
    for page in pages:
        files += _included(page)
    if is_notebook(source):
        files += [p for p in source.parent.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted(set(files))


def key(source: Path, pages: tuple[Path, ...], device: str, harness: list[Path] | None = None) -> str:
    from tests.tooling.execution import numeric_env, reference_platform

    h = hashlib.sha256()
    h.update(json.dumps([rel(source), [rel(p) for p in pages], device, sys.version, sorted(numeric_env().items()),
                         reference_platform()]).encode())  # what runs: two notebooks of a folder share their inputs
    for path in inputs(source, pages) + list(harness if harness is not None else HARNESS):
        h.update(f"{rel(path)}\0{_sha(path)}\n".encode())
    return h.hexdigest()[:32]


def load(entry_key: str):
    """The RunResult stored under this key, if every file it read is unchanged; else None."""
    from tests.tooling.execution import RunResult

    path = CACHE_DIR / f"{entry_key}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if any(_sha(Path(p)) != sha for p, sha in entry["reads"].items()):
        return None
    return RunResult.from_json(entry["result"])


def store(entry_key: str, result) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    entry = {"reads": {p: _sha(Path(p)) for p in result.reads}, "result": result.to_json()}
    tmp = CACHE_DIR / f".{entry_key}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, CACHE_DIR / f"{entry_key}.json")


def digest(name: str, files: list[Path], extra: str = "", root: Path | None = None) -> str:
    """A key for a check named `name` over these files (see the module docstring); file names are taken
    relative to `root` (a built site lives in a new temporary folder each time)."""
    h = hashlib.sha256(f"{name}\0{extra}\n".encode())
    for path in files:
        label = path.relative_to(root) if root and path.is_relative_to(root) else rel(path)
        h.update(f"{label}\0{_sha(path)}\n".encode())
    return h.hexdigest()[:32]


def passed(key: str) -> bool:
    return enabled() and (CACHE_DIR / f"passed-{key}").is_file()


def mark_passed(key: str) -> None:
    if enabled():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        (CACHE_DIR / f"passed-{key}").touch()
