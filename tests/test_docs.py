"""The documentation a newcomer reads: README first, every page it links, every page the code cites."""
from __future__ import annotations

import re

from tests.conftest import REPO

DOC_REF = re.compile(r"docs/([a-z0-9_-]+\.md)")
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def _sources() -> list:
    skip = {".venv", ".venv-openclip", ".git", "build", "runs"}
    return [p for p in REPO.rglob("*") if p.is_file() and p.suffix in (".py", ".md", ".yaml", ".sh")
            and not skip & set(p.relative_to(REPO).parts)]


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```")[1].strip().splitlines()
    assert first_block == ["make demo", "make test"], first_block
    assert len(text.splitlines()) <= 350, "README is for a first visit; stage references go to docs/"


def test_readme_cites_the_paper_as_the_cards_do():
    from focusclip.data.citations import FOCUSCLIP_BIBTEX, MPII_BIBTEX

    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert FOCUSCLIP_BIBTEX in text and MPII_BIBTEX in text


def test_every_cited_docs_page_exists():
    missing = []
    for path in _sources():
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in DOC_REF.findall(text):
            if not (REPO / "docs" / name).is_file():
                missing.append(f"{path.relative_to(REPO)} cites docs/{name}")
        if path.suffix == ".md":
            for target in LINK.findall(text):
                if "://" not in target and not (path.parent / target).resolve().is_file():
                    missing.append(f"{path.relative_to(REPO)} links {target}")
    assert not missing, "\n".join(missing)


def test_no_reference_to_a_design_file_outside_the_repository():
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in _sources()
                 for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
                 if re.search(r"\b(DESIGN|FORMATS)(\.md)? ?§", line)]
    assert not offenders, offenders
