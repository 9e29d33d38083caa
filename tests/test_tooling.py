"""The suite's own machinery must catch what it promises to catch: a failing snippet, an edited output,
a broken include, a network access (each with the result cache on and off); the fork server must behave
like a fresh interpreter where it matters; the cache must be invalidated by every input; a page shares its
snippet's run only when its code is exactly the snippet's. Each test works on temporary copies."""
from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from tests.tooling import cache, execution
from tests.tooling.execution import failure_message, run_plan, snippet_plan
from tests.tooling.outputs import compare_outputs, machine_dependent, outputs_match, read_outputs
from tests.tooling.runs import RunStore, Unit, shares_run
from tests.tooling.sources import ROOT, SNIPPETS, BookError, expand_page, output_file, snippet_files

EXAMPLE = next((s for s in snippet_files() if read_outputs(output_file(s))), None)
needs_example = pytest.mark.skipif(EXAMPLE is None, reason="no snippet with shown output yet")
needs_markdown = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("pymdownx", "pytest_codeblocks")),
    reason="pymdown-extensions / pytest-codeblocks are not installed (run `make test`)")


def _copy(tmp_path: Path) -> Path:
    part = tmp_path / "snippets" / EXAMPLE.parent.name
    part.mkdir(parents=True)
    copy = part / EXAMPLE.name
    shutil.copyfile(EXAMPLE, copy)
    shutil.copyfile(output_file(EXAMPLE), output_file(copy))
    return copy


@pytest.fixture(params=["cache off", "cache on"])
def store(request, tmp_path, monkeypatch):
    """A RunStore as the tests use it; with the cache on, its entries live in a temporary folder."""
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / "cache")
    runs = RunStore()
    runs.use_cache = request.param == "cache on"
    return runs


def _run_twice(store: RunStore, source: Path, mutate) -> tuple:
    """Run the pristine copy (filling the cache when it is on), mutate it, and run it again as the next
    session would (a new memo, the same cache)."""
    first, _ = store.get(Unit(source), "cpu")
    assert first.error is None, first.error
    mutate()
    again = RunStore()
    again.use_cache = store.use_cache
    return again.get(Unit(source), "cpu")


@needs_example
def test_a_failing_snippet_is_reported_with_its_line(tmp_path, store):
    copy = _copy(tmp_path)
    text = copy.read_text(encoding="utf-8").rstrip("\n") + "\nraise SystemExit(1)\n"
    result, how = _run_twice(store, copy, lambda: copy.write_text(text, encoding="utf-8"))
    assert how == "ran" and result.error is not None, "appending raise SystemExit(1) did not fail the run"
    message = failure_message(result, str(copy))
    assert f"{copy}:{len(text.splitlines())}" in message and "SystemExit: 1" in message, message


@needs_example
def test_an_edited_output_is_reported_with_its_section(tmp_path, store):
    copy = _copy(tmp_path)
    out = output_file(copy)
    text = out.read_text(encoding="utf-8")
    # change the first number (or, failing that, the first letter) of the first shown output
    edited, n = re.subn(r"(?<![\w.\[:])(\d)", lambda m: str((int(m.group(1)) + 3) % 10), text.split("\n", 1)[1], count=1)
    result, how = _run_twice(store, copy, lambda: out.write_text(text.split("\n", 1)[0] + "\n" + edited, encoding="utf-8"))
    assert result.error is None
    assert how == "ran" or store.use_cache, how
    problems = compare_outputs(copy, result.outputs, out)
    section = re.search(r"\[start:([^\]]+)\]", text).group(1)
    assert problems and any(f"section '{section}'" in p and "differs" in p for p in problems), problems


@needs_markdown
def test_a_missing_section_is_reported_with_the_page_line(tmp_path, store):
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


def test_snippets_cannot_reach_the_network(tmp_path, store):
    net = tmp_path / "net.py"
    net.write_text("print('ok')\n", encoding="utf-8")
    code = "import socket\nsocket.create_connection(('203.0.113.1', 80), timeout=2)\n"
    result, _ = _run_twice(store, net, lambda: net.write_text(code, encoding="utf-8"))
    assert result.error and "is blocked" in result.error["traceback"], result
    assert f"{net}:2" in failure_message(result, str(net))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_tests_cannot_reach_the_network():
    from pytest_socket import SocketConnectBlockedError
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("203.0.113.1", 80), timeout=2)


# ---------------------------------------------------------------- the fork server

def _plan(tmp_path: Path, code: str, name: str = "demo.py") -> dict:
    path = tmp_path / name
    return {"file": str(path), "blocks": [{"code": code, "filename": str(path), "firstline": 1, "label": f"{name}:1"}]}


def _run(tmp_path: Path, code: str, fresh: bool = False, timeout: float = 60, name: str = "demo") -> execution.RunResult:
    cwd = tmp_path / name
    cwd.mkdir()
    extra = {"BOOK_TEST_FRESH": "1"} if fresh else None  # a run with an environment of its own is fresh
    return run_plan(_plan(tmp_path, code), cwd, "cpu", extra, timeout=timeout)


def test_the_fork_server_is_used_for_cpu_runs(tmp_path):
    result = _run(tmp_path, "print('hello')\n")
    assert result.error is None and result.outputs == ["hello\n"]
    assert result.how == ("fresh" if execution.fresh_only() else "fork")


def test_a_forgotten_import_still_fails(tmp_path):
    """The server has imported numpy and torch, but a run's __main__ is fresh: the names are not there."""
    for name, code in {"np": "x = np.zeros(3)\n", "torch": "t = torch.ones(2)\n"}.items():
        result = _run(tmp_path, code, name=name)
        assert result.error and f"NameError: name '{name}' is not defined" in result.error["traceback"], result


STATE = """import os, sys, random
import numpy as np
import torch
import matplotlib
print("dtype", torch.get_default_dtype())
print("threads", torch.get_num_threads())
print("linewidth", matplotlib.rcParams["lines.linewidth"])
print("env", os.environ.get("BOOK_LEAK"))
print("path", "/leak" in sys.path, sys.path[0] == os.getcwd())
print("files", sorted(os.listdir(".")))
print("main", sorted(k for k in globals() if not k.startswith("__")))
"""
CHANGE = """
torch.set_default_dtype(torch.float64)
torch.set_num_threads(3)
torch.manual_seed(123)
np.random.seed(123)
random.seed(123)
matplotlib.rcParams["lines.linewidth"] = 7
os.environ["BOOK_LEAK"] = "1"
sys.path.append("/leak")
open("leak.txt", "w").write("x")
leaked = 1
"""
DRAW = "print('draw', torch.rand(1).item(), float(np.random.rand()), random.random())\n"


def test_what_a_run_changes_is_never_seen_by_the_next(tmp_path):
    changed = _run(tmp_path, STATE + CHANGE, name="a")
    assert changed.error is None, changed.error
    after = _run(tmp_path, STATE + DRAW, name="b")
    again = _run(tmp_path, STATE + DRAW, name="c")
    fresh = _run(tmp_path, STATE + DRAW, fresh=True, name="d")
    assert after.error is None and fresh.error is None, (after.error, fresh.error)
    state = lambda r: r.outputs[0].rsplit("draw", 1)[0]
    # the same state as a fresh interpreter: default dtype, pinned threads, default rcParams, no leaked
    # variable, path entry, file or global
    assert state(after) == state(fresh) == state(again), (state(after), state(fresh))
    assert "dtype torch.float32" in state(after) and "env None" in state(after) and "files []" in state(after)
    assert f"threads {execution.numeric_env()['OMP_NUM_THREADS']}" in state(after)
    # random states are fresh and unpredictable, as in a new interpreter (never the seed a run set, never shared)
    draws = [r.outputs[0].rsplit("draw", 1)[1] for r in (after, again, fresh)]
    assert len(set(draws)) == 3, draws


def test_a_crash_fails_that_run_only(tmp_path):
    crashed = _run(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", name="crash")
    assert crashed.error and "killed by signal 9" in crashed.error["traceback"], crashed
    assert _run(tmp_path, "print(2)\n", name="next").outputs == ["2\n"]


def test_a_hang_fails_that_run_only(tmp_path):
    hung = _run(tmp_path, "import time\ntime.sleep(600)\n", timeout=3, name="hang")
    assert hung.error and "timed out after 3 s" in hung.error["traceback"], hung
    assert _run(tmp_path, "print(3)\n", name="next").outputs == ["3\n"]


# ---------------------------------------------------------------- the result cache

def test_every_input_invalidates_the_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / "cache")
    snippet = tmp_path / "snippets" / "part9" / "demo.py"
    snippet.parent.mkdir(parents=True)
    snippet.write_text("# --8<-- [start:a]\nprint(1)\n# --8<-- [end:a]\n", encoding="utf-8")
    out = output_file(snippet)
    out.write_text("# --8<-- [start:a]\n1\n# --8<-- [end:a]\n", encoding="utf-8")
    page = tmp_path / "docs" / "part9" / "demo.md"
    page.parent.mkdir(parents=True)
    page.write_text("# 示例\n\n```python\nprint(1)\n```\n", encoding="utf-8")
    runner, lock = tmp_path / "runner.py", tmp_path / "requirements.txt"
    runner.write_text("# runner\n", encoding="utf-8")
    lock.write_text("torch==2.13.0\n", encoding="utf-8")
    key = lambda: cache.key(snippet, (page,), "cpu", harness=[runner, lock])
    seen = {key()}
    for path, edit in [(snippet, "print(2)"), (out, "2"), (page, "print(2)"), (runner, "# runner 2"),
                       (lock, "torch==2.14.0")]:
        path.write_text(path.read_text(encoding="utf-8").replace("print(1)", edit).replace("\n1\n", f"\n{edit}\n")
                        .replace("# runner", edit).replace("torch==2.13.0", edit), encoding="utf-8")
        new = key()
        assert new not in seen, f"editing {path.name} did not change the cache key"
        seen.add(new)
    assert key() != cache.key(snippet, (page,), "cuda", harness=[runner, lock])
    # two notebooks of one folder read the same files (each runs in a copy of the folder): still two keys
    first, second = tmp_path / "docs" / "part9" / "a.nb.py", tmp_path / "docs" / "part9" / "b.nb.py"
    first.write_text("# %%\nprint(1)\n", encoding="utf-8")
    second.write_text("# %%\nprint(2)\n", encoding="utf-8")
    for nb in (first, second):
        output_file(nb).write_text('{"cells": []}', encoding="utf-8")
    assert cache.inputs(first) == cache.inputs(second)
    assert cache.key(first, (), "cpu", harness=[runner]) != cache.key(second, (), "cpu", harness=[runner])

    # a file the code read: recorded with the entry, checked when the entry is read back
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("一", encoding="utf-8")
    result = execution.RunResult(["1\n"], None, "", 0, reads=[str(corpus)])
    cache.store(key(), result)
    assert cache.load(key()).outputs == ["1\n"]
    corpus.write_text("二", encoding="utf-8")
    assert cache.load(key()) is None, "editing a file the run read did not invalidate the entry"


def test_the_runner_records_the_repository_files_a_run_reads(tmp_path):
    target = ROOT / "requirements.txt"
    result = _run(tmp_path, f"open({str(target)!r}).read()\nimport torch\n")
    assert result.error is None and result.reads == [str(target)], result.reads


# ---------------------------------------------------------------- sharing a run

def test_a_page_shares_a_run_only_when_its_code_is_the_snippets(tmp_path):
    snippet = tmp_path / "s.py"
    snippet.write_text("# --8<-- [start:a]\nx = 1\n# --8<-- [end:a]\n# --8<-- [start:b]\nprint(x)\n# --8<-- [end:b]\n",
                       encoding="utf-8")
    plan = snippet_plan(snippet)
    same = {"file": "page.md", "blocks": [dict(b, label="page") for b in plan["blocks"]]}
    assert shares_run(same, plan)
    assert not shares_run({"file": "page.md", "blocks": same["blocks"][::-1]}, plan), "reordered"
    assert not shares_run({"file": "page.md", "blocks": same["blocks"][:1]}, plan), "partial"
    extra = dict(same["blocks"][0], code="y = 2\n", filename="page.md", firstline=9)
    assert not shares_run({"file": "page.md", "blocks": same["blocks"] + [extra]}, plan), "an extra block"
    uses_file = {"file": "page.md", "blocks": [dict(b, code=b["code"] + "print(__file__)\n") for b in plan["blocks"]]}
    assert not shares_run(uses_file, {"file": "s.py", "blocks": uses_file["blocks"]}), "__file__ differs"


def test_declared_tolerances_apply_to_decimals_only():
    assert not outputs_match("acc 57.7", "acc 57.3")
    assert outputs_match("acc 57.7", "acc 57.3", declared=1.0)
    assert not outputs_match("acc 57.7", "acc 59.3", declared=1.0)
    assert not outputs_match("params 15210", "params 15211", declared=1.0), "integers stay exact"
    assert not outputs_match("偏低 57.7", "一致 57.7", declared=1.0), "text stays exact"


def test_machine_dependent_sections_compare_text_only(tmp_path):
    source = tmp_path / "demo.py"
    source.write_text("# --8<-- [start:time]\n# 随机器而变：墙钟时间\nprint('eager 12.5 ms')\n# --8<-- [end:time]\n"
                      "# --8<-- [start:count]\nprint('params 10')\n# --8<-- [end:count]\n", encoding="utf-8")
    assert machine_dependent(source) == {"time"}
    out = tmp_path / "demo.out.txt"
    out.write_text("# --8<-- [start:time]\neager 3.1 ms\n# --8<-- [end:time]\n"
                   "# --8<-- [start:count]\nparams 10\n# --8<-- [end:count]\n", encoding="utf-8")
    assert compare_outputs(source, ["eager 12.5 ms\n", "params 10\n"], out) == []
    assert compare_outputs(source, ["eager 12.5 ms\n", "params 11\n"], out), "unmarked numbers stay exact"
    assert compare_outputs(source, ["compiled 12.5 ms\n", "params 10\n"], out), "text stays exact"
    assert compare_outputs(source, ["eager 12.5 ms 2\n", "params 10\n"], out), "as many numbers"


# ---------------------------------------------------------------- the build (overrides/hooks/, one concern per module)

def _hook(name: str):
    """Load overrides/hooks/<name>.py as mkdocs does (a module of its own)."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (run `make test`)")
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"book_hook_{name}", ROOT / "overrides" / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_hook_module_is_listed_in_mkdocs_yml():
    from tests.tooling.sources import mkdocs_config
    listed = sorted(Path(p).name for p in mkdocs_config()["hooks"])
    assert listed == sorted(p.name for p in (ROOT / "overrides" / "hooks").glob("*.py"))


def test_the_notebook_hooks_fail_loudly_on_other_mkdocs_jupyter_internals(monkeypatch):
    pytest.importorskip("mkdocs_jupyter", reason="mkdocs-jupyter is not installed (run `make test`)")
    notebooks = _hook("notebooks")
    pinned = re.search(r"^mkdocs-jupyter==(\S+)$", (ROOT / "requirements.txt").read_text(encoding="utf-8"), re.M)
    assert pinned and pinned.group(1) == notebooks.MKDOCS_JUPYTER_VERSION, "requirements.txt pins another version"
    assert notebooks.internals_problems() == []
    import mkdocs_jupyter.plugin as nb_plugin
    monkeypatch.delattr(nb_plugin, "_get_markdown_toc")
    assert notebooks.internals_problems() == ["mkdocs_jupyter.plugin._get_markdown_toc is gone"]
    from mkdocs.exceptions import PluginError
    with pytest.raises(PluginError, match="_get_markdown_toc is gone"):
        notebooks.on_config(None)


DIAGRAM_PAGE = """---
title: 演示
---
# 演示

```mermaid
flowchart LR
    A["输入 x<sub>1</sub>"] --> B["输出"]
```

````markdown
```mermaid
flowchart LR
    示例 --> 不是图
```
````

!!! note "缩进的图"

    ```mermaid
    flowchart TD
        C["甲 & 乙"] -->|"边"| D
    ```
"""


def _diagram_page(tmp_path, text=DIAGRAM_PAGE):
    """docs/part9/demo.md in a temporary docs folder, with SVGs recorded for its fences as make diagrams
    records them (the drawing itself is a stand-in: the hook only inlines it)."""
    from tests.tooling import diagrams
    page = tmp_path / "docs" / "part9" / "demo.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text, encoding="utf-8")
    for fence in diagrams.fences([page]):
        fence.svg.parent.mkdir(exist_ok=True)
        fence.svg.write_text(diagrams.with_record(f'<svg id="{fence.id}"><text>{fence.n}</text></svg>', fence),
                             encoding="utf-8")
    return page


def _build_page(hooks, page, markdown_text):
    """Run the diagram hook on a page as mkdocs does, with the Markdown converted by the site's superfences."""
    import markdown
    from types import SimpleNamespace
    from tests.tooling.sources import mkdocs_config
    import importlib
    fences = next(e["pymdownx.superfences"] for e in mkdocs_config()["markdown_extensions"]
                  if isinstance(e, dict) and "pymdownx.superfences" in e)
    custom = []
    for fence in fences["custom_fences"]:  # mkdocs.yml names the formatter with a !!python/name tag
        module, _, name = fence["format"].removeprefix("!!python/name:").rpartition(".")
        custom.append({**fence, "format": getattr(importlib.import_module(module), name)})
    fences = {**fences, "custom_fences": custom}
    md = markdown.Markdown(extensions=["admonition", "pymdownx.superfences"],
                           extension_configs={"pymdownx.superfences": fences})
    mk = SimpleNamespace(file=SimpleNamespace(abs_src_path=str(page), src_uri="part9/demo.md"), meta={})
    body = markdown_text.split("---\n", 2)[2]  # mkdocs hands the hooks the Markdown without its front matter
    hooks.on_page_markdown(body, mk, {}, None)
    return hooks.on_page_content(md.convert(body), mk, {}, None)


def test_the_notebook_stylesheet_keeps_every_rule_that_can_apply():
    notebooks = _hook("notebooks")
    css = ("/* a comment { with braces } */ .jupyter-wrapper{--used: red;--chain: var(--used);--unused: blue}"
           ".jupyter-wrapper .jp-Cell{color:var(--chain)}"
           ".jupyter-wrapper :is(.jp-Cell:hover,.jp-mod-active) .x{display:flex}"
           "[data-md-color-scheme=slate] .jupyter-wrapper .jp-Cell{color:white}"
           ".jupyter-wrapper .md-typeset__scrollwrap{margin:0}"
           ".jupyter-wrapper .jp-Toolbar{display:none}"
           "@media (max-width: 10px){.jp-Menu{x:1}.jp-Cell{y:2}}")
    page = f'<style type="text/css">{css}</style><div class="jupyter-wrapper"><div class="jp-Cell"><p class="x">a</p></div></div>'
    out = notebooks.prune_styles(page)
    kept = out[out.index(">") + 1:out.index("</style>")]
    assert "--used: red" in kept and "--chain: var(--used)" in kept and "--unused" not in kept
    assert ":is(.jp-Cell:hover,.jp-mod-active) .x{display:flex}" in kept, "a comma inside :is() splits no selector"
    assert "[data-md-color-scheme=slate]" in kept and "md-typeset__scrollwrap" in kept
    assert "jp-Toolbar" not in kept and "jp-Menu" not in kept and "@media (max-width: 10px){.jp-Cell{y:2}}" in kept
    assert "comment" not in kept


def test_the_diagram_hook_inlines_the_committed_svgs(tmp_path):
    """Each ```mermaid fence (also an indented one; not one shown inside another fence) becomes its committed
    SVG, inline in a .diagram box; the page keeps no .mermaid element for Material to load Mermaid for, and
    the hash of the fence as the HTML carries it equals the hash of the fence as the file has it."""
    diagrams = _hook("diagrams")
    page = _diagram_page(tmp_path)
    assert [line for line, _ in diagrams.mermaid_fences(DIAGRAM_PAGE)] == [6, 20]
    html = _build_page(diagrams, page, DIAGRAM_PAGE)
    assert html.count('<div class="diagram"><svg id="diagram-demo-') == 2, html
    assert '<svg id="diagram-demo-1"><text>1</text></svg>' in html and "diagram-demo-2" in html
    assert 'class="mermaid"' not in html and "source-sha256" not in html
    assert "示例 --&gt; 不是图" in html, "a fence shown inside a ````markdown example is not a diagram"


def test_a_missing_or_stale_diagram_fails_the_build_naming_page_and_line(tmp_path):
    from mkdocs.exceptions import PluginError
    diagrams = _hook("diagrams")
    page = _diagram_page(tmp_path)
    (page.parent / "diagrams" / "demo-2.svg").unlink()
    with pytest.raises(PluginError, match=r"part9/demo\.md:20: .*demo-2\.svg is missing.*`make diagrams`"):
        _build_page(diagrams, page, DIAGRAM_PAGE)
    page = _diagram_page(tmp_path)
    edited = DIAGRAM_PAGE.replace('B["输出"]', 'B["输出 y"]')
    page.write_text(edited, encoding="utf-8")
    with pytest.raises(PluginError, match=r"part9/demo\.md:6: .*demo-1\.svg was rendered from other source.*"
                                          r"\(stale\).*`make diagrams`"):
        _build_page(diagrams, page, edited)


def test_the_diagram_guard_reports_stale_missing_and_orphaned_svgs(tmp_path):
    """The guard in test_guards.py (no browser: it compares hashes) names page:line and the command."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (run `make test`)")
    from tests.tooling import diagrams
    page = _diagram_page(tmp_path)
    docs = tmp_path / "docs"
    assert diagrams.problems([page], docs) == []
    page.write_text(DIAGRAM_PAGE.replace('B["输出"]', 'B["输出 y"]'), encoding="utf-8")
    (page.parent / "diagrams" / "demo-2.svg").rename(page.parent / "diagrams" / "demo-3.svg")
    found = diagrams.problems([page], docs)
    assert len(found) == 3, found
    assert re.search(r"part9/demo\.md:6: .*demo-1\.svg is stale.*`make diagrams`", found[0]), found[0]
    assert re.search(r"part9/demo\.md:20: .*demo-2\.svg is missing.*`make diagrams`", found[1]), found[1]
    assert re.search(r"demo-3\.svg: orphaned.*`make diagrams`", found[2]), found[2]
    svg = page.parent / "diagrams" / "demo-1.svg"
    svg.write_text(svg.read_text(encoding="utf-8").replace("renderer: mermaid", "renderer: old mermaid"),
                   encoding="utf-8")
    page.write_text(DIAGRAM_PAGE, encoding="utf-8")
    assert any("demo-1.svg is stale: rendered by old mermaid" in p for p in diagrams.problems([page], docs))


def test_diagram_labels_are_svg_text_with_sub_and_superscripts(tmp_path):
    """<sub>/<sup> reach Mermaid as invisible marks and come back as smaller, shifted tspans (dy, shifted
    back where normal text resumes); other HTML in a label is refused naming its line."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (run `make test`)")
    from tests.tooling import diagrams
    page = _diagram_page(tmp_path)
    fence = diagrams.fences([page])[0]
    assert diagrams.mermaid_text(fence) == 'flowchart LR\n    A["输入 x\u20611\u2062"] --> B["输出"]'
    row = '<tspan class="text-outer-tspan row" x="0">'
    word = '<tspan class="text-inner-tspan">{}</tspan>'
    svg = row + word.format("w\u2061i j") + word.format(" k\u2062x") + word.format("\u2063T\u2064") + "</tspan>"
    assert diagrams.shift_marks(svg) == (
        row + word.format('w<tspan dy="4" style="font-size:75%">i j</tspan>')
        + word.format('<tspan style="font-size:75%"> k</tspan><tspan dy="-4">x</tspan>')
        + word.format('<tspan dy="-6" style="font-size:75%">T</tspan>') + "</tspan>")
    page.write_text(DIAGRAM_PAGE.replace('B["输出"]', 'B["<b>输出</b>"]'), encoding="utf-8")
    with pytest.raises(diagrams.DiagramError, match=r"part9/demo\.md:8: .*'<b>'.*only <br/>, <sub> and <sup>"):
        diagrams.mermaid_text(diagrams.fences([page])[0])


def test_diagram_paths_lose_only_what_draws_nothing():
    """rough.js's straight Béziers become lines and its zero-length pieces go; curves and other paths stay."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (run `make test`)")
    from tests.tooling.diagrams import simplify_path
    assert simplify_path("M0 0 C1 0, 2 0, 3 0 M3 0 C3 0, 3 0, 3 0 M3 0 C3 1, 3 2, 3 3") == "M0 0L3 0M3 0L3 3"
    assert simplify_path("M0 0 C1 1, 2 -1, 3 0 Z") == "M0 0C1 1 2 -1 3 0Z"
    assert simplify_path("M0 0 C-1 0, 4 0, 3 0") == "M0 0C-1 0 4 0 3 0", "control points beyond the ends overshoot"
    assert simplify_path("M0 0 A5 5 0 0 1 10 0") == "M0 0 A5 5 0 0 1 10 0"
    assert simplify_path("m0 0 l3 0") == "m0 0 l3 0"


def test_make_diagrams_renders_deterministic_svg_and_names_a_broken_diagram(tmp_path, browser):
    """The renderer (headless Chromium, vendored Mermaid) writes SVG with text labels and the record the
    guard reads, twice the same; a syntax error fails naming the page line and Mermaid's message."""
    from tests.tooling import diagrams
    page = _diagram_page(tmp_path)
    todo = diagrams.fences([page])
    first = diagrams.render(todo, log=lambda *_: None, browser=browser)
    assert first == diagrams.render(todo, log=lambda *_: None, browser=browser), "rendering twice gave other bytes"
    svg = first[todo[0].svg]
    assert diagrams.hook().recorded_hash(svg) == todo[0].hash and f"renderer: {diagrams.renderer()}" in svg
    assert "<foreignObject" not in svg and '<svg id="diagram-demo-1"' in svg and "输入" in svg
    assert 'style="font-size:75%">1</tspan>' in svg and "&lt;sub" not in svg
    for path, text in first.items():
        path.write_text(text, encoding="utf-8")
    assert diagrams.problems([page], tmp_path / "docs") == []
    broken = DIAGRAM_PAGE.replace('--> B["输出"]', '--> B["输出"')
    page.write_text(broken, encoding="utf-8")
    with pytest.raises(diagrams.DiagramError, match=r"(?s)part9/demo\.md:8: Mermaid cannot render diagram 1 "
                                                   r"\(the fence at line 6\):\n.*Parse error on line.*<sub>1</sub>.*make diagrams"):
        diagrams.render(diagrams.fences([page]), log=lambda *_: None, browser=browser)


def test_the_search_hooks_keep_the_index_and_the_offline_shim_local(tmp_path):
    import json
    from types import SimpleNamespace
    search = _hook("search")
    index = tmp_path / "search_index.json"
    data = {"docs": [{"location": "", "title": "反向传播", "text": "链式法则"}]}
    index.write_text(json.dumps(data), encoding="utf-8")  # ASCII escapes, as Material writes it
    before = index.stat().st_size
    search.compact_index(index)
    assert json.loads(index.read_text(encoding="utf-8")) == data and index.stat().st_size < before
    assert "反向传播" in index.read_text(encoding="utf-8")
    config = SimpleNamespace(extra={"polyfills": ["https://unpkg.com/iframe-worker/shim"]})
    search.on_config(config)
    assert config.extra["polyfills"] == [search.IFRAME_WORKER]



def test_a_broken_formula_fails_the_build_naming_the_page():
    pytest.importorskip("quickjs", reason="quickjs is not installed (run `make test`)")
    from types import SimpleNamespace

    from mkdocs.exceptions import PluginError

    from tests.tooling.sources import DOCS
    hooks = _hook("formulas")
    page = SimpleNamespace(file=SimpleNamespace(src_uri="part9/demo.md"))
    good = hooks.render_math('<span class="arithmatex">\\(x^2\\)</span>', page, str(DOCS))
    assert 'class="katex"' in good and "\\(" not in good
    with pytest.raises(PluginError, match=r"part9/demo\.md: KaTeX cannot typeset '\\\\frac\{1\}\{'"):
        hooks.render_math('<div class="arithmatex">\\[\\frac{1}{\\]</div>', page, str(DOCS))


def test_notebook_formulas_are_typeset_at_build_time_outside_code():
    pytest.importorskip("quickjs", reason="quickjs is not installed (run `make test`)")
    from types import SimpleNamespace

    from mkdocs.exceptions import PluginError

    from tests.tooling.sources import DOCS
    formulas = _hook("formulas")
    page = SimpleNamespace(file=SimpleNamespace(src_uri="part9/demo.nb.py"))
    cell = ('<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown jp-MarkdownOutput" data-mime-type="text/markdown">'
            '<p>设 $x_1 &lt; y$，且</p><p>$$\\frac{a}{b}$$</p><p><code>echo $HOME $PATH</code></p></div>'
            '<!-- Load mathjax -->\n<script src="assets/vendor/katex/katex.min.js"> </script>'
            '<script type="text/x-mathjax-config">init_mathjax();</script>')
    html = formulas.on_page_content(cell, page, {"docs_dir": str(DOCS)}, None)
    assert html.count('<span class="katex">') == 2 and 'katex-display' in html
    assert "<code>echo $HOME $PATH</code>" in html, "dollars inside code are not math"
    assert "<script" not in html, "the math script and MathJax configuration are removed"
    with pytest.raises(PluginError, match=r"part9/demo\.nb\.py: KaTeX cannot typeset"):
        formulas.on_page_content(cell.replace("x_1", "\\frac{1}{"), page, {"docs_dir": str(DOCS)}, None)


def test_the_build_renders_committed_notebook_outputs_and_reports_stale_ones(tmp_path, caplog):
    """The build runs no code: a notebook page gets the outputs committed beside it, cell by cell; outputs
    made from other code are not shown and are reported (which fails the strict build)."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (run `make test`)")
    jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (run `make test`)")
    import json
    hooks = _hook("notebooks")
    nb_path = tmp_path / "demo.nb.py"
    nb_path.write_text("# %% [markdown]\n# # 示例\n\n# %%\nprint(1)\n\n# %%\nprint(2)\n", encoding="utf-8")
    out = tmp_path / "demo.nb.out.json"
    stream = lambda text: {"output_type": "stream", "name": "stdout", "text": text}
    out.write_text(json.dumps({"cells": [{"line": 5, "source": "print(1)", "outputs": [stream("1\n")]},
                                         {"line": 8, "source": "print(2)", "outputs": [stream("2\n")]}]}),
                   encoding="utf-8")
    nb = hooks.attach_outputs(jupytext.read(nb_path), str(nb_path))
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.outputs[0]["text"] for c in code] == ["1\n", "2\n"] and [c.execution_count for c in code] == [1, 2]
    assert not caplog.records
    nb_path.write_text(nb_path.read_text(encoding="utf-8").replace("print(2)", "print(3)"), encoding="utf-8")
    nb = hooks.attach_outputs(jupytext.read(nb_path), str(nb_path))
    assert [c.outputs for c in nb.cells if c.cell_type == "code"][1] == []
    assert any("make outputs FILES=" in r.getMessage() and "other code" in r.getMessage() for r in caplog.records)


def test_one_fork_server_serves_every_test(tmp_path):
    """The server is keyed by the runs' environment; what pytest changes per test must not start a new one."""
    if execution.fresh_only():
        pytest.skip("BOOK_FRESH=1: no fork server")
    _run(tmp_path, "print(1)\n", name="one")
    servers = set(map(id, execution._servers.values()))
    import os
    os.environ["PYTEST_CURRENT_TEST"] = "another test (call)"
    _run(tmp_path, "print(1)\n", name="two")
    assert set(map(id, execution._servers.values())) == servers


# ---------------------------------------------------------------- numbers in prose

PROSE_PAGE = """---
numbers:
  code: ["0.05"]
  sources:
    "94%": 论文表 1
---
# 演示

学习率取 0.05，损失从 2.4455 降到 0.1546，测试准确率 95.8%，<output>33</output> 个样本，三个种子的均值为 83.2 ± 1.8%。
论文报告 94%，见 2.4 节与 [12.3 复现](x.md)。

```python
lr = 0.05
print("loss 2.4455 -> 0.1546")
```

```text title="输出"
--8<-- "demo.out.txt:run"
```
"""
PROSE_OUTPUT = ("# --8<-- [start:run]\nloss 2.4455 -> 0.1546\nacc 0.958, 33 samples\nmean 83.2 ± 1.8\n"
                "# --8<-- [end:run]\n")


@needs_markdown
@pytest.mark.parametrize("edit, line, number", [
    (("0.1546", "0.1547"), 9, "0.1547"),
    (("95.8%", "95.9%"), 9, "95.9%"),
    (("<output>33</output>", "<output>34</output>"), 9, "34"),
    (("83.2 ± 1.8%", "83.2 ± 1.9%"), 9, "83.2 ± 1.9%"),
    (("学习率取 0.05", "学习率取 0.5"), 9, "0.5"),
])
def test_an_edited_number_in_prose_is_reported_with_page_and_line(tmp_path, edit, line, number):
    from tests.tooling.prose import check_numbers
    (tmp_path / "demo.out.txt").write_text(PROSE_OUTPUT, encoding="utf-8")
    page = tmp_path / "demo.md"
    page.write_text(PROSE_PAGE, encoding="utf-8")
    verdict = check_numbers(page, base_paths=(tmp_path,))
    assert not verdict.problems, verdict.problems
    assert any("94% — 论文表 1" in d for d in verdict.declared) and any("0.05 — set by the code" in d for d in verdict.declared)
    edited = check_numbers(page, PROSE_PAGE.replace(*edit), base_paths=(tmp_path,))
    assert any(p.startswith(f"{page}:{line}: ") and f" {number} is in no output" in p for p in edited.problems), edited.problems


@needs_markdown
def test_machine_dependent_outputs_back_no_prose_number(tmp_path):
    from tests.tooling.prose import check_numbers
    (tmp_path / "demo.out.txt").write_text(PROSE_OUTPUT, encoding="utf-8")
    page = tmp_path / "demo.md"
    page.write_text(PROSE_PAGE.replace("lr = 0.05\n", "lr = 0.05\n# 随机器而变：墙钟时间\n"), encoding="utf-8")
    assert any(" 0.1546 is in no output" in p for p in check_numbers(page, base_paths=(tmp_path,)).problems)


@needs_markdown
def test_declarations_must_be_true_and_current(tmp_path):
    from tests.tooling.prose import check_numbers
    (tmp_path / "demo.out.txt").write_text(PROSE_OUTPUT, encoding="utf-8")
    page = tmp_path / "demo.md"
    page.write_text(PROSE_PAGE, encoding="utf-8")
    no_literal = check_numbers(page, PROSE_PAGE.replace("lr = 0.05", "lr = 0.5"), base_paths=(tmp_path,))
    assert any("0.05 is declared under numbers.code, but the code" in p for p in no_literal.problems)
    stale = check_numbers(page, PROSE_PAGE.replace("论文报告 94%", "论文报告的数"), base_paths=(tmp_path,))
    assert any("numbers.sources declares '94%'" in p for p in stale.problems)
    unquoted = PROSE_PAGE.replace('code: ["0.05"]', "code: [0.05]")
    with pytest.raises(BookError, match="unquoted"):
        check_numbers(page, unquoted, base_paths=(tmp_path,))


@needs_markdown
def test_editing_a_number_on_a_real_page_fails_the_check():
    """On the book's own pages: change the last digit of a number the prose quotes from an output."""
    from tests.tooling.prose import Printed, check_numbers, page_outputs, prose, stated_numbers
    from tests.tooling.sources import page_files
    for page in page_files():
        if check_numbers(page).problems:
            continue
        printed = Printed.of(page_outputs(page))
        for s in stated_numbers(prose(page)):
            value = s.values[0]
            if s.kind != "decimal" or not printed.has(value):
                continue
            new = value[:-1] + str((int(value[-1]) + 1) % 10)
            if printed.has(new):
                continue
            lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
            lines[s.line - 1] = re.sub(rf"(?<![\d.]){re.escape(value)}(?!\d)", new, lines[s.line - 1], count=1)
            problems = check_numbers(page, "".join(lines)).problems
            assert any(p.startswith(f"{page.relative_to(ROOT)}:{s.line}: ") and f" {new} " in p for p in problems), \
                (page, value, new, problems)
            return
    pytest.skip("no page passes the check with a decimal quoted from its outputs")


# ---------------------------------------------------------------- the book's corpus (make corpus)

def test_the_corpus_snapshot_names_a_commit_of_this_repository():
    from tests.tooling.corpus import CORPUS, read_header_commit
    assert CORPUS.is_file(), "docs/part4/book_corpus.txt is missing: run `make corpus` and commit it"
    commit = read_header_commit(CORPUS)
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: cannot check that the snapshot's commit is in this repository's history")
    import subprocess
    found = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True)
    assert found.returncode == 0, f"book_corpus.txt names commit {commit}, which is not in this repository"
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    body = [line for line in lines if not line.startswith("# ")]
    assert body and all(line.strip() for line in body), "one non-empty paragraph per line after the header"
    assert f"{len(body)} 段，{sum(map(len, body))} 字" in lines[0], lines[0]


def test_the_labelled_corpus_is_exactly_what_its_commit_gives():
    import json
    from tests.tooling.corpus import LABELLED, labelled_header, labelled_records
    assert LABELLED.is_file(), "docs/part8/book_corpus.jsonl is missing: run `make corpus WHICH=part8` and commit it"
    header, *records = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    assert records and all(r["text"].strip() and r["title"] for r in records)
    assert {r["part"] for r in records} >= {"part1", "part2", "appendix", ""}
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: cannot regenerate the snapshot from its commit")
    again = labelled_records(header["commit"])
    assert records == again, f"book_corpus.jsonl differs from what commit {header['commit']} gives"
    assert header == labelled_header(header["commit"], header["date"], again)


def test_the_labelled_cleaner_turns_headings_into_labels():
    from tests.tooling.corpus import clean, clean_sections
    page = """# 9.3 `torch.compile` 的标题

导读这一段在第一个二级标题之前，属于导读。

## 原理

### 图与守卫 $G$

这一段在三级标题之下，标签记下两级标题。

## 小结

- 小结的第一条要点写在列表里。
"""
    records = clean_sections(page)
    assert records == [
        {"title": "9.3 torch.compile 的标题", "h2": "", "h3": "", "text": "导读这一段在第一个二级标题之前，属于导读。"},
        {"title": "9.3 torch.compile 的标题", "h2": "原理", "h3": "图与守卫 G", "text": "这一段在三级标题之下，标签记下两级标题。"},
        {"title": "9.3 torch.compile 的标题", "h2": "小结", "h3": "", "text": "小结的第一条要点写在列表里。"},
    ], records
    assert [r["text"] for r in records] == clean(page)   # the headings here are too short to be paragraphs


def test_the_corpus_cleaner_keeps_prose_and_drops_code_formulas_and_links():
    from tests.tooling.corpus import clean, notebook_markdown
    page = """---
numbers:
  code: ["前言里的元数据不该留下"]
---
# 1.1 标题里的文字保留下来

第一段正文讲损失函数，公式 $L = \\sum_i (y_i - \\hat y_i)^2$ 和代码 `torch.nn.MSELoss()` 都要去掉，
链接 [2.6 损失函数的那一节](../part2/losses.md) 只留下文字，图片 ![图片说明文字不该留下](figures/x.svg) 整个去掉。

$$
\\mathrm{display} = \\frac{a}{b}
$$

```python
print("代码块里的中文不该留下")
```

!!! note "提示框的标题不该留下"

    提示框里的正文保留下来，而其中的代码不保留：

    ```python
    x = "缩进代码块里的中文也不该留下"
    ```

| 表头中文不该留下 | 第二列 |
|---|---|
| 表格里的中文不该留下 | 二 |

--8<-- "part1/不该留下的引用.py:a"
<!-- 注释里的中文不该留下 -->
- 列表项的文字保留，<output>6</output> 个标签去掉后只剩数字，网址 https://example.com/不该留下 去掉
"""
    paragraphs = clean(page)
    text = "\n".join(paragraphs)
    assert "不该留下" not in text, text
    for leftover in ("$", "`", "](", "<", "---", "numbers", "torch", "print", "sum", "frac", "http", "|", "#", "!!!"):
        assert leftover not in text, (leftover, text)
    assert paragraphs[0] == "1.1 标题里的文字保留下来", paragraphs
    assert "链接 2.6 损失函数的那一节 只留下文字" in paragraphs[1], paragraphs[1]
    assert paragraphs[2:] == ["提示框里的正文保留下来，而其中的代码不保留：",
                              "列表项的文字保留，6 个标签去掉后只剩数字，网址 去掉"], paragraphs
    notebook = '# %% [markdown]\n# 笔记本的说明文字保留下来，代码格去掉\n\n# %%\nx = "代码格里的中文不该留下"\n'
    assert clean(notebook_markdown(notebook)) == ["笔记本的说明文字保留下来，代码格去掉"]
