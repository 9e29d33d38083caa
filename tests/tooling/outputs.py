"""How shown outputs are compared with real ones, and regenerated (`make outputs`).

A snippet's outputs are committed beside it as <name>.out.txt, one section per code section that prints;
a notebook's as docs/<part>/<name>.nb.out.json, the outputs of each code cell (text, tables, figures) as
Jupyter produced them, which the site build renders without running any code.

Comparison: text must be equal; a number may differ by two units of its last printed decimal (and never
less than 1e-5 relative); integers must be equal. Results that legitimately depend on the platform
(training runs on ARM or CUDA, where other math libraries are used) carry a declared tolerance: a comment
line `# 容差 ±X：reason` inside the section (or notebook cell) that prints them. Off the reference platform
(see execution.reference_platform) the decimals in that section's output may differ by up to X;
integers and text stay exact. On the reference platform everything is compared exactly.

Results that depend on the machine itself (timings, speed-ups, peak memory on an allocator) are marked with a
comment line `# 随机器而变：reason` in the section (or cell) that prints them. There only the text is compared:
every number may take any value, on every machine. The page must label such an output as machine-dependent
(its block title contains 随机器而变), and its numbers never back a number in the prose (tests/tooling/prose.py).

    python -m tests.tooling.outputs [SOURCE ...]     (= make outputs [FILES="..."])
"""
from __future__ import annotations

import difflib
import json
import re
import sys
import tempfile
from pathlib import Path

from tests.tooling.sources import (SECTION_RE, SNIPPETS, BookError, figure_dir, figures_of, included_targets,
                                   is_notebook, notebook_cells, notebook_files, output_file, rel, snippet_files,
                                   split_sections)

DECLARED_RE = re.compile(r"^\s*#\s*容差\s*±\s*(?P<value>\d+(?:\.\d+)?)")
MACHINE_RE = re.compile(r"^\s*#\s*随机器而变\s*[：:]")
NUMBER_RE = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w])")


# ---------------------------------------------------------------- snippet outputs (.out.txt)

def read_outputs(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    name, buf = None, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = SECTION_RE.search(line)
        if m and m.group(1) == "start":
            name, buf = m.group(2), []
        elif m and m.group(1) == "end":
            if name != m.group(2):
                raise BookError(f"{rel(path)}:{number}: unbalanced output section '{m.group(2)}'")
            out[name], name = "\n".join(buf), None
        elif name is not None:
            buf.append(line)
    return out


def normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def format_outputs(outputs: dict[str, str]) -> str:
    parts = []
    for name, text in outputs.items():
        parts.append(f"# --8<-- [start:{name}]\n{normalize(text)}\n# --8<-- [end:{name}]\n")
    return "".join(parts)


def section_outputs(path: Path, outputs: list[str]) -> dict[str, str]:
    """Map the runner's per-block outputs back to section names, keeping sections that printed."""
    result = {}
    for chunk, text in zip(split_sections(path), outputs):
        if chunk.section and normalize(text):
            result[chunk.section] = normalize(text)
    return result


def declared_tolerance(code: str) -> float | None:
    """The tolerance a section (or cell) declares for its printed decimals: `# 容差 ±X：reason`."""
    values = [float(m.group("value")) for line in code.splitlines() if (m := DECLARED_RE.match(line))]
    return max(values) if values else None


def _chunks(source: Path) -> dict:
    """Section name (or notebook cell index as a string) -> its code chunk."""
    if is_notebook(source):
        return {str(i): c for i, c in enumerate(notebook_cells(source))}
    return {c.section: c for c in split_sections(source) if c.section}


def declared_tolerances(source: Path) -> dict[str, float]:
    """Section name (or notebook cell index as a string) -> declared tolerance."""
    return {name: t for name, c in _chunks(source).items() if (t := declared_tolerance(c.code)) is not None}


def marked_machine_dependent(code: str) -> bool:
    return any(MACHINE_RE.match(line) for line in code.splitlines())


def machine_dependent(source: Path) -> set[str]:
    """Sections (or notebook cell indices as strings) marked `# 随机器而变：reason`: their numbers vary by machine."""
    return {name for name, c in _chunks(source).items() if marked_machine_dependent(c.code)}


# ---------------------------------------------------------------- comparing

def _tolerance(token: str) -> float:
    """Two units in the last printed decimal, and never less than 1e-5 relative. A number printed
    without decimals ("6." as torch prints whole values) must be equal up to that 1e-5."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    ulp = 10.0 ** (-decimals) * (10.0 ** int(exponent) if exponent else 1.0) if decimals else 0.0
    return max(2 * ulp, 1e-5 * abs(float(token)))


def outputs_match(expected: str, actual: str, declared: float | None = None, any_numbers: bool = False) -> bool:
    """Text must be equal; numbers may differ by rounding (see _tolerance), decimals by `declared` where a
    tolerance is declared and applies; integers must be equal. With `any_numbers` (a machine-dependent
    section) only the text is compared."""
    expected, actual = normalize(expected), normalize(actual)
    if expected == actual:
        return True
    e_text, a_text = NUMBER_RE.split(expected), NUMBER_RE.split(actual)
    e_nums, a_nums = NUMBER_RE.findall(expected), NUMBER_RE.findall(actual)
    if e_text != a_text or len(e_nums) != len(a_nums):
        return False
    if any_numbers:
        return True
    for e, a in zip(e_nums, a_nums):
        if re.fullmatch(r"[-+]?\d+", e):
            if int(e) != int(float(a)) or not re.fullmatch(r"[-+]?\d+", a):
                return False
        elif abs(float(e) - float(a)) > max(_tolerance(e), declared or 0.0) * (1 + 1e-9):  # the bound itself matches
            return False
    return True


def diff(expected: str, actual: str, shown: str, real: str) -> str:
    lines = difflib.unified_diff(normalize(expected).splitlines(), normalize(actual).splitlines(),
                                 shown, real, lineterm="")
    return "\n".join(lines)


def shown_at(output: Path, section: str) -> str:
    if not output.resolve().is_relative_to(SNIPPETS):
        return "no page"
    target = f"{output.resolve().relative_to(SNIPPETS).as_posix()}:{section}"
    return ", ".join(included_targets().get(target, [])) or "no page"


def compare_outputs(source: Path, outputs: list[str], out: Path | None = None,
                    tolerant: bool = False) -> list[str]:
    """Problems between a snippet's committed outputs and the outputs of a real run, as messages.
    With `tolerant`, sections that declare a tolerance are compared with it."""
    out = out or output_file(source)
    shown = read_outputs(out)
    real = section_outputs(source, outputs)
    declared = declared_tolerances(source) if tolerant else {}
    free = machine_dependent(source)
    problems = []
    for section in sorted(set(shown) | set(real)):
        if section not in real:
            problems.append(f"{rel(out)}: section '{section}' is shown on {shown_at(out, section)} "
                            "but the code no longer prints anything there")
        elif section not in shown:
            problems.append(f"{rel(out)}: section '{section}' prints output that is not in the file")
        elif not outputs_match(shown[section], real[section], declared.get(section), section in free):
            problems.append(f"{rel(out)}: section '{section}' (shown on {shown_at(out, section)}) differs from "
                            f"the real output of {rel(source)}:\n"
                            + diff(shown[section], real[section], "shown", "real"))
    return problems


def moved(source: Path, outputs: list[str] | None = None, cells: list[dict] | None = None) -> list[str]:
    """Sections (or notebook cells) whose real output is not exactly what the page shows, even if within a
    declared tolerance: what a forced change of code path moved (reported in the test summary)."""
    if cells is not None:
        stored = read_notebook_outputs(output_file(source))
        return [f"{rel(source)}:{kept.get('line')}" for kept, real in zip(stored, cells)
                if not outputs_match(cell_text(kept["outputs"]), cell_text(real["outputs"]))]
    shown, real = read_outputs(output_file(source)), section_outputs(source, outputs or [])
    return [f"{rel(output_file(source))}:{name}" for name in real if name in shown
            and not outputs_match(shown[name], real[name])]


# ---------------------------------------------------------------- notebook outputs (.nb.out.json)

def cell_text(outputs: list[dict]) -> str:
    """What a reader reads in a cell's outputs: printed text, and the text of displayed results and tables
    (figures are counted, not compared: their pixels change with the fonts a machine has)."""
    parts = []
    for o in outputs:
        if o.get("output_type") == "stream":
            parts.append(o["text"] if isinstance(o["text"], str) else "".join(o["text"]))
        elif o.get("output_type") in ("execute_result", "display_data"):
            data = o.get("data", {})
            if any(k.startswith("image/") for k in data):
                parts.append("[figure]\n")
            else:
                text = data.get("text/markdown") or data.get("text/plain") or ""
                parts.append((text if isinstance(text, str) else "".join(text)) + "\n")
        elif o.get("output_type") == "error":
            parts.append(f"[error] {o.get('ename')}: {o.get('evalue')}\n")
    return "".join(parts)


def read_notebook_outputs(path: Path) -> list[dict]:
    """The committed outputs of a notebook: one {"line", "source", "outputs"} per code cell."""
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def write_notebook_outputs(source: Path, cells: list[dict]) -> None:
    data = {"notebook": source.name, "note": "generated by `make outputs`; do not edit", "cells": cells}
    output_file(source).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def stale_cells(source: Path, stored: list[dict]) -> list[str]:
    """Code cells whose committed outputs were made from other code (or are missing)."""
    cells = notebook_cells(source)
    problems = []
    if len(stored) != len(cells):
        problems.append(f"{rel(output_file(source))} has outputs for {len(stored)} code cells, "
                        f"{rel(source)} has {len(cells)}")
    for i, (cell, kept) in enumerate(zip(cells, stored)):
        if kept.get("source", "").rstrip("\n") != cell.code.rstrip("\n"):
            problems.append(f"{rel(source)}:{cell.firstline}: code cell {i + 1} changed since its outputs were made")
    return problems


def compare_notebook(source: Path, cells: list[dict], tolerant: bool = False) -> list[str]:
    """Problems between a notebook's committed outputs and the outputs of a real run."""
    out = output_file(source)
    stored = read_notebook_outputs(out)
    if not stored:
        return [f"{rel(out)} is missing"]
    problems = stale_cells(source, stored)
    declared = declared_tolerances(source) if tolerant else {}
    free = machine_dependent(source)
    for i, (kept, real) in enumerate(zip(stored, cells)):
        where = f"{rel(source)}:{kept.get('line', '?')} (code cell {i + 1})"
        stderr = "".join(o["text"] for o in real["outputs"] if o.get("output_type") == "stream"
                         and o.get("name") == "stderr")
        if stderr.strip():
            problems.append(f"{where} writes to stderr, which the page would show:\n{stderr[-1500:]}")
        shown, now = cell_text(kept["outputs"]), cell_text(real["outputs"])
        if not outputs_match(shown, now, declared.get(str(i)), str(i) in free):
            problems.append(f"{where}: the outputs shown on the page differ from a real run:\n"
                            + diff(shown, now, "shown", "real"))
    return problems


# ---------------------------------------------------------------- regenerating outputs and figures

def regenerate(sources: list[Path]) -> int:
    """Run each source on CPU and rewrite its outputs and figures. Returns the number of failures."""
    from tests.tooling.execution import failure_message, prepare_workdir, run_source

    failures = 0
    rc = Path(__file__).with_name("matplotlibrc")
    for source in sources:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_source(source, prepare_workdir(source, Path(tmp)), "cpu",
                                {"MATPLOTLIBRC": str(rc), "SOURCE_DATE_EPOCH": "0"})
            if result.error:
                print(failure_message(result, rel(source)), file=sys.stderr)
                failures += 1
                continue
            if is_notebook(source):
                write_notebook_outputs(source, result.cells)
            else:
                outputs = section_outputs(source, result.outputs)
                out = output_file(source)
                if outputs:
                    out.write_text(format_outputs(outputs), encoding="utf-8")
                else:
                    out.unlink(missing_ok=True)
            for name in figures_of(source):
                made = Path(tmp) / name
                if not made.is_file():
                    print(f"{rel(source)}: savefig({name!r}) is in the code but no file was written", file=sys.stderr)
                    failures += 1
                    continue
                dest = figure_dir(source) / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(made.read_bytes())
        print(f"regenerated {rel(source)}")
    return failures


if __name__ == "__main__":
    chosen = [Path(a).resolve() for a in sys.argv[1:]] or snippet_files() + notebook_files()
    sys.exit(1 if regenerate(chosen) else 0)
