"""The documentation's cross-references resolve: every relative link of the README, the changelog and
``docs/`` points to a file that exists (and, with ``#anchor``, to a heading of it), and every
``docs/design.md §N`` citation in the source, the docs or ``pyproject.toml`` names a section that
``docs/design.md`` has. A reader who follows one never lands nowhere."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
SKIP_DIRS = {".git", "__pycache__", "build", "dist", ".venv", "node_modules", ".mypy_cache", ".ruff_cache"}

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
CITATION = re.compile(r"docs/design\.md §(\d+(?:\.\d+)?)")
SECTION = re.compile(r"^#{2,3} (\d+(?:\.\d+)?)[. ]")


def repo_files(*suffixes: str) -> list[Path]:
    """The repository's files with these suffixes (symlinked folders not followed: each file once)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        found += [Path(folder) / f for f in files if f.endswith(suffixes)]
    return sorted(found)


def markdown_files() -> list[Path]:
    docs = sorted((ROOT / "docs").rglob("*.md"))
    return [p for p in [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "samples" / "README.md", *docs] if p.exists()]


def prose_lines(text: str, code: bool = False) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code removed unless ``code``."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, line if code else INLINE_CODE.sub("", line)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated heading gets -1, -2, ... as on GitHub)."""
    names: set[str] = set()
    counts: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8"), code=True):
        m = re.match(r"^#{1,6} (.+?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            k = counts.get(base, 0)
            counts[base] = k + 1
            names.add(base if k == 0 else f"{base}-{k}")
    return names


def broken_links(path: Path) -> list[str]:
    bad = []
    for n, line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = path if not file_part else (path.parent / file_part).resolve()
            where = f"{path.relative_to(ROOT)}:{n}: {target}"
            if not dest.exists():
                bad.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{where} (no heading #{anchor} in {dest.relative_to(ROOT)})")
    return bad


def design_sections() -> set[str]:
    return {m.group(1) for _, line in prose_lines(DESIGN.read_text(encoding="utf-8")) if (m := SECTION.match(line))}


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


def test_every_design_citation_names_an_existing_section():
    sections = design_sections()
    assert {"1", "2", "3", "4", "5", "7", "7.1"} <= sections  # the numbering the code cites
    cited, missing = 0, []
    for path in repo_files(".py", ".md", ".toml"):
        text = path.read_text(encoding="utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            for number in CITATION.findall(line):
                cited += 1
                if number not in sections:
                    missing.append(f"{path.relative_to(ROOT)}:{n}: docs/design.md §{number}")
    assert cited > 0 and missing == []


def test_no_citation_of_a_design_document_outside_the_repository():
    stale = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in repo_files(".py", ".md", ".toml")
        if p != Path(__file__).resolve()
        for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if "DESIGN §" in line
    ]
    assert stale == []


def test_the_checker_finds_a_broken_link_and_a_missing_anchor(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Title\n\n## Two words\n\n[ok](#two-words) [gone](b.md) [bad](a.md#nope)\n")
    assert [b.split(": ", 1)[1] for b in broken_links(tmp_path / "a.md")] == [
        "b.md (no such file)",
        "a.md#nope (no heading #nope in a.md)",
    ]
