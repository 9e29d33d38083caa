"""Each page is expanded as the build expands it, and its Python blocks run in page order in one fresh
`__main__` namespace, as a reader who copies the page would run them. Each block's output must match
the output block the page shows after it. When a page's code is exactly its snippet's sections in file
order, the snippet's run proves it (see tooling/runs.py); otherwise the page runs on its own.
Blocks marked not to run are listed as skips with their reason."""
from __future__ import annotations

import pytest

from tests.tooling.execution import failure_message, page_plan, reference_platform
from tests.tooling.outputs import declared_tolerance, diff, marked_machine_dependent, outputs_match
from tests.tooling.runs import unit_of_page
from tests.tooling.sources import BookError, expand_page, page_files, python_blocks, rel

pytest.importorskip("pymdownx", reason="pymdown-extensions is not installed (run `make test`)")
pytest.importorskip("pytest_codeblocks", reason="pytest-codeblocks is not installed (run `make test`)")

PAGES = page_files()


def _marked_blocks():
    found = []
    for page in PAGES:
        try:
            found += [b for b in python_blocks(expand_page(page)) if b.skip_reason]
        except BookError:
            pass  # test_page reports it
    return found


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_page(page, runs, record_property):
    try:
        blocks = expand_page(page)
    except BookError as exc:
        pytest.fail(str(exc), pytrace=False)
    plan, run = page_plan(page, blocks)
    if not run:
        return
    unit = unit_of_page(page)
    result, how = runs.get(unit, "cpu")
    record_property("proof", "own" if unit.source == page else "shared")
    record_property("run", how)
    if result.error:
        pytest.fail(failure_message(result, rel(page)), pytrace=False)
    tolerant = not reference_platform()
    problems = []
    for block, real, planned in zip(run, result.outputs, plan["blocks"]):
        if block.output is None:
            if real.strip():
                problems.append(f"{block.where}: this block prints output but the page shows none after it")
            continue
        declared = declared_tolerance(planned["code"]) if tolerant else None
        if not outputs_match(block.output.code, real, declared, marked_machine_dependent(planned["code"])):
            problems.append(f"{block.output.where}: the output shown differs from what the block at "
                            f"{block.where} prints:\n" + diff(block.output.code, real, "shown", "real"))
    if problems:
        pytest.fail("\n\n".join(problems) + "\n\nIf the change is intended, run `make outputs`.", pytrace=False)


@pytest.mark.parametrize("block", _marked_blocks(), ids=lambda b: b.where)
def test_block_not_run(block):
    """Lists the blocks that must not run (the summary shows each with its reason)."""
    assert block.skip_reason.strip(), f"{block.where}: a block marked not to run needs a reason"
    pytest.skip(f"not run by design: {block.skip_reason}")
