"""The prose of a page (what a reader reads outside code), and the checks made on it:

- every measurement it states (a decimal, a percentage, a ± pair, or a count tagged <output>…</output>)
  appears in an output of that page, or is declared with where it comes from (`numbers:` in the page's
  front matter; in a notebook, under the `jupyter:` key of its jupytext header);
- one translation per term: the glossary (appendix/notation.md) names the variants it rejects;
- Chinese quotation marks 「」, never “” or ‘’.

Declarations (keys are the numbers exactly as the prose writes them):

    numbers:
      code: ["0.1"]                          # a literal the page's own code sets (checked: it is in that code)
      pages: [part12/mnist1d_benchmark.nb.py]  # other pages whose outputs this page quotes (checked)
      sections: ["4.2"]                      # section numbers of sections not written yet
      sources:                               # anything else, with where it comes from (listed in the summary)
        "6.43%": He 等（2016）表 6
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tests.tooling.sources import (DOCS, BookError, expand_page, is_notebook, notebook_cells,
                                   output_file, python_blocks, rel)

FENCE_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})")
INLINE_CODE_RE = re.compile(r"(?P<ticks>`+)(?!`).*?(?<!`)(?P=ticks)(?!`)")
COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
LINK_TARGET_RE = re.compile(r"\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
URL_RE = re.compile(r"(?:https?|file)://[^\s)>\]」，。]+|\barXiv:\s*\d+\.\d+(?:v\d+)?", re.I)
TAG_RE = re.compile(r"<output>\s*(?P<number>[^<]*?)\s*</output>")
LINK_TEXT_RE = re.compile(r"\[(?P<text>[^\]]*)\]\(")

NUM = r"\d+(?:\.\d+)?"
_LEFT = r"(?<![A-Za-z0-9_.\-])"  # not part of a name (float64, W1), a longer number or a range like 2-3
PAIR_RE = re.compile(rf"(?<![A-Za-z0-9_.])[-−+]?(?P<a>{NUM})\s*(?P<pa>[%％])?\s*±\s*(?P<b>{NUM})(?P<pb>\s*[%％])?")
PERCENT_RE = re.compile(rf"(?<![A-Za-z0-9_.])[-−+]?(?P<n>{NUM})\s*[%％]")
DECIMAL_RE = re.compile(r"(?<![A-Za-z0-9_.])[-−+]?(?P<n>\d+\.\d+(?:\.\d+)*(?:[eE][-+]?\d+)?)(?![0-9A-Za-z_])")
SECTION_AFTER_RE = re.compile(r"^\s*(?:节|小节)")
SECTION_BEFORE_RE = re.compile(r"第\s*$")
# a number that looks like a section of the book (2.2, 12.3) is still a measurement or a version here:
MEASURE_AFTER_RE = re.compile(r"^\s*(?:×|\\times|\\cdot|\^|个?百分点|[%％]|倍|秒|分钟)")
VERSION_BEFORE_RE = re.compile(r"(?:PyTorch|Python|torch|CUDA|cu|版本|v)\s*[≥≤><=]*\s*$", re.I)
OUT_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9_.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
OUT_PERCENT_RE = re.compile(r"(?<![A-Za-z0-9_.])(\d+(?:\.\d+)?)\s*[%％]")
OUT_PAIR_RE = re.compile(rf"(?P<a>{NUM})\s*%?\s*±\s*(?P<b>{NUM})")

CN_QUOTES = "“”‘’"


# ---------------------------------------------------------------- prose lines

def _blank(text: str, pattern: re.Pattern) -> str:
    """Replace every match by spaces, so that columns keep their meaning."""
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def _front_matter(lines: list[str]) -> int:
    """Number of lines the YAML front matter takes (0 if none)."""
    if lines and lines[0].strip() == "---":
        for i, line in enumerate(lines[1:], 1):
            if line.strip() in ("---", "..."):
                return i + 1
    return 0


def markdown_prose(text: str, first_line: int = 1, links: bool = False) -> list[tuple[int, str]]:
    """(line number, text) of the prose lines of Markdown: fenced code, inline code, HTML comments and (unless
    `links`) link targets are blanked; the front matter is skipped."""
    text = COMMENT_RE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    lines = text.splitlines()
    out = []
    fence = None
    for i, line in enumerate(lines[_front_matter(lines):], _front_matter(lines)):
        m = FENCE_RE.match(line)
        if fence is None and m:
            fence = m.group("fence")
            continue
        if fence is not None:
            if m and m.group("fence")[0] == fence[0] and len(m.group("fence")) >= len(fence) \
                    and not line[m.end():].strip():
                fence = None
            continue
        if line.lstrip().startswith("--8<--"):
            continue
        line = _blank(line, INLINE_CODE_RE)
        out.append((first_line + i, line if links else _blank(_blank(line, LINK_TARGET_RE), URL_RE)))
    return out


def notebook_markdown_cells(text: str) -> list[tuple[int, list[str]]]:
    """The Markdown cells of a jupytext percent-format notebook's text, uncommented, each with the line it
    starts on."""
    cells, current = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("# %%"):
            current = [] if "[markdown]" in line else None
            if current is not None:
                cells.append((number + 1, current))
        elif current is not None:
            current.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    return cells


def notebook_markdown(path: Path, links: bool = False) -> list[tuple[int, str]]:
    """The prose of a notebook's Markdown cells, with their line numbers."""
    out = []
    for first, body in notebook_markdown_cells(path.read_text(encoding="utf-8")):
        out += markdown_prose("\n".join(body), first, links)
    return out


def prose(source: Path, text: str | None = None, links: bool = False) -> list[tuple[int, str]]:
    if is_notebook(source):
        if text is not None:
            raise ValueError("only Markdown pages take replacement text")
        return notebook_markdown(source, links)
    return markdown_prose(source.read_text(encoding="utf-8") if text is None else text, links=links)


# ---------------------------------------------------------------- declarations

def declarations(source: Path, text: str | None = None) -> dict:
    """The page's `numbers:` declarations (empty lists/dicts when it has none)."""
    import yaml
    text = source.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines()
    if is_notebook(source):
        header = []
        if lines and lines[0] == "# ---":
            for line in lines[1:]:
                if line == "# ---":
                    break
                header.append(line[2:])
        meta = (yaml.safe_load("\n".join(header)) or {}).get("jupyter", {}) if header else {}
    else:
        n = _front_matter(lines)
        meta = yaml.safe_load("\n".join(lines[1:n - 1])) or {} if n else {}
    numbers = meta.get("numbers") or {}
    where = rel(source)
    unknown = set(numbers) - {"code", "pages", "sources", "sections"}
    if unknown:
        raise BookError(f"{where}: unknown keys under numbers: {sorted(unknown)}")
    found = {"code": numbers.get("code") or [], "pages": numbers.get("pages") or [],
             "sections": numbers.get("sections") or [], "sources": numbers.get("sources") or {}}
    for key in ("code", "sections"):
        for value in found[key]:
            if not isinstance(value, str):
                raise BookError(f"{where}: numbers.{key} lists {value!r} unquoted; write it as the prose does, "
                                f"in quotes (\"{value}\")")
    for value, why in found["sources"].items():
        if not isinstance(value, str):
            raise BookError(f"{where}: numbers.sources has the key {value!r} unquoted; quote it as the prose writes it")
        if not str(why or "").strip():
            raise BookError(f"{where}: numbers.sources[{value!r}] must say where the number comes from")
    return found


# ---------------------------------------------------------------- measurements in prose

@dataclass(frozen=True)
class Stated:
    line: int
    kind: str      # decimal, percent, pair, count
    text: str      # as written (the key a declaration uses)
    values: tuple  # the numbers to find: ("0.1546",) or ("83.2", "1.8")
    percent: bool = False


@lru_cache(maxsize=None)
def book_sections() -> frozenset[str]:
    """Section numbers of the book's pages, from the titles in mkdocs.yml's nav (2.4, 12.3…)."""
    from tests.tooling.renumber import nav_numbers
    return frozenset(nav_numbers().values())


def _section_columns(line: str, header: list[str] | None) -> list[tuple[int, int]]:
    """Spans of the cells of a table row that lie in a column headed 章节 (a glossary's 首次出现的章节)."""
    if not header:
        return []
    spans, start = [], line.index("|") + 1
    for i, cell in enumerate(line.strip().strip("|").split("|")):
        end = line.find("|", start)
        end = len(line) if end < 0 else end
        if i < len(header) and "章节" in header[i]:
            spans.append((start, end))
        start = end + 1
    return spans


def stated_numbers(lines: list[tuple[int, str]]) -> list[Stated]:
    found: list[Stated] = []
    header = None  # the header row of the table the line is in
    for number, line in lines:
        if not line.lstrip().startswith("|"):
            header = None
        elif header is None:
            header = [c.strip() for c in line.strip().strip("|").split("|")]
        section_cells = _section_columns(line, header) if line.lstrip().startswith("|") else []
        for m in TAG_RE.finditer(line):
            found.append(Stated(number, "count", m.group("number"), (m.group("number").lstrip("−-+"),)))
        line = _blank(line, TAG_RE)
        link_texts = [m.span("text") for m in LINK_TEXT_RE.finditer(line)]
        for m in PAIR_RE.finditer(line):
            percent = bool(m.group("pa") or m.group("pb"))
            found.append(Stated(number, "pair", m.group(0).strip(), (m.group("a"), m.group("b")), percent))
        line = _blank(line, PAIR_RE)
        for m in PERCENT_RE.finditer(line):
            found.append(Stated(number, "percent", m.group(0).strip(), (m.group("n"),), True))
        line = _blank(line, PERCENT_RE)
        for m in DECIMAL_RE.finditer(line):
            value = m.group("n")
            if value.count(".") > 1:
                continue  # a version (2.13.0)
            start = m.start("n")
            in_link = any(a <= start < b for a, b in link_texts + section_cells)
            if in_link or SECTION_AFTER_RE.match(line[m.end():]) or SECTION_BEFORE_RE.search(line[:start]):
                continue  # a reference to a section of the book (2.4 节, 第 2.4 节, [12.1](reading.md))
            if value in book_sections() and not (MEASURE_AFTER_RE.match(line[m.end():])
                                                 or VERSION_BEFORE_RE.search(line[:start])):
                continue  # 「与 12.3 相同」: a section named by its number alone
            found.append(Stated(number, "decimal", m.group(0).strip(), (value,)))
    return found


# ---------------------------------------------------------------- outputs of a page

def results_files(source: Path) -> list[Path]:
    """The results files a notebook reads (results/<name>.json beside it)."""
    text = source.read_text(encoding="utf-8")
    names = re.findall(r"""["']([-\w]+\.json)["']""", text)
    return [p for n in names if (p := source.parent / "results" / n).is_file()]


def page_outputs(source: Path, base_paths: tuple[Path, ...] | None = None) -> str:
    """Everything this page shows as output: the .out.txt sections it includes, or a notebook's committed
    outputs and the results files it reads."""
    from tests.tooling.outputs import cell_text, read_notebook_outputs
    if is_notebook(source):
        from tests.tooling.outputs import machine_dependent
        free = machine_dependent(source)
        kept = [c for i, c in enumerate(read_notebook_outputs(output_file(source))) if str(i) not in free]
        parts = [cell_text(c["outputs"]) for c in kept]
        for cell in kept:
            for o in cell["outputs"]:  # tables shown as HTML
                html = o.get("data", {}).get("text/html")
                if html:
                    parts.append(html if isinstance(html, str) else "".join(html))
        parts += [p.read_text(encoding="utf-8") for p in results_files(source)]
        return "\n".join(parts)
    from tests.tooling.outputs import marked_machine_dependent
    blocks = expand_page(source, base_paths)
    machine = {id(b.output) for b in blocks if b.output is not None and marked_machine_dependent(b.code)}
    return "\n".join(b.code for b in blocks if b.is_output and id(b) not in machine)


def page_code(source: Path, text: str | None = None, base_paths: tuple[Path, ...] | None = None) -> str:
    if is_notebook(source):
        return "\n".join(c.code for c in notebook_cells(source))
    if text is None:
        return "\n".join(b.code for b in python_blocks(expand_page(source, base_paths)))
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / source.name
        copy.write_text(text, encoding="utf-8")
        return "\n".join(b.code for b in python_blocks(expand_page(copy, base_paths)))


@dataclass
class Printed:
    tokens: set = field(default_factory=set)
    pairs: set = field(default_factory=set)
    percents: set = field(default_factory=set)

    @classmethod
    def of(cls, text: str) -> "Printed":
        tokens = set(OUT_TOKEN_RE.findall(text))
        tokens |= {re.split(r"[eE]", t)[0] for t in tokens}  # 2.4e+51 is also quoted as 2.4 × 10⁵¹
        return cls(tokens, {(m["a"], m["b"]) for m in OUT_PAIR_RE.finditer(text)}, set(OUT_PERCENT_RE.findall(text)))

    def has(self, value: str) -> bool:
        return value in self.tokens

    def has_percent(self, value: str) -> bool:
        """p% is printed as p% (or, with decimals, as p in a table of percentages), or as the fraction p/100
        with two more decimals (95.8% as 0.958). An integer p% never matches a bare integer p."""
        return (value in self.percents or ("." in value and value in self.tokens)
                or any(_as_percent(t, value) for t in self.tokens if "." in t))

    def has_pair(self, a: str, b: str, percent: bool = False) -> bool:
        """a ± b is printed as that pair (a percentage pair also as fractions: 83.2 ± 1.8% as 0.832 ± 0.018)."""
        return (a, b) in self.pairs or percent and any(_as_percent(x, a) and _as_percent(y, b) for x, y in self.pairs)


def _as_percent(printed: str, value: str) -> bool:
    decimals = len(value.partition(".")[2])
    return len(printed.partition(".")[2]) == decimals + 2 and f"{float(printed) * 100:.{decimals}f}" == value


def _page_path(ref: str, source: Path) -> Path:
    path = (DOCS / ref).resolve()
    if not path.is_file():
        raise BookError(f"{rel(source)}: numbers.pages names {ref!r}, which is not a page under docs/")
    return path


# ---------------------------------------------------------------- the check

@dataclass
class Verdict:
    problems: list[str]
    declared: list[str]   # "page:line: number — where it comes from"


def check_numbers(source: Path, text: str | None = None, base_paths: tuple[Path, ...] | None = None) -> Verdict:
    """Every stated measurement is printed by this page's code (or a page it names), or declared. `text`
    replaces the page's source (the page's outputs stay those of the file); `base_paths` replace the
    folders includes are read from (both for the tests of this check)."""
    where = rel(source)
    decl = declarations(source, text)
    sections = set(decl["sections"])
    stated = stated_numbers(prose(source, text))
    printed = Printed.of(page_outputs(source, base_paths) + "\n" + "\n".join(page_outputs(_page_path(p, source))
                                                                 for p in decl["pages"]))
    code = Printed.of(page_code(source, text, base_paths))
    problems, declared, used = [], [], set()
    for s in stated:
        if s.kind == "pair":
            ok = printed.has_pair(*s.values, percent=s.percent)
        elif s.kind == "percent":
            ok = printed.has_percent(s.values[0])
        else:
            ok = printed.has(s.values[0])
        if ok:
            continue
        key = s.text.lstrip("−-+").replace(" ", "")
        candidates = [s.text, s.text.lstrip("−-+"), key, s.values[0]]
        hit = next((c for c in candidates if c in decl["sources"]), None)
        if hit is not None:
            used.add(("sources", hit))
            declared.append(f"{where}:{s.line}: {s.text} — {decl['sources'][hit]}")
            continue
        hit = next((c for c in candidates if c in decl["code"]), None)
        if hit is not None:
            used.add(("code", hit))
            if not (code.has(hit.rstrip("%")) if not hit.endswith("%") else code.has_percent(hit[:-1])):
                problems.append(f"{where}:{s.line}: {s.text} is declared under numbers.code, but the code on "
                                "this page has no such literal")
            else:
                declared.append(f"{where}:{s.line}: {s.text} — set by the code on this page")
            continue
        hit = next((c for c in candidates if c in sections), None)
        if hit is not None:
            used.add(("sections", hit))
            continue
        what = {"pair": "the pair", "percent": "the percentage", "decimal": "the number",
                "count": "the tagged count"}[s.kind]
        problems.append(f"{where}:{s.line}: {what} {s.text} is in no output of this page "
                        "and is not declared under `numbers:` (see tests/tooling/prose.py)")
    for key in ("code", "sections", "sources"):
        for value in decl[key]:
            if (key, value) not in used:
                problems.append(f"{where}: numbers.{key} declares {value!r}, but the prose states it nowhere "
                                "that needs a declaration (remove it)")
    return Verdict(problems, declared)


# ---------------------------------------------------------------- words and quotation marks

GLOSSARY = DOCS / "appendix" / "notation.md"


def rejected_variants() -> dict[str, str]:
    """Rejected variant -> chosen term, from the glossary's term tables (column 不用的译法)."""
    rejected = {}
    header = None
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        if "不用的译法" in header and "术语" in header:
            row = dict(zip(header, cells))
            for variant in re.split(r"[、，,]", row["不用的译法"]):
                variant = variant.strip().strip("「」")
                if variant:
                    rejected[variant] = row["术语"]
    return rejected


def term_problems(source: Path, rejected: dict[str, str]) -> list[str]:
    problems = []
    for number, line in prose(source):
        if source == GLOSSARY and "|" in line:
            continue  # the glossary's own tables name the rejected variants
        for variant, chosen in rejected.items():
            if variant in line:
                problems.append(f"{rel(source)}:{number}: 「{variant}」 — the glossary's term is 「{chosen}」")
    return problems


def quote_problems(source: Path) -> list[str]:
    problems = []
    for number, line in prose(source):
        bad = sorted({c for c in line if c in CN_QUOTES})
        if bad:
            problems.append(f"{rel(source)}:{number}: {' '.join(bad)} — Chinese prose quotes with 「」 (『』 inside)")
        for m in re.finditer(r'"([^"]*[\u4e00-\u9fff][^"]*)"', line):
            if not re.match(r"^\s*(?:!!!|\?\?\?|===)", line) and "<" not in line[:m.start()][-40:]:
                problems.append(f"{rel(source)}:{number}: \"{m.group(1)[:20]}\" — Chinese prose quotes with 「」")
    return problems

