"""No number on a page that code did not print. Each page's prose (Markdown outside code; a notebook's
Markdown cells) is read for the measurements it states: decimals, percentages, ± pairs, and counts tagged
<output>…</output>. Each must appear in an output of that page (the .out.txt sections it includes, a
notebook's committed outputs, the results files it reads) or be declared with where it comes from (the
page's `numbers:` front matter; see tooling/prose.py). The summary lists every declared number."""
from __future__ import annotations

import pytest

from tests.tooling.prose import check_numbers
from tests.tooling.sources import BookError, notebook_files, page_files, rel

pytest.importorskip("yaml", reason="PyYAML is not installed (run `make test`)")
pytest.importorskip("pymdownx", reason="pymdown-extensions is not installed (run `make test`)")


@pytest.mark.parametrize("source", page_files() + notebook_files(), ids=rel)
def test_prose_numbers_come_from_outputs(source, record_property):
    try:
        verdict = check_numbers(source)
    except BookError as exc:
        pytest.fail(str(exc), pytrace=False)
    record_property("declared_numbers", verdict.declared)
    assert not verdict.problems, (
        "numbers in the prose that no output of the page shows:\n  " + "\n  ".join(verdict.problems)
        + "\n\nMake the code print the number (then `make outputs`), quote it exactly as printed, or declare "
          "where it comes from under `numbers:` in the page's front matter.")
