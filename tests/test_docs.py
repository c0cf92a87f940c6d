"""The README documents what exists: every setting, and the two commands at the top."""

import re

from conftest import ROOT
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
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash tests/run.sh" in ci
