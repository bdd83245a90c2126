"""The README is the user's manual: its examples run here, so it cannot drift from the code."""

from __future__ import annotations

import re
import shlex

import pytest
from click.testing import CliRunner

from zoo import vocab
from zoo.cli import cli
from zoo.config import REPO_DIR

README = (REPO_DIR / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


CONSOLE = [line[2:] for b in blocks("console") for line in b.splitlines() if line.startswith("$ ")]


pytestmark = pytest.mark.usefixtures("fresh_state")  # conftest: no warm recommender state


@pytest.mark.parametrize("command", CONSOLE)
def test_console_examples_run(command):
    args = shlex.split(command)
    assert args[0] == "zoo"
    res = CliRunner().invoke(cli, args[1:])
    assert res.exit_code == 0, res.output
    assert res.output.strip()


def test_python_examples_run():
    code = blocks("python")
    assert code
    for block in code:
        exec(compile(block, "README.md", "exec"), {})


def test_setup_commands_first_and_ci_runs_the_test_command():
    sh = blocks("sh")
    install, test = sh[0].strip(), sh[1].strip()
    assert README.index(install) < README.index("## The command line")
    assert "zoo " in install and "pytest" in test
    ci = (REPO_DIR / ".ci" / "run").read_text()
    test_cmd = test.split("&& ", 2)[2]  # after creating and activating the virtualenv
    assert test_cmd in ci


def test_every_domain_tag_is_documented():
    for tag, meaning in vocab.DOMAINS.items():
        assert f"| {tag} | {meaning} |" in README
