"""The reference notes in docs/: every `papers.md §x.y` and `sr-protocol.md §x.y` citation lands on a heading.

The package, the notebooks, data/README.md and the docs themselves cite the notes by section
(``papers.md §1.2``, ``papers.md §1.10, §6.1``, ``sr-protocol.md §8 items 8, 10``); a citation whose
section has no heading in ``docs/papers.md`` / ``docs/sr-protocol.md`` is a dangling reference. ``§8.N``
and ``§8 item N`` both mean item N of sr-protocol.md's checklist, which has one heading per item.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = {"papers.md": ROOT / "docs" / "papers.md", "sr-protocol.md": ROOT / "docs" / "sr-protocol.md"}
SEARCHED = ("srlearn", "notebooks", "data", "docs", "tools")

SECTION = r"§\s?\d+(?:\.\d+)*(?:\s+items?\s+\d+(?:\s*(?:,|and)\s*\d+)*)?"
CITATION = re.compile(r"\b(papers|sr-protocol)\.md`?\s*((?:" + SECTION + r")(?:\s*(?:,|;|and)\s*(?:" + SECTION + r"))*)")
ONE = re.compile(r"§\s?(\d+(?:\.\d+)*)(?:\s+items?\s+(\d+(?:\s*(?:,|and)\s*\d+)*))?")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.M)


def headings(path: Path) -> set[str]:
    return set(HEADING.findall(path.read_text(encoding="utf-8")))


def citations(text: str) -> list[tuple[str, str, str]]:
    """(file, section, the citation as written) for every section a text cites."""
    found = []
    for m in CITATION.finditer(text):
        doc = f"{m.group(1)}.md"
        for one in ONE.finditer(m.group(2)):
            section, items = one.group(1), one.group(2)
            found.append((doc, section, m.group(0)))
            for item in re.findall(r"\d+", items or ""):
                found.append((doc, f"{section}.{item}", m.group(0)))
    return found


def texts():
    """(where, text) for every file searched: notebook cells one by one, other text files whole."""
    for folder in SEARCHED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix == ".ipynb":
                nb = nbformat.read(path, as_version=4)
                for i, cell in enumerate(nb.cells):
                    yield f"{path.relative_to(ROOT)} cell {i} ({cell.get('id')})", cell.source
            elif path.suffix in (".py", ".md", ".txt", ".toml") and path.is_file():
                yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def test_the_reference_notes_exist_and_explain_their_tags():
    for name, path in DOCS.items():
        assert path.exists(), f"docs/{name} is missing: the package and notebooks cite it"
        text = path.read_text(encoding="utf-8")
        for tag in ("[C]", "[R]", "[S]", "[I]"):
            assert tag in text.split("\n## 1.")[0], f"docs/{name} does not explain the tag {tag} before §1"
    papers = DOCS["papers.md"].read_text(encoding="utf-8")
    assert "[M]" in papers and "[X]" in papers and "not** verified" in papers


def test_citation_parser_reads_every_form_the_code_uses():
    got = citations("see papers.md §1.10, §6.1 and `sr-protocol.md` §8 items 8, 10; also sr-protocol.md §1.3.")
    assert [(d, s) for d, s, _ in got] == [("papers.md", "1.10"), ("papers.md", "6.1"), ("sr-protocol.md", "8"),
                                           ("sr-protocol.md", "8.8"), ("sr-protocol.md", "8.10"),
                                           ("sr-protocol.md", "1.3")]
    assert citations("papers.md\n§2.1") == [("papers.md", "2.1", "papers.md\n§2.1")]
    assert citations("no citation: papers.md in general") == []


def test_a_missing_section_is_caught():
    known = headings(DOCS["papers.md"])
    assert "1.2" in known and "6.4" in known and "1" in known
    assert "9.9" not in known  # the check below would flag a citation of it


def test_every_citation_lands_on_a_heading():
    known = {name: headings(path) for name, path in DOCS.items()}
    dangling, count = [], 0
    for where, text in texts():
        for doc, section, written in citations(text):
            count += 1
            if section not in known[doc]:
                dangling.append(f"{where}: {written!r} -> {doc} has no heading §{section}")
    assert count > 200, f"only {count} citations found: the parser is broken"
    assert not dangling, "citations that point at no heading:\n" + "\n".join(dangling)


@pytest.mark.parametrize("name", sorted(DOCS))
def test_section_numbers_are_unique(name):
    found = HEADING.findall(DOCS[name].read_text(encoding="utf-8"))
    duplicates = sorted({s for s in found if found.count(s) > 1})
    assert not duplicates, f"docs/{name}: sections {duplicates} have more than one heading"


def test_nothing_points_readers_outside_the_repository():
    """The reference notes live in docs/; a path into the team's shared folder would be a dead link for readers."""
    root = Path(__file__).resolve().parents[1]
    bad = [str(p.relative_to(root)) for folder in ("srlearn", "notebooks", "docs", "data", "tools")
           for p in (root / folder).rglob("*") if p.is_file() and p.suffix in (".py", ".ipynb", ".md")
           and "shared/reference" in p.read_text(errors="ignore")]
    assert not bad, f"these files point at shared/reference/ (outside the repository); cite docs/ instead: {bad}"
