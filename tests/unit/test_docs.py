"""The documentation stays a front door plus docs/: short, linked, self-contained, and complete on configuration.

- README.md is at most 200 lines;
- every relative Markdown link in README.md and docs/*.md resolves to a file of the repository (and an anchor
  into a Markdown file to one of its headings);
- no tracked text file cites a path outside the repository (the notes it grew from, this machine's folders);
- every key of `config.settings.Settings` is documented in docs/configuration.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from config.settings import REPO_ROOT, Settings

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
README_MAX_LINES = 200
# built here so that this file does not cite them itself
OUTSIDE_PATHS = ("../" + "shared/", "/" + "work/")

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
_INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _without_code(text: str) -> str:
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def link_targets(text: str) -> list[str]:
    """The targets of the inline links, images and reference definitions outside code."""
    prose = _without_code(text)
    return _INLINE_LINK.findall(prose) + _REFERENCE_DEFINITION.findall(prose)


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation dropped, spaces to hyphens, -1, -2 for
    repeats."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for _, title in _HEADING.findall(_FENCE.sub("", text)):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in link_targets(path.read_text()):
        if _SCHEME.match(target):
            continue  # http(s), mailto: not a file of the repository
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        try:
            resolved.relative_to(REPO_ROOT)
        except ValueError:
            broken.append(f"{target}: outside the repository")
            continue
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved.read_text()):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(REPO_ROOT)}")
    return broken


def settings_keys(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    """Every leaf field of the settings, dotted: kafka.bootstrap_servers, flink.rest_port, ..."""
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += settings_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def tracked_text_files() -> list[Path]:
    # the project is always a git checkout (CI clones it): without git's list this fails instead of skipping
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, timeout=60
    ).stdout
    names = {name for name in listed.decode().split("\0") if name}
    names |= {str(path.relative_to(REPO_ROOT)) for path in markdown_files()}  # new docs, before they are added
    files = []
    for name in sorted(names):
        path = REPO_ROOT / name
        if name.split("/", 1)[0] == "var" or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        files.append(path)
    return files


def test_the_readme_is_a_front_door_of_at_most_200_lines():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move the details into docs/"


def test_the_docs_exist():
    assert DOCS.is_dir() and len(markdown_files()) > 1


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(path: Path):
    assert broken_links(path) == []


def test_no_tracked_file_cites_a_path_outside_the_repository():
    offenders = []
    for path in tracked_text_files():
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            offenders += [
                f"{path.relative_to(REPO_ROOT)}:{number}: {needle}" for needle in OUTSIDE_PATHS if needle in line
            ]
    assert offenders == []


def test_every_setting_is_documented_in_the_configuration_doc():
    doc = (DOCS / "configuration.md").read_text()
    keys = settings_keys()
    assert "kafka.bootstrap_servers" in keys
    assert [key for key in keys if f"`{key}`" not in doc] == []


def test_the_link_checker_finds_broken_links(tmp_path: Path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## A section\n")
    page = tmp_path.resolve() / "README.md"
    page.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#a-section) [site](https://example.org) `[code](nowhere.md)`\n"
        "[gone](docs/missing.md) [bad anchor](docs/a.md#nope) [out](../elsewhere.md)\n"
        "```\n[fenced](nowhere.md)\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path.resolve())
    assert broken_links(page) == [
        "docs/missing.md: no such file",
        "docs/a.md#nope: no heading #nope in docs/a.md",
        "../elsewhere.md: outside the repository",
    ]


def test_anchors_follow_github():
    text = "# The analytics (`dbt/`)\n## Upgrading from the Flink 2.0 line\n## Tests\n## Tests\n"
    assert heading_anchors(text) == {"the-analytics-dbt", "upgrading-from-the-flink-20-line", "tests", "tests-1"}
