"""Chinese typography (spaces between Chinese and Latin letters or digits, full-width punctuation in Chinese
sentences) is linted with autocorrect, the maintained tool for it; rules in .autocorrectrc."""
from __future__ import annotations

import difflib

import pytest

from tests.tooling.sources import ROOT, notebook_files, page_files, rel

ac = pytest.importorskip("autocorrect_py", reason="autocorrect-py is not installed (run `make test`)")
ac.load_config((ROOT / ".autocorrectrc").read_text(encoding="utf-8"))


def _changes(old: str, new: str) -> str:
    parts = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(None, old, new).get_opcodes():
        if op != "equal":
            parts.append(f"«{old[max(0, a1 - 8):a2 + 8]}» → «{new[max(0, b1 - 8):b2 + 8]}»")
    return "; ".join(parts)


@pytest.mark.parametrize("source", page_files() + notebook_files(), ids=rel)
def test_chinese_typography(source):
    kind = "python" if source.suffix == ".py" else "markdown"
    result = ac.lint_for(source.read_text(encoding="utf-8"), kind)
    problems = [f"{rel(source)}:{line.line}: {_changes(line.old, line.new)}" for line in result.lines]
    assert not problems, ("Chinese typography (fix by hand, or see `autocorrect_py.format_for`):\n  "
                          + "\n  ".join(problems))


@pytest.mark.parametrize("source", page_files() + notebook_files(), ids=rel)
def test_one_translation_per_term(source):
    """The glossary (appendix/notation.md, 统一的译法) names the variants it rejects; none may appear in prose."""
    from tests.tooling.prose import rejected_variants, term_problems
    rejected = rejected_variants()
    assert rejected, "the glossary lists no rejected variants (table with columns 术语 and 不用的译法)"
    problems = term_problems(source, rejected)
    assert not problems, "terms the glossary translates otherwise:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("source", page_files() + notebook_files(), ids=rel)
def test_chinese_quotation_marks(source):
    from tests.tooling.prose import quote_problems
    problems = quote_problems(source)
    assert not problems, "quotation marks:\n  " + "\n  ".join(problems)
