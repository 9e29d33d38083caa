"""Every snippet (snippets/**/*.py) and notebook (docs/**/*.nb.py) runs in a fresh interpreter, once per
device (a notebook in a copy of its folder, as Jupyter runs it); on CPU its printed output must match the
committed .out.txt the pages show, and every figure it saves must be committed under docs/<part>/figures/."""
from __future__ import annotations

import pytest

from tests.conftest import cuda_available
from tests.tooling.book import (NOTEBOOK_SUFFIX, compare_outputs, failure_message, figure_dir, figures_of,
                                notebook_files, prepare_workdir, rel, run_plan, snippet_files,
                                snippet_plan)

SOURCES = snippet_files() + notebook_files()


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("source", SOURCES, ids=rel)
def test_snippet(source, device, tmp_path):
    if device == "cuda" and not cuda_available():
        pytest.skip("CUDA run skipped: no CUDA device on this machine (the CPU run still ran)")
    result = run_plan(snippet_plan(source), prepare_workdir(source, tmp_path), device)
    if result.error:
        pytest.fail(failure_message(result, rel(source)), pytrace=False)

    for name in figures_of(source):
        assert (tmp_path / name).is_file(), f"{rel(source)}: savefig({name!r}) wrote no file"
        committed = figure_dir(source) / name
        assert committed.is_file(), f"{rel(committed)} is missing: run `make outputs`"

    if device != "cpu" or source.name.endswith(NOTEBOOK_SUFFIX):
        return  # shown outputs are CPU outputs; the CUDA run checks the code and its asserts
    problems = compare_outputs(source, result.outputs)
    if problems:
        pytest.fail("\n\n".join(problems) + "\n\nIf the change is intended, run `make outputs`.", pytrace=False)
