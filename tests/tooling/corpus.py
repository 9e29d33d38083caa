"""The book's Chinese corpus: a snapshot of the book's own prose, for the pages that train language models on
it (4.1 first; Parts 5, 8 and 11 reuse it). It is taken from the pages of the commit HEAD points at (never
from uncommitted edits, so the header names exactly the text it came from), cleaned of front matter, code,
formulas, links' addresses, images, tables, HTML and include lines, one paragraph of Chinese prose per line.

    python -m tests.tooling.corpus [part4] [part8]      (make corpus, make corpus WHICH=part8)

writes docs/part4/book_corpus.txt, which the site publishes as a download beside 4.1, and
docs/part8/book_corpus.jsonl, the labelled snapshot Part 8 learns from: the same paragraphs without the headings,
each with the part, page and headings it sits under (first line: a JSON header naming the commit). The text
file's first lines start with "# " and describe the snapshot (commit, date, paragraphs, characters); snippets
skip them. The two files may come from different commits: Parts 4-5 keep the older text so that their outputs
stay put, while Part 8 needs the parts written since. Because each is a snapshot, adding or editing pages
changes no shown output until someone runs this command on purpose and commits the new file (then
`make outputs` for the pages that read it).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.tooling.prose import notebook_markdown_cells
from tests.tooling.sources import DOCS, ROOT, rel

CORPUS = DOCS / "part4" / "book_corpus.txt"
LABELLED = DOCS / "part8" / "book_corpus.jsonl"
MIN_HAN = 8  # a kept paragraph has at least this many Chinese characters (drops captions, labels, stray cells)

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<mark>`{3,}|~{3,})")
INLINE = [  # applied in order to each paragraph
    (re.compile(r"<!--.*?-->", re.S), ""),                              # HTML comments
    (re.compile(r"(`+)(?:(?!\1).)+?\1"), ""),                           # inline code
    (re.compile(r"\$\$.+?\$\$"), ""),                                   # display math written inline
    (re.compile(r"(?<![\\$])\$(?!\s)(?:\\.|[^$\\])+?(?<!\s)\$"), ""),  # inline math
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),                          # images
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),                      # links: keep the text
    (re.compile(r"\[([^\]]*)\]\[[^\]]*\]"), r"\1"),                     # reference links
    (re.compile(r"<https?://[^>]*>|https?://\S+"), ""),                 # bare addresses
    (re.compile(r"</?[A-Za-z][^>]*>"), ""),                             # HTML tags (<output>6</output> keeps 6)
    (re.compile(r"\{[:#.][^}]*\}"), ""),                                # attribute lists { .python }
    (re.compile(r"\*\*|__|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])"), ""), # emphasis markers
    (re.compile(r"\s+"), " "),
]
LINE_DROP = re.compile(r"^\s*(?:!!!|\?\?\?\+?|-+8<-+|\|)")       # admonition titles, includes, table rows
LINE_MARKER = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s?)+")  # headings, list markers, quotes


def _join(parts: list[str]) -> str:
    """Join a paragraph's lines: no space between Chinese text, one between Latin words."""
    out = ""
    for part in parts:
        if out and not (HAN.match(out[-1]) or HAN.match(part[0]) or not out[-1].isascii() or not part[0].isascii()):
            out += " "
        out += part
    return out


HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _clean_inline(paragraph: str) -> str:
    for pattern, repl in INLINE:
        paragraph = pattern.sub(repl, paragraph)
    paragraph = re.sub(r" ?([，。；：、！？）」』])", r"\1", paragraph)  # spaces left where formulas were
    return re.sub(r"([（「『]) ", r"\1", paragraph).strip()


def _heading_text(raw: str) -> str:
    """A heading as the site shows it: inline code and formulas keep their text, without the marks."""
    return _clean_inline(re.sub(r"[`$]", "", raw))


def _walk(markdown: str, headings_as_paragraphs: bool) -> list[tuple[tuple[str, str, str], str]]:
    """((h1, h2, h3) in force, paragraph) for each Chinese prose paragraph of a page, in order. A heading
    either becomes a paragraph itself (the plain corpus) or only sets the labels of what follows it."""
    text = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.S)   # front matter
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    found, current, fence, math = [], [], None, False
    heads = ["", "", ""]

    def close():
        if current:
            paragraph = _clean_inline(_join(current))
            if len(HAN.findall(paragraph)) >= MIN_HAN:
                found.append((tuple(heads), paragraph))
            current.clear()

    for line in text.split("\n"):
        if fence:                                   # inside a fenced block: skip to its closing fence
            m = FENCE.match(line)
            if m and m["mark"][0] == fence[0] and len(m["mark"]) >= len(fence) and not line.strip()[len(m["mark"]):].strip():
                fence = None
            continue
        if math:                                    # inside a $$ … $$ block
            if "$$" in line:
                math = False
            continue
        if m := FENCE.match(line):
            close()
            fence = m["mark"]
            continue
        stripped = line.strip()
        if stripped.startswith("$$"):
            close()
            math = stripped == "$$" or not stripped[2:].rstrip().endswith("$$")
            continue
        if not stripped or LINE_DROP.match(line):
            close()
            continue
        if not headings_as_paragraphs and (m := HEADING.match(line)):
            close()
            level = len(m[1])
            if level <= 3:
                heads[level - 1:] = [_heading_text(m[2])] + [""] * (3 - level)
            continue
        if LINE_MARKER.match(line):                 # a heading, list item or quote starts a new paragraph
            close()
            line = LINE_MARKER.sub("", line)
        current.append(line.strip())
    close()
    return found


def clean(markdown: str) -> list[str]:
    """Chinese prose paragraphs of one Markdown page (or notebook Markdown), in order; headings included."""
    return [paragraph for _, paragraph in _walk(markdown, headings_as_paragraphs=True)]


def clean_sections(markdown: str) -> list[dict[str, str]]:
    """The same paragraphs with the headings they sit under as labels (title = the page's # heading,
    h2/h3 = the ## and ### headings in force, "" before the first one); headings are labels, not paragraphs."""
    return [{"title": h1, "h2": h2, "h3": h3, "text": paragraph}
            for (h1, h2, h3), paragraph in _walk(markdown, headings_as_paragraphs=False)]


def notebook_markdown(source: str) -> str:
    """The Markdown cells of a jupytext percent-format notebook, uncommented, a blank line between cells."""
    return "\n\n".join("\n".join(body) for _, body in notebook_markdown_cells(source))


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def pages_at(commit: str) -> list[tuple[str, str]]:
    """(path, Markdown) for every page of the commit: docs/**/*.md and the notebooks' Markdown, sorted by path."""
    names = [n for n in _git("ls-tree", "-r", "--name-only", commit, "--", "docs").splitlines()
             if (n.endswith(".md") or n.endswith(".nb.py")) and "/assets/" not in n]
    found = []
    for name in sorted(names):
        text = _git("show", f"{commit}:{name}")
        found.append((name, notebook_markdown(text) if name.endswith(".nb.py") else text))
    return found


def header(commit: str, date: str, paragraphs: list[str]) -> str:
    chars = sum(len(p) for p in paragraphs)
    return (f"# 本书语料快照：取自提交 {commit}（{date}），{len(paragraphs)} 段，{chars} 字；由 make corpus 生成\n"
            "# 每行一段正文（已去掉代码、公式、链接地址、图片、表格）；以「# 」开头的行是说明，读取时跳过\n")


def read_header_commit(path=CORPUS) -> str:
    """The full commit hash the snapshot records in its first line."""
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    m = re.search(r"取自提交 ([0-9a-f]{40})", first)
    if not m:
        raise ValueError(f"{rel(path)}: first line names no commit: {first!r}")
    return m.group(1)


def labelled_records(commit: str) -> list[dict[str, str]]:
    """One record per paragraph of the pages at `commit`: part (the docs/ folder, "" for the home page), page,
    the headings it sits under, text."""
    records = []
    for name, text in pages_at(commit):
        page = name.removeprefix("docs/")
        part = page.split("/")[0] if "/" in page else ""
        records += [{"part": part, "page": page, **record} for record in clean_sections(text)]
    return records


def labelled_header(commit: str, date: str, records: list[dict[str, str]]) -> dict:
    return {"commit": commit, "date": date, "paragraphs": len(records),
            "characters": sum(len(r["text"]) for r in records),
            "说明": "本书语料的带标签快照，由 make corpus 生成：第一行是说明，之后每行一段正文及其所在的部分、页面、标题"}


def write_labelled(commit: str, date: str) -> str:
    records = labelled_records(commit)
    lines = [labelled_header(commit, date, records), *records]
    LABELLED.parent.mkdir(parents=True, exist_ok=True)
    LABELLED.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return (f"wrote {rel(LABELLED)}: {len(records)} paragraphs, {lines[0]['characters']} characters, "
            f"{LABELLED.stat().st_size} bytes")


def write_plain(commit: str, date: str) -> str:
    paragraphs = [p for _, text in pages_at(commit) for p in clean(text)]
    CORPUS.parent.mkdir(parents=True, exist_ok=True)
    CORPUS.write_text(header(commit, date, paragraphs) + "\n".join(paragraphs) + "\n", encoding="utf-8")
    return (f"wrote {rel(CORPUS)}: {len(paragraphs)} paragraphs, {sum(map(len, paragraphs))} characters, "
            f"{CORPUS.stat().st_size} bytes")


def main(argv: list[str]) -> int:
    which = argv or ["part4", "part8"]
    unknown = set(which) - {"part4", "part8"}
    if unknown:
        print(f"usage: python -m tests.tooling.corpus [part4] [part8]  (unknown: {sorted(unknown)})", file=sys.stderr)
        return 2
    commit = _git("rev-parse", "HEAD").strip()
    date = _git("show", "-s", "--format=%cs", commit).strip()
    dirty = _git("status", "--porcelain", "--", "docs").strip()
    for name, write in (("part4", write_plain), ("part8", write_labelled)):
        if name in which:
            print(write(commit, date) + f", from commit {commit[:12]} ({date})"
                  + ("; uncommitted edits under docs/ are not in it" if dirty else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
