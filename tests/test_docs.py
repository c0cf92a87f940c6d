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


def test_readme_opens_with_the_run_and_test_commands():
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    assert "python app.py" in first_block
    assert "bash tests/run.sh" in first_block
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash tests/run.sh" in ci
