"""The suite's own machinery must catch what it promises to catch: a failing snippet, an edited output,
a broken include, a network access. Each test breaks a temporary copy and checks the message names the place."""
from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from tests.tooling.book import (SNIPPETS, BookError, compare_outputs, expand_page, failure_message, output_file,
                                read_outputs, run_plan, snippet_files, snippet_plan)

EXAMPLE = next((s for s in snippet_files() if read_outputs(output_file(s))), None)
needs_example = pytest.mark.skipif(EXAMPLE is None, reason="no snippet with shown output yet")


def _copy(tmp_path: Path) -> Path:
    part = tmp_path / "snippets" / EXAMPLE.parent.name
    part.mkdir(parents=True)
    copy = part / EXAMPLE.name
    shutil.copyfile(EXAMPLE, copy)
    shutil.copyfile(output_file(EXAMPLE), output_file(copy))
    return copy


@needs_example
def test_a_failing_snippet_is_reported_with_its_line(tmp_path):
    copy = _copy(tmp_path)
    text = copy.read_text(encoding="utf-8").rstrip("\n") + "\nraise SystemExit(1)\n"
    copy.write_text(text, encoding="utf-8")
    line = len(text.splitlines())
    work = tmp_path / "work"
    work.mkdir()
    result = run_plan(snippet_plan(copy), work)
    assert result.error is not None, "appending raise SystemExit(1) did not fail the run"
    message = failure_message(result, str(copy))
    assert f"{copy}:{line}" in message and "SystemExit: 1" in message, message


@needs_example
def test_an_edited_output_is_reported_with_its_section(tmp_path):
    copy = _copy(tmp_path)
    out = output_file(copy)
    text = out.read_text(encoding="utf-8")
    # change the first number (or, failing that, the first letter) of the first shown output
    edited, n = re.subn(r"(?<![\w.\[:])(\d)", lambda m: str((int(m.group(1)) + 3) % 10), text.split("\n", 1)[1], count=1)
    out.write_text(text.split("\n", 1)[0] + "\n" + edited, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    result = run_plan(snippet_plan(copy), work)
    assert result.error is None
    problems = compare_outputs(copy, result.outputs, out)
    section = re.search(r"\[start:([^\]]+)\]", text).group(1)
    assert problems and any(f"section '{section}'" in p and "differs" in p for p in problems), problems


needs_markdown = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("pymdownx", "pytest_codeblocks")),
    reason="pymdown-extensions / pytest-codeblocks are not installed (run `make test`)")


@needs_markdown
def test_a_missing_section_is_reported_with_the_page_line(tmp_path):
    snippet = tmp_path / "snippets" / "demo.py"
    snippet.parent.mkdir()
    snippet.write_text("# --8<-- [start:a]\nprint(1)\n# --8<-- [end:a]\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text('# 示例\n\n```python\n--8<-- "demo.py:a"\n```\n', encoding="utf-8")
    blocks = expand_page(page, base_paths=(snippet.parent,))
    assert blocks[0].code == "print(1)\n" and blocks[0].include == ("demo.py", "a") and blocks[0].line == 3
    page.write_text(page.read_text(encoding="utf-8").replace("demo.py:a", "demo.py:nope"), encoding="utf-8")
    with pytest.raises(BookError, match=r"page\.md:4: include 'demo\.py:nope' does not resolve"):
        expand_page(page, base_paths=(snippet.parent,))


@needs_markdown
def test_a_marker_without_reason_is_rejected(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!--pytest.mark.skip-->\n```python\nx = 1\n```\n", encoding="utf-8")
    with pytest.raises(BookError, match=r"page\.md:2: unsupported marker"):
        expand_page(page, base_paths=(SNIPPETS,))


def test_snippets_cannot_reach_the_network(tmp_path):
    code = "import socket\nsocket.create_connection(('203.0.113.1', 80), timeout=2)\n"
    plan = {"file": str(tmp_path / "net.py"),
            "blocks": [{"code": code, "filename": str(tmp_path / "net.py"), "firstline": 1, "label": "net.py:1"}]}
    result = run_plan(plan, tmp_path)
    assert result.error and "is blocked" in result.error["traceback"], result


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_tests_cannot_reach_the_network():
    from pytest_socket import SocketConnectBlockedError
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("203.0.113.1", 80), timeout=2)


def test_a_broken_formula_fails_the_build_naming_the_page():
    pytest.importorskip("quickjs", reason="quickjs is not installed (run `make test`)")
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (run `make test`)")
    import importlib.util
    from types import SimpleNamespace

    from mkdocs.exceptions import PluginError

    from tests.tooling.book import DOCS, ROOT
    spec = importlib.util.spec_from_file_location("book_hooks", ROOT / "overrides" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    page = SimpleNamespace(file=SimpleNamespace(src_uri="part9/demo.md"))
    good = hooks.render_math('<span class="arithmatex">\\(x^2\\)</span>', page, str(DOCS))
    assert 'class="katex"' in good and "\\(" not in good
    with pytest.raises(PluginError, match=r"part9/demo\.md: KaTeX cannot typeset '\\\\frac\{1\}\{'"):
        hooks.render_math('<div class="arithmatex">\\[\\frac{1}{\\]</div>', page, str(DOCS))
