"""What the book contains: where pages, snippets, notebooks, outputs and figures live; how a snippet is
split into sections and a notebook into cells; how a page is expanded exactly as the build expands it.
Nothing here runs the book's code (see execution.py) or compares outputs (see outputs.py)."""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SNIPPETS = ROOT / "snippets"
NOTEBOOK_SUFFIX = ".nb.py"
OUTPUT_SUFFIX = ".out.txt"            # a snippet's shown outputs, by section
NOTEBOOK_OUTPUT_SUFFIX = ".out.json"  # a notebook's outputs, by code cell (docs/<part>/<name>.nb.out.json)
FIGURE_DIR = "figures"

SECTION_RE = re.compile(r"--8<--\s*\[\s*(start|end)\s*:\s*([a-z][-_0-9a-z]*)\s*\]")
INCLUDE_RE = re.compile(r'^(?P<indent>[ \t]*)-{1,}8<-{1,}[ \t]+"(?P<target>[^"]+)"[ \t]*$')
SAVEFIG_RE = re.compile(r"""savefig\(\s*["']([-\w]+\.svg)["']""")
SKIP_RE = re.compile(r"""^pytest\.mark\.skip\(\s*reason\s*=\s*(["'])(?P<reason>.+?)\1\s*\)$""")
CELL_RE = re.compile(r"^# %%(?P<rest>.*)$")
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


def is_notebook(source: Path) -> bool:
    return source.name.endswith(NOTEBOOK_SUFFIX)


def output_file(source: Path) -> Path:
    """Where a source's shown outputs are committed: snippets/<part>/<name>.out.txt for a snippet,
    docs/<part>/<name>.nb.out.json for a notebook."""
    suffix = NOTEBOOK_OUTPUT_SUFFIX if is_notebook(source) else OUTPUT_SUFFIX
    return source.with_name(source.name[:-3] + suffix)


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
    """A run of lines of a snippet that lies in one section (or outside every section); for a notebook,
    one code cell (section None)."""
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


def notebook_cells(path: Path) -> list[Chunk]:
    """The code cells of a jupytext percent-format notebook (`# %%` starts a cell, `# %% [markdown]` a
    Markdown cell), in order, with the line each cell's code starts on. Standard library only, so that
    the snippet tests run without jupytext; test_guards checks it agrees with jupytext."""
    lines = path.read_text(encoding="utf-8").splitlines()
    cells: list[Chunk] = []
    kind, first, buf = None, 0, []

    def flush():
        start, end = 0, len(buf)
        while start < end and not buf[start].strip():
            start += 1
        while end > start and not buf[end - 1].strip():
            end -= 1
        if kind == "code" and end > start:
            cells.append(Chunk(None, first + start, "\n".join(buf[start:end]) + "\n"))

    for number, line in enumerate(lines, 1):
        m = CELL_RE.match(line)
        if m:
            flush()
            kind = "markdown" if "[markdown]" in m.group("rest") else "code"
            first, buf = number + 1, []
        elif kind is not None:
            buf.append(line)
    flush()
    return cells


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


def included_targets() -> dict[str, list[str]]:
    """Every include in every page: target -> ['docs/page.md:line', ...]."""
    found: dict[str, list[str]] = {}
    for page in page_files():
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            m = INCLUDE_RE.match(line)
            if m:
                found.setdefault(m.group("target"), []).append(f"{rel(page)}:{number}")
    return found
