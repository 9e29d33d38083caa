"""The book's conventions in code: where pages, snippets, outputs and figures live, how a page is
expanded and run, and how a shown output is compared with a real one. Used by the tests and by the
commands in the Makefile; the conventions themselves are described in README.md (贡献指南).
"""
from __future__ import annotations

import difflib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SNIPPETS = ROOT / "snippets"
RUNNER = Path(__file__).with_name("runner.py")
NOTEBOOK_SUFFIX = ".nb.py"
OUTPUT_SUFFIX = ".out.txt"
FIGURE_DIR = "figures"
SNIPPET_TIMEOUT = 600  # seconds; a snippet should take a few

SECTION_RE = re.compile(r"--8<--\s*\[\s*(start|end)\s*:\s*([a-z][-_0-9a-z]*)\s*\]")
INCLUDE_RE = re.compile(r'^(?P<indent>[ \t]*)-{1,}8<-{1,}[ \t]+"(?P<target>[^"]+)"[ \t]*$')
SAVEFIG_RE = re.compile(r"""savefig\(\s*["']([-\w]+\.svg)["']""")
SKIP_RE = re.compile(r"""^pytest\.mark\.skip\(\s*reason\s*=\s*(["'])(?P<reason>.+?)\1\s*\)$""")
PY_LANGS = {"python", "py", "python3"}


class BookError(Exception):
    """A problem in the book's sources; the message names the file and line."""


def rel(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- discovery

def snippet_files() -> list[Path]:
    return sorted(SNIPPETS.rglob("*.py"))


def notebook_files() -> list[Path]:
    return sorted(DOCS.rglob("*" + NOTEBOOK_SUFFIX))


def page_files() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "assets" not in p.relative_to(DOCS).parts)


def output_file(snippet: Path) -> Path:
    return snippet.with_name(snippet.stem + OUTPUT_SUFFIX)


def figure_dir(source: Path) -> Path:
    """Where the committed figures of a snippet (or notebook) live: docs/<part>/figures/."""
    part = source.parent.relative_to(SNIPPETS if source.is_relative_to(SNIPPETS) else DOCS)
    return DOCS / part / FIGURE_DIR


def figures_of(source: Path) -> list[str]:
    """File names of the SVG figures a snippet saves (`fig.savefig("name.svg")`)."""
    return SAVEFIG_RE.findall(source.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- snippet sections

@dataclass
class Chunk:
    """A run of lines of a snippet that lies in one section (or outside every section)."""
    section: str | None
    firstline: int
    code: str


def split_sections(path: Path) -> list[Chunk]:
    """Split a snippet at its `# --8<-- [start:name]` / `[end:name]` markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    chunks: list[Chunk] = []
    current: str | None = None
    opened_at = 0
    seen: set[str] = set()
    buf: list[str] = []
    first = 1

    def flush(next_first: int):
        nonlocal buf, first
        if any(line.strip() for line in buf):
            chunks.append(Chunk(current, first, "\n".join(buf) + "\n"))
        buf, first = [], next_first

    for number, line in enumerate(lines, 1):
        m = SECTION_RE.search(line)
        if not m:
            buf.append(line)
            continue
        kind, name = m.groups()
        where = f"{rel(path)}:{number}"
        if line[:1].isspace():
            raise BookError(f"{where}: section marker '{name}' is indented; sections must be top-level code")
        if kind == "start":
            if current is not None:
                raise BookError(f"{where}: section '{name}' starts inside section '{current}' "
                                f"(opened at line {opened_at}); sections do not nest")
            if name in seen:
                raise BookError(f"{where}: section '{name}' appears twice")
            flush(number + 1)
            current, opened_at = name, number
            seen.add(name)
        else:
            if current != name:
                raise BookError(f"{where}: end of section '{name}' but "
                                + (f"section '{current}' is open" if current else "no section is open"))
            flush(number + 1)
            current = None
    if current is not None:
        raise BookError(f"{rel(path)}:{opened_at}: section '{current}' is never closed")
    flush(len(lines) + 1)
    return chunks


def snippet_plan(path: Path) -> dict:
    return {"file": str(path), "blocks": [
        {"code": c.code, "filename": str(path), "firstline": c.firstline,
         "label": f"{rel(path)}:{c.firstline}" + (f" (section '{c.section}')" if c.section else "")}
        for c in split_sections(path)]}


# ---------------------------------------------------------------- outputs

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


NUMBER_RE = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w])")


def _tolerance(token: str) -> float:
    """Two units in the last printed decimal, and never less than 1e-5 relative. A number printed
    without decimals ("6." as torch prints whole values) must be equal up to that 1e-5."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    ulp = 10.0 ** (-decimals) * (10.0 ** int(exponent) if exponent else 1.0) if decimals else 0.0
    return max(2 * ulp, 1e-5 * abs(float(token)))


def outputs_match(expected: str, actual: str) -> bool:
    """Text must be equal; numbers may differ by rounding (see _tolerance); integers must be equal."""
    expected, actual = normalize(expected), normalize(actual)
    if expected == actual:
        return True
    e_text, a_text = NUMBER_RE.split(expected), NUMBER_RE.split(actual)
    e_nums, a_nums = NUMBER_RE.findall(expected), NUMBER_RE.findall(actual)
    if e_text != a_text or len(e_nums) != len(a_nums):
        return False
    for e, a in zip(e_nums, a_nums):
        if re.fullmatch(r"[-+]?\d+", e):
            if int(e) != int(float(a)) or not re.fullmatch(r"[-+]?\d+", a):
                return False
        elif abs(float(e) - float(a)) > _tolerance(e) * (1 + 1e-9):  # the bound itself counts as a match
            return False
    return True


def compare_outputs(source: Path, outputs: list[str], out: Path | None = None) -> list[str]:
    """Problems between a snippet's committed outputs and the outputs of a real run, as messages."""
    out = out or output_file(source)
    shown = read_outputs(out)
    real = section_outputs(source, outputs)
    problems = []
    for section in sorted(set(shown) | set(real)):
        if section not in real:
            problems.append(f"{rel(out)}: section '{section}' is shown on {shown_at(out, section)} "
                            "but the code no longer prints anything there")
        elif section not in shown:
            problems.append(f"{rel(out)}: section '{section}' prints output that is not in the file")
        elif not outputs_match(shown[section], real[section]):
            problems.append(f"{rel(out)}: section '{section}' (shown on {shown_at(out, section)}) differs from "
                            f"the real output of {rel(source)}:\n"
                            + diff(shown[section], real[section], "shown", "real"))
    return problems


def diff(expected: str, actual: str, shown: str, real: str) -> str:
    lines = difflib.unified_diff(normalize(expected).splitlines(), normalize(actual).splitlines(),
                                 shown, real, lineterm="")
    return "\n".join(lines)


# ---------------------------------------------------------------- running code

@dataclass
class RunResult:
    outputs: list[str]
    error: dict | None
    stderr: str
    returncode: int


def device_env(device: str) -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0", PYTHONUNBUFFERED="1",
               PYTHONIOENCODING="utf-8")
    if env.get("PYTHONPATH", "").startswith(str(ROOT)):  # snippets must not import this repository's code
        env.pop("PYTHONPATH")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def prepare_workdir(source: Path, cwd: Path) -> Path:
    """A notebook runs in a copy of its own folder, as Jupyter (and the site build) run it in place, so it
    can read the files beside it (results/*.json) without writing into docs/. A snippet runs in an empty
    directory: it writes only temporary files and its figures."""
    if source.name.endswith(NOTEBOOK_SUFFIX):
        shutil.copytree(source.parent, cwd, dirs_exist_ok=True)
    return cwd


def run_plan(plan: dict, cwd: Path, device: str = "cpu", extra_env: dict | None = None) -> RunResult:
    """Run a plan (see runner.py) in a fresh interpreter with `cwd` as working directory."""
    plan_file = cwd / ".plan.json"
    result_file = cwd / ".result.json"
    plan_file.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
    env = device_env(device) | (extra_env or {})
    try:
        proc = subprocess.run([sys.executable, str(RUNNER), str(plan_file), str(result_file)],
                              cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8",
                              timeout=SNIPPET_TIMEOUT)
    except subprocess.TimeoutExpired:
        return RunResult([], {"block": -1, "label": plan["file"],
                              "traceback": f"timed out after {SNIPPET_TIMEOUT} s"}, "", -1)
    finally:
        plan_file.unlink(missing_ok=True)
    if result_file.is_file():
        data = json.loads(result_file.read_text(encoding="utf-8"))
        result_file.unlink()
    else:  # the interpreter died (segfault, os._exit in the code, ...)
        data = {"outputs": [], "error": {"block": -1, "label": plan["file"],
                                         "traceback": f"the interpreter exited with code {proc.returncode}"}}
    return RunResult(data["outputs"], data["error"], proc.stderr, proc.returncode)


def failure_message(result: RunResult, what: str) -> str:
    """A message that names the failing place first, then the end of the traceback."""
    err = result.error or {}
    tb = err.get("traceback", "")
    frames = re.findall(r'File "([^"]+)", line (\d+)', tb)
    ours = [(f, n) for f, n in frames if Path(f).is_absolute() and Path(f).resolve().is_relative_to(ROOT)]
    where = f"{rel(Path(ours[-1][0]))}:{ours[-1][1]}" if ours else err.get("label", what)
    last = tb.strip().splitlines()[-1] if tb.strip() else "failed"
    tail = "\n".join(tb.strip().splitlines()[-12:])
    return f"{where}: {last}\n  in {err.get('label', what)}\n\n{tail}\n\n(stderr)\n{result.stderr[-2000:]}"


# ---------------------------------------------------------------- pages

def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def python_tag(loader, suffix, node):
        return f"!!python/{suffix}"

    def env_tag(loader, node):
        seq = loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else [loader.construct_scalar(node)]
        names, default = (seq[:-1], seq[-1]) if len(seq) > 1 else (seq, None)
        return next((os.environ[n] for n in names if n in os.environ), default)

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", python_tag)
    Loader.add_constructor("!ENV", env_tag)
    return Loader


@lru_cache(maxsize=None)
def mkdocs_config() -> dict:
    import yaml
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_yaml_loader())


def snippets_config(base_paths: tuple[Path, ...] | None = None) -> dict:
    """The pymdownx.snippets options of mkdocs.yml, with base paths made absolute."""
    for ext in mkdocs_config()["markdown_extensions"]:
        if isinstance(ext, dict) and "pymdownx.snippets" in ext:
            cfg = dict(ext["pymdownx.snippets"])
            break
    else:
        raise BookError("mkdocs.yml: pymdownx.snippets is not configured")
    paths = cfg.get("base_path", ["."])
    paths = [paths] if isinstance(paths, str) else paths
    cfg["base_path"] = [str(p) for p in base_paths] if base_paths else [str(ROOT / p) for p in paths]
    return cfg


def _preprocessor(base_paths: tuple[Path, ...] | None):
    import markdown
    md = markdown.Markdown(extensions=["pymdownx.snippets"],
                           extension_configs={"pymdownx.snippets": snippets_config(base_paths)})
    return md.preprocessors["snippet"]


@dataclass
class Block:
    page: Path
    line: int                          # line of the opening fence in the page source
    lang: str
    attrs: str
    code: str
    include: tuple[str, str | None] | None = None   # (file under snippets/, section) if the body is one include
    skip_reason: str | None = None
    output: "Block | None" = None      # the output block shown for this code block

    @property
    def where(self) -> str:
        return f"{rel(self.page)}:{self.line}"

    @property
    def is_output(self) -> bool:
        return bool(self.include and self.include[0].endswith(OUTPUT_SUFFIX))

    @property
    def whole_snippet(self) -> bool:
        return bool(self.include and self.include[1] is None and self.include[0].endswith(".py"))


def resolve_include(target: str, base_paths: list[str]) -> Path | None:
    name = target.split(":", 1)[0] if not re.search(r":\d", target) else target
    for base in base_paths:
        p = Path(base) / name
        if p.is_file():
            return p
    return None


def expand_page(page: Path, base_paths: tuple[Path, ...] | None = None) -> list[Block]:
    """Expand a page's `--8<--` includes exactly as the build does (one line at a time, so that each
    code block keeps the line number of the page it came from), then return its fenced blocks."""
    import pytest_codeblocks

    pre = _preprocessor(base_paths)
    source = page.read_text(encoding="utf-8").splitlines()
    expanded: list[str] = []
    origin: list[int] = []             # expanded line index -> page line number
    include_of: dict[int, str] = {}    # page line number -> include target
    for number, line in enumerate(source, 1):
        m = INCLUDE_RE.match(line)
        if m:
            try:
                lines = pre.run([line])
            except Exception as exc:  # SnippetMissingError and friends
                raise BookError(f"{rel(page)}:{number}: include {m.group('target')!r} does not resolve: {exc}") from None
            include_of[number] = m.group("target")
        else:
            lines = [line]
        expanded.extend(lines)
        origin.extend([number] * len(lines))
    whole = pre.run(list(source))
    if whole != expanded:
        raise BookError(f"{rel(page)}: the page uses a multi-line `--8<--` block; write one include per line")

    blocks: list[Block] = []
    for cb in pytest_codeblocks.extract_from_buffer(io.StringIO("\n".join(expanded) + "\n")):
        fence_line = origin[cb.lineno - 1]
        syntax = cb.syntax.strip().strip("{}").strip()
        lang, _, attrs = syntax.partition(" ")
        lang = lang.lstrip(".").lower()
        body_origin = set(origin[cb.lineno: cb.lineno + max(1, cb.code.count("\n"))])
        include = None
        if len(body_origin) == 1 and (only := next(iter(body_origin))) in include_of:
            target = include_of[only]
            file, _, section = target.partition(":")
            include = (file, section or None)
        block = Block(page, fence_line, lang, attrs, cb.code, include)
        for mark in cb.marks:
            m = SKIP_RE.match(mark)
            if not m:
                raise BookError(f"{block.where}: unsupported marker <!--{mark}-->; a block that must not run is "
                                'marked <!--pytest.mark.skip(reason="why")--> with a reason')
            block.skip_reason = m.group("reason")
        if block.is_output:
            previous = [b for b in blocks if b.lang in PY_LANGS]
            if not previous:
                raise BookError(f"{block.where}: an output block with no code block before it")
            if previous[-1].output is not None:
                raise BookError(f"{block.where}: a second output block for the code block at line {previous[-1].line}")
            previous[-1].output = block
        blocks.append(block)
    return blocks


def python_blocks(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.lang in PY_LANGS]


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


def included_targets() -> dict[str, list[str]]:
    """Every include in every page: target -> ['docs/page.md:line', ...]."""
    found: dict[str, list[str]] = {}
    for page in page_files():
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            m = INCLUDE_RE.match(line)
            if m:
                found.setdefault(m.group("target"), []).append(f"{rel(page)}:{number}")
    return found


def shown_at(output: Path, section: str) -> str:
    if not output.resolve().is_relative_to(SNIPPETS):
        return "no page"
    target = f"{output.resolve().relative_to(SNIPPETS).as_posix()}:{section}"
    return ", ".join(included_targets().get(target, [])) or "no page"


# ---------------------------------------------------------------- regenerating outputs and figures

def regenerate(sources: list[Path]) -> int:
    """Run each snippet on CPU and rewrite its .out.txt and its figures. Returns the number of failures."""
    failures = 0
    rc = Path(__file__).with_name("matplotlibrc")
    for source in sources:
        with tempfile.TemporaryDirectory() as tmp:
            plan = snippet_plan(source)
            result = run_plan(plan, prepare_workdir(source, Path(tmp)), "cpu",
                              {"MATPLOTLIBRC": str(rc), "SOURCE_DATE_EPOCH": "0"})
            if result.error:
                print(failure_message(result, rel(source)), file=sys.stderr)
                failures += 1
                continue
            if not source.name.endswith(NOTEBOOK_SUFFIX):
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
