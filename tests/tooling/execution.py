"""How the book's code is run: the numerical settings every run uses, the plans (which blocks, in which
order, with which file names and line numbers), and the three ways a plan is executed:

- a child of the fork server (forkserver.py): CPU runs, by default;
- a fresh interpreter (runner.py): CUDA runs, runs with an environment of their own, and every run
  when BOOK_FRESH=1;
- a Jupyter kernel (nbclient): a notebook's CPU run, whose outputs (text, tables, figures) are the ones
  the page shows.

Which run proves which test, and the local result cache, are in runs.py.
"""
from __future__ import annotations

import atexit
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.tooling.sources import (ROOT, Block, is_notebook, notebook_cells, python_blocks, rel, resolve_include,
                                   snippets_config, split_sections)

RUNNER = Path(__file__).with_name("runner.py")
SNIPPET_TIMEOUT = 600  # seconds; a snippet should take a few
NOT_WATCHED = (".venv", ".cache", ".git", "site", "dist", ".bench", "tests/tooling")  # folders whose reads are not inputs

# ---------------------------------------------------------------- numerical settings

# Every run the harness makes (tests, `make outputs`, `make reproduce`) uses the same numerical code paths,
# so that a printed number is the same on every x86-64 CPU with AVX2, with or without AVX-512 (Intel or AMD),
# and whatever the number of cores. docs/appendix/environment.md tells readers how to set them by hand.
PINNED_THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # torch, MKL and OpenBLAS: one thread
PINNED_X86 = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own vectorized kernels (it would pick AVX-512 where present)
    "MKL_CBWR": "AVX2",             # Intel MKL's conditional numerical reproducibility: the AVX2 code path
    "ONEDNN_MAX_CPU_ISA": "AVX2",   # oneDNN (convolutions): no wider instructions than AVX2
}


def forced_kernels() -> dict[str, str]:
    """BOOK_KERNELS="ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE" overrides the pinned settings, to
    show which outputs depend on the code path (see README, 贡献指南)."""
    pairs = os.environ.get("BOOK_KERNELS", "").split()
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise ValueError(f"BOOK_KERNELS takes NAME=VALUE pairs, not {bad}")
    return dict(p.split("=", 1) for p in pairs)


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def numeric_env() -> dict[str, str]:
    return PINNED_THREADS | (PINNED_X86 if is_x86() else {}) | forced_kernels()


def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return True  # not Linux: the pinned settings select AVX2 if the CPU has it


def reference_platform() -> bool:
    """Whether shown outputs are compared exactly: an x86-64 CPU with AVX2 under the pinned settings. On
    other platforms (ARM, forced kernels) the tolerances that sections declare apply (see outputs.py)."""
    return is_x86() and _has_avx2() and not forced_kernels()


def fresh_only() -> bool:
    return os.environ.get("BOOK_FRESH") == "1"


VOLATILE = ("PYTEST_CURRENT_TEST",)


def device_env(device: str) -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0", PYTHONUNBUFFERED="1",
               PYTHONIOENCODING="utf-8") | numeric_env()
    if env.get("PYTHONPATH", "").startswith(str(ROOT)):  # snippets must not import this repository's code
        env.pop("PYTHONPATH")
    for name in VOLATILE:  # set by pytest for each test: the runs (and their fork server) need not see it
        env.pop(name, None)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


# ---------------------------------------------------------------- plans

def snippet_plan(path: Path) -> dict:
    """A snippet's sections (and the code between them), or a notebook's code cells, as blocks."""
    if is_notebook(path):
        blocks = [{"code": c.code, "filename": str(path), "firstline": c.firstline,
                   "label": f"{rel(path)}:{c.firstline} (code cell {i + 1})"}
                  for i, c in enumerate(notebook_cells(path))]
    else:
        blocks = [{"code": c.code, "filename": str(path), "firstline": c.firstline,
                   "label": f"{rel(path)}:{c.firstline}" + (f" (section '{c.section}')" if c.section else "")}
                  for c in split_sections(path)]
    return {"file": str(path), "blocks": blocks}


def page_plan(page: Path, blocks: list[Block], base_paths: tuple[Path, ...] | None = None) -> tuple[dict, list[Block]]:
    """The blocks a reader would copy and run, in page order. Whole-snippet blocks are run by the
    snippet tests instead, and marked blocks not at all."""
    cfg = snippets_config(base_paths)
    run, plan_blocks = [], []
    for b in python_blocks(blocks):
        if b.skip_reason or b.whole_snippet:
            continue
        filename, firstline = str(page), b.line + 1
        label = f"the code block at {b.where}"
        if b.include and b.include[1]:
            path = resolve_include(b.include[0], cfg["base_path"])
            chunk = next((c for c in split_sections(path) if c.section == b.include[1]), None) if path else None
            if chunk:
                filename, firstline = str(path), chunk.firstline
                label += f" (from {rel(path)}, section '{b.include[1]}')"
        run.append(b)
        plan_blocks.append({"code": b.code, "filename": filename, "firstline": firstline, "label": label})
    return {"file": str(page), "blocks": plan_blocks}, run


def prepare_workdir(source: Path, cwd: Path) -> Path:
    """A notebook runs in a copy of its own folder, as Jupyter runs it in place, so it can read the files
    beside it (results/*.json) without writing into docs/. Anything else runs in an empty directory: it
    writes only temporary files and its figures."""
    if is_notebook(source):
        shutil.copytree(source.parent, cwd, dirs_exist_ok=True)
    return cwd


# ---------------------------------------------------------------- running

@dataclass
class RunResult:
    outputs: list[str]                 # stdout of each block (a notebook: the text of each code cell's outputs)
    error: dict | None
    stderr: str
    returncode: int | None
    how: str = "fresh"                 # fresh | fork | kernel
    seconds: float = 0.0               # time spent in the code itself
    wall: float = 0.0                  # time of the whole run, start-up and harness included
    reads: list[str] = field(default_factory=list)   # repository files the code opened
    files: list[str] = field(default_factory=list)   # files the run left in its working directory
    cells: list[dict] = field(default_factory=list)  # a notebook run in a kernel: outputs of each code cell

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> "RunResult":
        return cls(**data)


_servers: dict[tuple, object] = {}


def _server(env: dict[str, str]):
    from tests.tooling.forkserver import ForkServer
    key = tuple(sorted(env.items()))
    server = _servers.get(key)
    if server is None or not server.alive():
        server = _servers[key] = ForkServer(env)
    return server


@atexit.register
def _close_servers() -> None:
    for server in _servers.values():
        server.close()
    _servers.clear()


def uses_fork_server(device: str, extra_env: dict | None) -> bool:
    return device == "cpu" and not extra_env and not fresh_only()


def run_plan(plan: dict, cwd: Path, device: str = "cpu", extra_env: dict | None = None,
             timeout: float = SNIPPET_TIMEOUT) -> RunResult:
    """Run a plan (see runner.py) with `cwd` as working directory, in a child of the fork server or in a
    fresh interpreter (see uses_fork_server)."""
    env = device_env(device) | (extra_env or {})
    plan = plan | {"watch": str(ROOT), "ignore": [str(ROOT / d) for d in NOT_WATCHED]}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="book-run-") as tmp:  # the harness's files, outside cwd
        plan_file, result_file = Path(tmp) / "plan.json", Path(tmp) / "result.json"
        stdout, stderr = Path(tmp) / "stdout", Path(tmp) / "stderr"
        plan_file.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        timed_out, how = False, "fork" if uses_fork_server(device, extra_env) else "fresh"
        if how == "fork":
            reply = _server(env).run(plan_file, result_file, cwd, stdout, stderr, timeout)
            returncode, timed_out = reply["returncode"], reply["timed_out"]
            err_text = stderr.read_text(encoding="utf-8", errors="replace") if stderr.is_file() else ""
        else:
            try:
                proc = subprocess.run([sys.executable, str(RUNNER), str(plan_file), str(result_file)],
                                      cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8",
                                      errors="replace", timeout=timeout)
                returncode, err_text = proc.returncode, proc.stderr
            except subprocess.TimeoutExpired as exc:
                returncode, timed_out = None, True
                err_text = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        if timed_out:
            data = {"outputs": [], "error": {"block": -1, "label": plan["file"],
                                             "traceback": f"timed out after {timeout:g} s"}}
        elif result_file.is_file():
            data = json.loads(result_file.read_text(encoding="utf-8"))
        else:  # the interpreter died (segfault, os._exit in the code, ...)
            why = f"was killed by signal {-returncode}" if returncode and returncode < 0 else f"exited with code {returncode}"
            data = {"outputs": [], "error": {"block": -1, "label": plan["file"],
                                             "traceback": f"the interpreter {why}"}}
    files = sorted(p.name for p in cwd.iterdir()) if cwd.is_dir() else []
    return RunResult(data["outputs"], data["error"], err_text, returncode, how, data.get("seconds", 0.0),
                     time.perf_counter() - start, data.get("reads", []), files)


GUARD_CELL = f"""import runpy as _runpy
_runpy.run_path({str(RUNNER)!r}, run_name="book_runner")["_guard_network"]()
del _runpy"""
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def kernel_available() -> bool:
    import importlib.util
    return all(importlib.util.find_spec(m) for m in ("nbclient", "jupytext", "ipykernel"))


def run_notebook(source: Path, cwd: Path, env: dict[str, str], timeout: float = SNIPPET_TIMEOUT) -> RunResult:
    """Execute a notebook in a Jupyter kernel, in `cwd`, as a reader's Jupyter (and formerly the site
    build) runs it; the network guard runs first, in a cell that is then removed."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    env = {k: v for k, v in env.items() if k != "MPLBACKEND"}  # the kernel's inline backend shows figures
    nb = jupytext.read(source)
    nb.cells.insert(0, nbformat.v4.new_code_cell(GUARD_CELL))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(cwd)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        error = exc
    wall = time.perf_counter() - start
    nb.cells.pop(0)
    code = [c for c in nb.cells if c.cell_type == "code"]
    lines = [c.firstline for c in notebook_cells(source)]
    cells = []
    for i, cell in enumerate(code):
        cell.execution_count = i + 1 if cell.execution_count else None
        outputs = []
        for o in map(dict, cell.outputs):  # one stream output per run of prints, however the kernel sent it
            if outputs and o.get("output_type") == "stream" and outputs[-1].get("output_type") == "stream" \
                    and outputs[-1]["name"] == o["name"]:
                outputs[-1] = outputs[-1] | {"text": outputs[-1]["text"] + o["text"]}
            else:
                outputs.append(o)
        for o in outputs:
            if "execution_count" in o:
                o["execution_count"] = cell.execution_count
        cells.append({"line": lines[i] if i < len(lines) else None, "source": cell.source,
                      "outputs": json.loads(json.dumps(outputs))})
    err = None
    if error is not None:
        failed = next((i for i, c in enumerate(cells) if any(o.get("output_type") == "error" for o in c["outputs"])), -1)
        line = cells[failed]["line"] if failed >= 0 else None
        tb = ANSI_RE.sub("", str(error))
        m = re.findall(r"Cell In\[\d+\], line (\d+)", tb)
        where = f"{rel(source)}:{line + int(m[-1]) - 1}" if line and m else rel(source)
        err = {"block": failed, "label": f"{where} (code cell {failed + 1})", "traceback": tb,
               "where": f"{source}:{where.rpartition(':')[2]}" if line and m else None}
    from tests.tooling.outputs import cell_text
    files = sorted(p.name for p in cwd.iterdir())
    return RunResult([cell_text(c["outputs"]) for c in cells], err, "", 1 if err else 0, "kernel", wall, wall,
                     [], files, cells)


def run_source(source: Path, cwd: Path, device: str = "cpu", extra_env: dict | None = None) -> RunResult:
    """Run a snippet or a notebook as the tests do: a notebook's CPU run in a Jupyter kernel when one is
    installed (its outputs are what the page shows), everything else through run_plan."""
    if is_notebook(source) and device == "cpu" and kernel_available():
        return run_notebook(source, cwd, device_env(device) | (extra_env or {}))
    return run_plan(snippet_plan(source), cwd, device, extra_env)


def failure_message(result: RunResult, what: str) -> str:
    """A message that names the failing place first, then the end of the traceback."""
    err = result.error or {}
    tb = err.get("traceback", "")
    where = err.get("where")
    if where:
        file, _, line = where.rpartition(":")
        where = f"{rel(Path(file))}:{line}"
    else:
        where = err.get("label", what)
    last = tb.strip().splitlines()[-1] if tb.strip() else "failed"
    tail = "\n".join(tb.strip().splitlines()[-12:])
    return f"{where}: {last}\n  in {err.get('label', what)}\n\n{tail}\n\n(stderr)\n{result.stderr[-2000:]}"


def log_run(record: dict) -> None:
    """Append one line to BOOK_HARNESS_LOG (used by `make bench` to count executions and overheads)."""
    path = os.environ.get("BOOK_HARNESS_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
