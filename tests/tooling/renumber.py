"""After the section numbers in mkdocs.yml's nav change, bring the book in line with them: every link whose
text starts with a section number ([2.4 损失函数](losses.md), [2.4](losses.md)) gets the number its target
now has, and every numbered page's title (its first `# ` heading) starts with its number. Prints what it
changed. Bare numbers without a link ("2.4 节") are not touched: write references as links, and
tests/test_guards.py::test_section_numbers_match_the_navigation keeps them right.

    python -m tests.tooling.renumber
"""
from __future__ import annotations

import posixpath
import re
import sys

from tests.tooling.sources import DOCS, mkdocs_config, notebook_files, page_files, rel

LINK = re.compile(r"\[(?P<number>\d+\.\d+)(?P<rest>(?:\s[^\]]*)?)\]\((?P<target>[^)#\s]+)(?P<anchor>#[^)]*)?\)")
TITLE = re.compile(r"^(?P<lead>(?:# )?# )(?P<number>\d+\.\d+)(?P<rest>\s.*)$")


def nav_numbers() -> dict[str, str]:
    """docs-relative path -> the section number its title has in the nav (2.4, 12.3)."""
    found: dict[str, str] = {}

    def walk(node):
        if isinstance(node, dict):
            for title, value in node.items():
                m = re.match(r"^(\d+\.\d+)\s", str(title))
                if isinstance(value, str) and m:
                    found[value] = m.group(1)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(mkdocs_config()["nav"])
    return found


def renumber_text(text: str, here: str, numbers: dict[str, str]) -> str:
    def link(m):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(here), m["target"]))
        number = numbers.get(target, m["number"])
        return f"[{number}{m['rest']}]({m['target']}{m['anchor'] or ''})"
    lines = LINK.sub(link, text).split("\n")
    heading = "# # " if here.endswith(".nb.py") else "# "  # a notebook's Markdown cells are commented out
    first = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if here in numbers and first is not None and (m := TITLE.match(lines[first])):
        lines[first] = f"{m['lead']}{numbers[here]}{m['rest']}"
    return "\n".join(lines)


def main() -> int:
    numbers = nav_numbers()
    for source in page_files() + notebook_files():
        here = source.relative_to(DOCS).as_posix()
        text = source.read_text(encoding="utf-8")
        new = renumber_text(text, here, numbers)
        if new != text:
            source.write_text(new, encoding="utf-8")
            print(f"renumbered {rel(source)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
