"""The ``keyshop`` command as an operator runs it: a real subprocess."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_pass  # independent of the pass's database

GOOD = base64.b64encode(b"y" * 32).decode()


def keyshop(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL"))
    }
    return subprocess.run(
        [sys.executable, "-m", "keyshop", *args],
        cwd=cwd,
        env={**base, **(env or {}), "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
        ({"KEYSHOP_KEYRING": "1:" + base64.b64encode(b"z" * 31).decode()}, "KEYSHOP_KEYRING"),
        ({"KEYSHOP_ENV": "production"}, "DATABASE_URL"),
    ],
)
def test_malformed_setting_stops_with_one_line_and_status_2(tmp_path, env, setting):
    result = keyshop("migrate", cwd=tmp_path, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"keyshop: setting {setting} is invalid")
    assert not (tmp_path / "var").exists(), "nothing may be written when a setting is wrong"


def test_check_config_masks_secrets(tmp_path):
    result = keyshop(
        "check-config",
        cwd=tmp_path,
        env={
            "DATABASE_URL": "postgresql://shop:hunter2@db.internal/shop",
            "KEYSHOP_KEYRING": f"3:{GOOD}",
            "KEYSHOP_FINGERPRINT_KEY": GOOD,
        },
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and GOOD not in result.stdout
    assert "DATABASE_URL" in result.stdout and "db.internal" in result.stdout
    assert "active 3" in result.stdout


def test_migrate_twice_is_a_no_op(tmp_path):
    first = keyshop("migrate", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "upgraded from empty" in first.stdout
    second = keyshop("migrate", cwd=tmp_path)
    assert second.returncode == 0 and "up to date" in second.stdout
    assert (tmp_path / "var" / "keyshop.db").exists()


def test_the_console_on_a_database_never_migrated_says_to_migrate(tmp_path):
    result = keyshop("console", "--operator", "alice", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert "keyshop migrate" in result.stderr


def test_unreachable_database_is_one_clear_line(tmp_path):
    result = keyshop(
        "migrate", cwd=tmp_path, env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "cannot use the database at DATABASE_URL" in result.stderr


def test_pages_set_and_show_a_legal_page(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}", "KEYSHOP_VAR_DIR": str(tmp_path)}
    assert keyshop("migrate", cwd=tmp_path, env=env).returncode == 0
    page = tmp_path / "terms.md"
    page.write_text("## Our terms\n\nBe nice.\n", encoding="utf-8")
    saved = keyshop("pages", "set", "terms", str(page), cwd=tmp_path, env=env)
    assert saved.returncode == 0, saved.stderr
    assert "legal page terms (Terms and conditions) saved" in saved.stdout
    shown = keyshop("pages", "show", "terms", cwd=tmp_path, env=env)
    assert shown.stdout == "# Terms and conditions\n\n## Our terms\n\nBe nice.\n"
    refused = keyshop("pages", "set", "cookies", str(page), cwd=tmp_path, env=env)
    assert refused.returncode == 1 and refused.stderr.startswith("keyshop: no legal page 'cookies'")


def test_products_price_sells_a_product_in_another_currency(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}", "KEYSHOP_VAR_DIR": str(tmp_path)}
    assert keyshop("migrate", cwd=tmp_path, env=env).returncode == 0
    added = keyshop(
        "products", "add", "tri-price", "--title", "Tri Price", "--platform", "Steam",
        "--price", "19.99", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    priced = keyshop("products", "price", "tri-price", "usd", "21.99", cwd=tmp_path, env=env)
    assert priced.returncode == 0 and priced.stdout.strip() == "tri-price: 21.99 USD"
    bad = keyshop("products", "price", "tri-price", "USD", "21.999", cwd=tmp_path, env=env)
    assert bad.returncode == 1 and "at most 2 decimals" in bad.stderr
    removed = keyshop("products", "price", "tri-price", "USD", "--remove", cwd=tmp_path, env=env)
    assert removed.stdout.strip() == "tri-price: no longer sold in USD"


def test_command_modules_load_only_when_their_commands_run():
    import importlib

    import click

    from keyshop.cli import LAZY_COMMANDS, cli

    modules = set(LAZY_COMMANDS.values())
    named = {
        command.name: module
        for module in modules
        for command in importlib.import_module(module).COMMANDS
    }
    assert named == LAZY_COMMANDS  # every command of those modules is in the map, rightly
    assert set(cli.list_commands(click.Context(cli))) >= set(LAZY_COMMANDS)
    probe = "import sys, keyshop.cli; print(sorted(m for m in sys.modules if m in %r))"
    result = subprocess.run(
        [sys.executable, "-c", probe % sorted(modules)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
