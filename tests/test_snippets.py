"""Every snippet (snippets/**/*.py) and notebook (docs/**/*.nb.py) runs once per device: on CPU in a child
of the fork server (a notebook in a Jupyter kernel, in a copy of its folder, as a reader's Jupyter runs it),
on CUDA in a fresh interpreter. On CPU its printed output must match what the pages show (the committed
.out.txt, or a notebook's .nb.out.json), and every figure it saves must be committed under
docs/<part>/figures/. The run is shared with the pages that show exactly this code (see tooling/runs.py)."""
from __future__ import annotations

import pytest

from tests.conftest import cuda_available
from tests.tooling.execution import failure_message, reference_platform
from tests.tooling.outputs import compare_notebook, compare_outputs, moved
from tests.tooling.runs import unit_of_source
from tests.tooling.sources import figure_dir, figures_of, is_notebook, notebook_files, rel, snippet_files

SOURCES = snippet_files() + notebook_files()


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("source", SOURCES, ids=rel)
def test_snippet(source, device, runs, record_property):
    if device == "cuda" and not cuda_available():
        pytest.skip("CUDA run skipped: no CUDA device on this machine (the CPU run still ran)")
    result, how = runs.get(unit_of_source(source), device)
    record_property("run", how)
    if result.error:
        pytest.fail(failure_message(result, rel(source)), pytrace=False)

    for name in figures_of(source):
        assert name in result.files, f"{rel(source)}: savefig({name!r}) wrote no file"
        committed = figure_dir(source) / name
        assert committed.is_file(), f"{rel(committed)} is missing: run `make outputs`"

    if device != "cpu":
        return  # shown outputs are CPU outputs; the CUDA run checks the code and its asserts
    tolerant = not reference_platform()
    if is_notebook(source):
        if not result.cells:
            pytest.skip("ran and passed its asserts; its shown outputs are compared only where Jupyter "
                        "(nbclient, ipykernel, jupytext) is installed (run `make test`)")
        problems = compare_notebook(source, result.cells, tolerant)
    else:
        problems = compare_outputs(source, result.outputs, tolerant=tolerant)
    if problems:
        pytest.fail("\n\n".join(problems) + "\n\nIf the change is intended, run `make outputs`.", pytrace=False)
    if tolerant:
        record_property("moved", moved(source, result.outputs, result.cells if is_notebook(source) else None))
