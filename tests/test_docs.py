"""The README documents what exists: every setting, and the two commands at the top."""

import os
import re
from pathlib import Path

from support import ROOT
from phlite import config

README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_settings_table():
    for s in config.SETTINGS:
        row = f"| {s.name} |"
        assert row in README, f"README settings table lacks {s.name}"
        assert f"`{config.env_name(s.name)}`" in README
        assert f"`--{s.name.replace('_', '-')}`" in README


def test_the_settings_table_shows_each_default_and_help_as_the_code_has_them():
    rows = {}
    for line in README.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in {s.name for s in config.SETTINGS}:
            rows[cells[0]] = cells
    for s in config.SETTINGS:
        name, default, env, flag, meaning = rows[s.name]
        assert default == s.shown, f"README default of {s.name}: {default!r}, the code: {s.shown!r}"
        assert meaning == s.help, f"README help of {s.name} differs from config.SETTINGS"
        # The default is written once: Config's default is the setting's, converted.
        field = config.Config.__dataclass_fields__[s.name]
        assert field.default == (None if s.default is None else s.convert(s.default))
    assert [f for f in config.Config.__dataclass_fields__] == [s.name for s in config.SETTINGS]


def test_readme_opens_with_the_run_and_test_commands():
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    assert "python app.py" in first_block
    assert "bash tests/run.sh" in first_block
    # Stock Debian/Ubuntu Python refuses a system-wide pip install (PEP 668): the venv comes first, and the
    # version it needs is setup.cfg's.
    first = first_block.splitlines()[0]
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate"), first
    required = re.search(r"python_requires = >=(\S+)", (ROOT / "setup.cfg").read_text()).group(1)
    assert f"Python {required} or newer" in first, first
    assert "python3-venv" in first  # Debian ships venv separately
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash tests/run.sh" in ci


# --- citations -------------------------------------------------------------------------------------

# Where code, help and docs may cite: our own docs/*.md, by heading. A fresh clone resolves them all.
CITED = re.compile(r'docs/([\w-]+\.md)((?:,? (?:and |or )?"[^"\n]+")+)')
OUTSIDE = re.compile(r"posthog-(api|query|migrate)\.md|sdk-wire\.md|limits\.md|style\.md|\.\./shared/|/work/shared")


SKIP_DIRS = {".git", "node_modules", "data", "__pycache__", ".hypothesis", ".pytest_cache", "out", "build"}
TEXT_SUFFIXES = {".py", ".md", ".cfg", ".toml", ".sh", ".mjs", ".html", ".lua", ".txt"}


def tracked_text_files():
    """The repository's own text files (no git needed: a tarball of the tree works too)."""
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for f in sorted(files):
            path = Path(top) / f
            if path.suffix in TEXT_SUFFIXES:
                yield path.relative_to(ROOT).as_posix(), path.read_text(errors="replace")


def headings(doc):
    return {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", (ROOT / "docs" / doc).read_text(), re.M)}


def test_nothing_cites_a_document_outside_the_repository():
    found = [f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
             for name, text in tracked_text_files() if name != "tests/test_docs.py"
             for m in OUTSIDE.finditer(text)]
    assert not found, "citations of documents that are not in the repository:\n" + "\n".join(found)


def test_every_cited_heading_exists():
    missing, cited = [], 0
    for name, text in tracked_text_files():
        for m in CITED.finditer(text):
            doc = m.group(1)
            if not (ROOT / "docs" / doc).exists():
                missing.append(f"{name}: docs/{doc} does not exist")
                continue
            known = headings(doc)
            for heading in re.findall(r'"([^"\n]+)"', m.group(2)):
                cited += 1
                if heading not in known:
                    missing.append(f'{name}: docs/{doc} has no heading "{heading}"')
    assert cited > 20, "the citation pattern found almost nothing: is it still the form the code uses?"
    assert not missing, "\n".join(missing)
