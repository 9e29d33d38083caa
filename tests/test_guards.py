"""Guards on the book as a whole: every snippet is shown, names line up, the site builds strictly,
nothing loads from off the site, search is segmented, vendored files and workflows are valid."""
from __future__ import annotations

import json
import posixpath
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.tooling import vendor
from tests.tooling.outputs import read_notebook_outputs, read_outputs, stale_cells
from tests.tooling.sources import (DOCS, INCLUDE_RE, NOTEBOOK_OUTPUT_SUFFIX, NOTEBOOK_SUFFIX, OUTPUT_SUFFIX, ROOT,
                                   SAVEFIG_RE, SNIPPETS, BookError, included_targets, notebook_cells, notebook_files,
                                   output_file, page_files, rel, snippet_files, split_sections)


def test_every_snippet_is_shown_on_a_page():
    targets = included_targets()
    shown = {t.partition(":")[0] for t in targets}
    missing = [rel(s) for s in snippet_files() if s.relative_to(SNIPPETS).as_posix() not in shown]
    assert not missing, "snippets that no page includes (add them to a page or delete them):\n  " + "\n  ".join(missing)


def test_snippets_sit_beside_their_page():
    """snippets/<part>/<stem>[_suffix].py belongs to docs/<part>/<stem>.md: same folder names on both sides."""
    problems = []
    for s in snippet_files():
        part = s.parent.relative_to(SNIPPETS)
        stems = {p.stem for p in (DOCS / part).glob("*.md")}
        if not any(s.stem == stem or s.stem.startswith(stem + "_") for stem in stems):
            problems.append(f"{rel(s)}: no page docs/{part.as_posix()}/<stem>.md whose stem starts its name")
    assert not problems, "\n".join(problems)


def test_sections_are_well_formed():
    problems = []
    for s in snippet_files() + notebook_files():
        try:
            split_sections(s)
        except BookError as exc:
            problems.append(str(exc))
    assert not problems, "\n".join(problems)


def is_chapter(source: Path) -> bool:
    """A page of a part (docs/partN/), not the part's landing page (docs/partN/index.md)."""
    return source.relative_to(DOCS).parts[0].startswith("part") and source.name != "index.md"


WRONG_CODE_TITLE = re.compile(r'^(?P<indent>[ \t]*)(?:!!!|\?\?\?\+?) failure "错误写法（不要运行）"\s*$')
CHAPTER_ENDING = ["小结", "练习", "参考文献"]


def _wrong_code_problems(page: Path) -> list[str]:
    """A block marked not to run is shown as wrong code: inside a failure admonition titled
    错误写法（不要运行）, without a copy button (.no-copy); a block without a copy button is one of those."""
    from tests.tooling.sources import expand_page, python_blocks
    lines = page.read_text(encoding="utf-8").splitlines()
    problems = []
    for block in python_blocks(expand_page(page)):
        no_copy = ".no-copy" in block.attrs.split()
        if not block.skip_reason:
            if no_copy:
                problems.append(f"{block.where}: a runnable block without a copy button (.no-copy is for wrong code)")
            continue
        fence = lines[block.line - 1]
        indent = len(fence) - len(fence.lstrip())
        opener = next((line for line in reversed(lines[:block.line - 1])
                       if line.strip() and len(line) - len(line.lstrip()) < indent), "")
        if not WRONG_CODE_TITLE.match(opener) or indent == 0:
            problems.append(f'{block.where}: a block marked not to run must sit inside `!!! failure "错误写法（不要运行）"`')
        if not no_copy:
            problems.append(f"{block.where}: a block marked not to run must carry .no-copy "
                            "(```{ .python .no-copy }), so that no copy button offers it")
    return problems


def test_wrong_code_is_shown_as_wrong_code():
    pytest.importorskip("pytest_codeblocks", reason="pytest-codeblocks is not installed (run `make test`)")
    problems = [p for page in page_files() for p in _wrong_code_problems(page)]
    assert not problems, "\n".join(problems)


def _h2(source: Path) -> list[str]:
    from tests.tooling.prose import prose
    return [m.group(1).strip() for _, line in prose(source) if (m := re.match(r"^## (.+)$", line))]


def test_chapter_pages_end_with_summary_exercises_and_references():
    """Every page of a part (docs/partN/) ends with 小结, 练习 and 参考文献, in that order; the front matter, the
    appendix (docs/index.md, docs/appendix/) and the parts' landing pages (docs/partN/index.md) may end otherwise."""
    lacking = []
    for source in page_files() + notebook_files():
        if not is_chapter(source):
            continue
        ending = _h2(source)[-3:]
        if ending != CHAPTER_ENDING:
            lacking.append(f"{rel(source)}: its last level-2 sections are {ending}, not {CHAPTER_ENDING}")
    assert not lacking, "chapter pages that lack a required ending:\n  " + "\n  ".join(lacking)


ANSWER_BLOCK = re.compile(r'^\?\?\?\+? success "参考答案"\s*$')
NOTEBOOK_ANSWERS = re.compile(r"^###\s+参考答案\s*$")


def exercises_and_answers(source: Path) -> tuple[list[int], list[int]]:
    """The numbers of the exercises in a page's 练习 section, and of the answers given for them: in a
    Markdown page, `**N.**` paragraphs inside the collapsed block `??? success "参考答案"` that follows the
    exercise list; in a notebook, `**N.**` paragraphs under a `### 参考答案` heading in the 练习 section."""
    from tests.tooling.prose import prose
    lines = [text for _, text in prose(source, links=True)]
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "## 练习")
    except StopIteration:
        return [], []
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[start + 1:end]
    opener = NOTEBOOK_ANSWERS if source.name.endswith(NOTEBOOK_SUFFIX) else ANSWER_BLOCK
    block = next((i for i, line in enumerate(section) if opener.match(line)), len(section))
    exercises = [int(m.group(1)) for line in section[:block] if (m := re.match(r"^(\d+)\.\s", line))]
    indent = "" if source.name.endswith(NOTEBOOK_SUFFIX) else "    "
    answers = [int(m.group(1)) for line in section[block + 1:]
               if (m := re.match(rf"^{indent}\*\*(\d+)\.\*\*", line))]
    return exercises, answers


@pytest.mark.parametrize("source", [s for s in page_files() + notebook_files() if is_chapter(s)], ids=rel)
def test_every_exercise_has_an_answer(source, record_property):
    """Every exercise of a chapter page is answered right after the exercise list (README, 写一页). The
    summary counts exercises and answers per part."""
    exercises, answers = exercises_and_answers(source)
    record_property("exercises", [source.relative_to(DOCS).parts[0], len(exercises), len(set(answers) & set(exercises))])
    assert exercises, f"{rel(source)}: no numbered exercises under ## 练习"
    missing = [n for n in exercises if n not in answers]
    extra = [n for n in answers if n not in exercises]
    assert not missing and not extra, (f"{rel(source)}: exercises without an answer: {missing}; answers to no "
                                       f"exercise: {extra}. Answer each as **N.** inside "
                                       '`??? success "参考答案"` after the list (a notebook: under ### 参考答案).')


SECTION_LINK = re.compile(r"\[(?P<number>\d+\.\d+)(?:\s[^\]]*)?\]\((?P<target>[^)#\s]+)(?:#[^)]*)?\)")


def test_section_numbers_match_the_navigation():
    """A link whose text starts with a section number ([2.4 损失函数](losses.md)) names the number the linked
    page has in the navigation, and each numbered page's title starts with its own number: renumbering
    can never leave a stale reference."""
    from tests.tooling.prose import prose
    from tests.tooling.renumber import nav_numbers
    numbers = nav_numbers()
    problems = []
    for source in page_files() + notebook_files():
        here = source.relative_to(DOCS).as_posix()
        for line, text in prose(source, links=True):
            for m in SECTION_LINK.finditer(text):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(here), m["target"]))
                if target in numbers and numbers[target] != m["number"]:
                    problems.append(f"{rel(source)}:{line}: the link [{m['number']} …]({m['target']}) points to "
                                    f"section {numbers[target]} (run `python -m tests.tooling.renumber`)")
        if here in numbers:
            title = next((t for _, t in prose(source) if t.startswith("# ")), "")
            if not title.startswith(f"# {numbers[here]} "):
                problems.append(f"{rel(source)}: its title {title!r} does not start with its number in the "
                                f"navigation, {numbers[here]}")
    assert not problems, "\n".join(problems)


def test_outputs_are_generated_files():
    """Every .out.txt belongs to a snippet; every shown output is an include of one (never typed by hand)."""
    problems = []
    for out in sorted(SNIPPETS.rglob("*" + OUTPUT_SUFFIX)):
        source = out.with_name(out.name[: -len(OUTPUT_SUFFIX)] + ".py")
        if not source.is_file():
            problems.append(f"{rel(out)}: no snippet {rel(source)} produces it")
        else:
            read_outputs(out)
    for page in page_files():
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if re.match(r"\s*`{3,}\s*\w*\s.*title=\"输出[^\"]*\"", line):
                body = lines[number] if number < len(lines) else ""
                m = INCLUDE_RE.match(body)
                if not (m and OUTPUT_SUFFIX in m.group("target")):
                    problems.append(f"{rel(page)}:{number}: an output block must include a generated "
                                    f"{OUTPUT_SUFFIX} section, not typed text")
    assert not problems, "\n".join(problems)


def test_machine_dependent_outputs_are_labelled():
    """An output whose code is marked `# 随机器而变：reason` (timings, speed-ups) is shown under a title that says
    so, and only such an output carries that title: a reader must see which numbers are this machine's."""
    pytest.importorskip("pytest_codeblocks", reason="pytest-codeblocks is not installed (run `make test`)")
    from tests.tooling.outputs import marked_machine_dependent
    from tests.tooling.sources import expand_page
    problems = []
    for page in page_files():
        for block in expand_page(page):
            if block.output is None:
                continue
            marked, titled = marked_machine_dependent(block.code), "随机器而变" in block.output.attrs
            if marked != titled:
                problems.append(f"{block.output.where}: " + ("the code above is marked 随机器而变, so the output "
                                "title must say so, e.g. title=\"输出（随机器而变）\"" if marked else
                                "the title says 随机器而变 but the code above carries no `# 随机器而变：reason`"))
    assert not problems, "\n".join(problems)


def test_notebook_outputs_are_committed_and_current():
    """Every notebook page has the outputs the build renders (<name>.nb.out.json, from `make outputs`), made
    from its current code; every such file belongs to a notebook."""
    problems = [f"{rel(nb)}: {p}" for nb in notebook_files()
                for p in (stale_cells(nb, read_notebook_outputs(output_file(nb))) if output_file(nb).is_file()
                          else [f"{rel(output_file(nb))} is missing"])]
    problems += [f"{rel(out)}: no notebook {rel(out.with_name(out.name.replace(NOTEBOOK_OUTPUT_SUFFIX, '.py')))}"
                 for out in DOCS.rglob("*" + NOTEBOOK_OUTPUT_SUFFIX)
                 if not out.with_name(out.name.replace(NOTEBOOK_OUTPUT_SUFFIX, ".py")).is_file()]
    assert not problems, "\n".join(problems) + "\n\nRun `make outputs FILES=<notebook>`."


def test_notebook_cells_are_read_as_jupytext_reads_them():
    """The harness splits notebooks into code cells without jupytext (so that the snippet tests need no
    Jupyter); the split must be jupytext's, which the build and readers' Jupyter use."""
    jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (run `make test`)")
    for nb in notebook_files():
        ours = [c.code.rstrip("\n") for c in notebook_cells(nb)]
        theirs = [c.source for c in jupytext.read(nb).cells if c.cell_type == "code"]
        assert ours == theirs, f"{rel(nb)}: the harness reads other code cells than jupytext"


def test_declared_tolerances_are_listed_for_readers():
    """The environment page says, once, where a reader's numbers may differ and by how much: every page whose
    code declares a tolerance (`# 容差 ±X`) is linked there with each of its values."""
    from tests.tooling.outputs import declared_tolerances
    listing = (DOCS / "appendix" / "environment.md").read_text(encoding="utf-8")
    problems = []
    for source in snippet_files() + notebook_files():
        values = declared_tolerances(source)
        if not values:
            continue
        if source.is_relative_to(SNIPPETS):
            part = source.parent.relative_to(SNIPPETS).as_posix()
            page = next(p.name for p in (DOCS / part).glob("*.md") if source.stem.startswith(p.stem))
        else:
            part, page = source.parent.relative_to(DOCS).as_posix(), source.name
        link = f"({page})" if part == "appendix" else f"(../{part}/{page})"  # relative to docs/appendix/
        if link not in listing:
            problems.append(f"{rel(source)} declares tolerances but docs/appendix/environment.md does not link {page}")
        problems += [f"{rel(source)}: ±{v:g} is not stated in docs/appendix/environment.md"
                     for v in values.values() if f"±{v:g}" not in listing]
    assert not problems, "\n".join(problems)


PINNED_VERSION_RE = re.compile(r'torch\.__version__\.split\("\+"\)\[0\] == "([^"]+)"')


def test_version_conditions_name_the_pinned_torch():
    """Code that asserts a bitwise result only under the book's pinned versions names the torch version that
    requirements.txt pins: after an upgrade those asserts must run again, not be skipped silently."""
    pinned = re.search(r"^torch==(\S+)", (ROOT / "requirements.txt").read_text(encoding="utf-8"), re.M).group(1)
    stale = [f"{rel(source)} tests torch {found}, requirements.txt pins {pinned}"
             for source in snippet_files() + notebook_files()
             for found in PINNED_VERSION_RE.findall(source.read_text(encoding="utf-8")) if found != pinned]
    assert not stale, "\n".join(stale)


def test_figures_have_their_source():
    """Every committed figure is written by a snippet's savefig, and every page image exists."""
    made = {}
    for s in snippet_files() + notebook_files():
        for name in SAVEFIG_RE.findall(s.read_text(encoding="utf-8")):
            made[(s.parent.relative_to(SNIPPETS if s.is_relative_to(SNIPPETS) else DOCS).as_posix(), name)] = s
    orphans = [rel(f) for f in sorted(DOCS.rglob("figures/*"))
               if (f.parent.parent.relative_to(DOCS).as_posix(), f.name) not in made]
    assert not orphans, "figures with no snippet that makes them (no figure without its source):\n  " + "\n  ".join(orphans)


def test_vendored_files_match_their_packages():
    problems = vendor.check()
    assert not problems, "\n".join(problems)


def test_notebook_sources_are_jupytext():
    for nb in notebook_files():
        head = nb.read_text(encoding="utf-8")[:400]
        assert "jupytext" in head and "kernelspec" in head, f"{rel(nb)}: not a jupytext percent-format notebook"


# ---------------------------------------------------------------- the built site

def test_build_is_strict_and_clean(built_site):
    log = built_site["log"]
    warnings = [line for line in log.splitlines() if re.match(r"\s*(WARNING|ERROR)\b", line)]
    assert built_site["returncode"] == 0 and not warnings, "mkdocs build --strict failed:\n" + log[-4000:]


class _Assets(HTMLParser):
    """Collects every address an HTML page makes the browser fetch."""
    FETCHING_RELS = {"stylesheet", "icon", "preload", "modulepreload", "prefetch", "preconnect",
                     "dns-prefetch", "manifest", "apple-touch-icon", "shortcut"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and set((a.get("rel") or "").split()) & self.FETCHING_RELS:
            self.urls.append(a.get("href") or "")
        for key in ("src", "data", "poster"):
            if tag in {"script", "img", "source", "iframe", "video", "audio", "embed", "object", "track", "input"} and a.get(key):
                self.urls.append(a[key])
        if a.get("srcset"):
            self.urls += [part.strip().split()[0] for part in a["srcset"].split(",") if part.strip()]
        if tag == "image":
            self.urls.append(a.get("href") or a.get("xlink:href") or "")
        if a.get("style"):
            self.urls += _css_urls(a["style"])
        self._in = tag if tag in {"style", "script"} else None

    def handle_data(self, data):
        if self._in == "style":
            self.urls += _css_urls(data)
        elif self._in == "script":
            self.urls += re.findall(r"""import\(\s*["']([^"']+)["']""", data)

    def handle_endtag(self, tag):
        self._in = None


def _css_urls(css: str) -> list[str]:
    return re.findall(r"""url\(\s*["']?([^"')]+)""", css) + re.findall(r"""@import\s+["']([^"']+)""", css)


def _offsite(url: str) -> bool:
    return bool(re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", url.strip(), re.I)) and not url.startswith("data:")


def test_site_loads_nothing_from_off_site(built_site):
    site: Path = built_site["dir"]
    found = []
    for page in site.rglob("*.html"):
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        found += [f"{page.relative_to(site)}: {u}" for u in parser.urls if _offsite(u)]
    for css in site.rglob("*.css"):
        found += [f"{css.relative_to(site)}: {u}" for u in _css_urls(css.read_text(encoding="utf-8", errors="replace"))
                  if _offsite(u)]
    assert not found, "the built site fetches from off the site:\n  " + "\n  ".join(sorted(set(found))[:30])


def test_every_diagram_has_a_current_svg():
    """Each ```mermaid fence has its SVG in docs/<part>/diagrams/, rendered from exactly this source by the
    current renderer, and no SVG is left without its fence (compares recorded hashes: no browser)."""
    from tests.tooling.diagrams import problems
    found = problems()
    assert not found, "Mermaid diagrams and their committed SVGs disagree:\n  " + "\n  ".join(found)


def test_diagrams_are_inline_svg_and_no_page_loads_mermaid(built_site):
    """Every fence arrives as an inline <svg> in a .diagram box; no page loads Mermaid or keeps an element
    that Material would load it for (.mermaid)."""
    from tests.tooling.diagrams import fences
    site: Path = built_site["dir"]
    expected = {}
    for fence in fences():
        expected[fence.page] = expected.get(fence.page, 0) + 1
    problems = []
    from tests.tooling.browser import page_url
    for page in page_files():
        html = (site / page_url(page) / "index.html").read_text(encoding="utf-8")
        inline = html.count('<div class="diagram"><svg ')
        if inline != expected.get(page, 0):
            problems.append(f"{rel(page)}: {expected.get(page, 0)} Mermaid fences but {inline} inline diagrams")
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8", errors="replace")
        if re.search(r'class="[^"]*\bmermaid\b|mermaid(?:\.min)?\.js', html):
            problems.append(f"{page.relative_to(site)}: loads Mermaid or keeps a .mermaid element")
    assert not list(site.rglob("diagrams/*.svg")), "the diagram SVGs are published as files (see exclude_docs)"
    assert not problems, "\n".join(problems)


def test_search_index_is_segmented_by_jieba(built_site):
    index = json.loads((built_site["dir"] / "search" / "search_index.json").read_text(encoding="utf-8"))
    text = " ".join(d["text"] for d in index["docs"])
    # jieba puts a zero-width space between Chinese words; without it lunr sees whole sentences as one token
    pairs = re.findall(r"[\u4e00-\u9fff]\u200b[\u4e00-\u9fff]", text)
    assert len(pairs) > 100, "the search index is not segmented into Chinese words (is jieba installed?)"
    assert "\u200b" in index["config"]["separator"] or "u200b" in index["config"]["separator"]


def test_notebook_pages_render_with_download(built_site):
    for nb in notebook_files():
        rel_dir = nb.relative_to(DOCS).as_posix()[: -len(NOTEBOOK_SUFFIX)]
        html = (built_site["dir"] / rel_dir / "index.html").read_text(encoding="utf-8")
        assert "jupyter-wrapper" in html, f"{rel(nb)} did not render as a notebook"
        assert "jp-DownloadNB" in html and f'href="{nb.name}"' in html, f"{rel(nb)}: the page has no download button"
        assert (built_site["dir"] / rel_dir / nb.name).is_file(), f"{rel(nb)}: the download link points nowhere"
        assert "<img" in html, f"{rel(nb)}: the executed notebook shows no plot"
        assert "Traceback (most recent call last)" not in html, f"{rel(nb)}: the executed notebook shows an error"


# ---------------------------------------------------------------- CI files

def test_workflows_match_the_github_schema():
    pytest.importorskip("check_jsonschema", reason="check-jsonschema is not installed (run `make test`)")
    files = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert files, "no workflow files in .github/workflows"
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_only_a_tested_commit_is_published():
    """A job that deploys the site needs (directly or through other jobs) the job that runs `make test`, in
    the same workflow; the scheduled full run sets BOOK_FRESH=1 and BOOK_NO_CACHE=1."""
    import yaml
    workflows = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in (ROOT / ".github" / "workflows").glob("*.yml")}
    deploying = 0
    for name, wf in workflows.items():
        jobs = wf["jobs"]
        tests = {j for j, job in jobs.items() if any("make test" in str(step.get("run", "")) for step in job.get("steps", []))}
        for j, job in jobs.items():
            if any("deploy-pages" in str(step.get("uses", "")) for step in job.get("steps", [])):
                deploying += 1
                seen, todo = set(), [j]
                while todo:
                    needs = jobs[todo.pop()].get("needs", [])
                    for n in [needs] if isinstance(needs, str) else needs:
                        if n not in seen:
                            seen.add(n)
                            todo.append(n)
                assert seen & tests, f"{name}: job {j!r} deploys without needing the test job"
    assert deploying, "no workflow deploys the site"
    scheduled = [wf for wf in workflows.values() if "schedule" in (wf.get(True) or wf.get("on") or {})]
    assert any(all(job.get("env", {}).get(k) == "1" for k in ("BOOK_FRESH", "BOOK_NO_CACHE"))
               for wf in scheduled for job in wf["jobs"].values()), "no scheduled run with BOOK_FRESH=1 and no cache"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in readme and re.search(r"^\s*make test\b", ci, re.M), \
        ".ci/run must run the README's test command (make test)"



class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"] or "")
        for key in ("href", "src"):
            if a.get(key) and tag in {"a", "link", "script", "img", "source", "iframe"}:
                self.links.append(a[key])


def test_internal_links_and_anchors_resolve(built_site):
    """Every link, script, style and image inside the built site points at a file that exists, and every
    #anchor at an id on the target page (table of contents, permalinks, cross-references, footnotes)."""
    from functools import lru_cache
    from urllib.parse import unquote, urlsplit

    site: Path = built_site["dir"]

    @lru_cache(maxsize=None)
    def parse(path: Path) -> _Links:
        parser = _Links()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        return parser

    broken = []
    for page in sorted(site.rglob("*.html")):
        here = page.relative_to(site)
        info = parse(page)
        if "" in info.ids:
            broken.append(f"{here}: an element with an empty id")
        for link in info.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:", "javascript:")):
                continue
            base = site if parts.path.startswith("/") else page.parent
            target = (base / unquote(parts.path).lstrip("/")).resolve() if parts.path else page
            if parts.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            if not target.is_file() or not target.is_relative_to(site.resolve()):
                broken.append(f"{here}: {link} (no such file)")
                continue
            if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in parse(target).ids:
                broken.append(f"{here}: {link} (no id {unquote(parts.fragment)!r} there)")
    assert not broken, "broken links in the built site:\n  " + "\n  ".join(broken[:40])


def test_the_snippet_requirements_are_a_subset_of_the_lock_with_the_same_versions():
    """requirements-snippets.txt (what a GPU machine installs to run the snippet tests) says its versions are
    those of requirements.txt; a package added to one and not the other, or bumped in one, breaks that."""
    def pins(name: str) -> dict[str, str]:
        lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
        found = dict(re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)$", line).groups() for line in lines
                     if line.strip() and not line.startswith("#"))
        return {key.lower().replace("_", "-"): version for key, version in found.items()}
    lock, snippets = pins("requirements.txt"), pins("requirements-snippets.txt")
    assert {k: v for k, v in snippets.items() if lock.get(k) != v} == {}
    for needed in ("jieba", "scikit-learn", "rouge-score", "tokenizers", "torchao", "mnist1d", "optuna", "gymnasium",
                   "captum"):
        assert needed in snippets, f"requirements-snippets.txt lacks {needed}, which snippets import"
