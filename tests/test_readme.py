"""The README's command list stays true to the code."""

import re
from pathlib import Path

import click
import pytest

from keyshop.cli import cli

pytestmark = pytest.mark.one_pass  # independent of the pass's database

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _resolve(words: list[str]) -> click.Command | None:
    command: click.Command | None = cli
    for word in words:
        if not isinstance(command, click.Group):
            return None
        command = command.get_command(click.Context(command), word)
    return command


def test_every_command_in_the_readme_exists():
    listed = re.findall(r"^\| `keyshop ([a-z][a-z -]*?)(?: --| [A-Z]|`)", README, flags=re.M)
    assert len(listed) >= 6
    for entry in listed:
        assert _resolve(entry.split()) is not None, (
            f"README lists `keyshop {entry}` but the CLI has no such command"
        )


def test_the_readme_test_command_is_what_ci_runs():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "./dev test" in README and "exec ./dev test" in ci
