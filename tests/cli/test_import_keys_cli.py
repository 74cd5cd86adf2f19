"""``keyshop import-keys`` refuses a symbolic link (a link named keys.txt to /etc/passwd
once imported its lines as sellable keys) unless ``--follow-symlinks`` says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlmodel import func, select

from core.models import Key
from tests.conftest import TEST_FINGERPRINT_KEY, TEST_KEYRING
from tests.factories import make_product

ROOT = Path(__file__).resolve().parents[2]


def keyshop(test_settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL"))
    }
    env = {
        **base,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": test_settings.effective_database_url,
        "KEYSHOP_VAR_DIR": str(test_settings.var_dir),
        "KEYSHOP_KEYRING": TEST_KEYRING,
        "KEYSHOP_FINGERPRINT_KEY": TEST_FINGERPRINT_KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "keyshop", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def keys(session) -> int:
    session.commit()
    return session.exec(select(func.count()).select_from(Key)).one()


def test_a_symbolic_link_is_refused_unless_followed(test_settings, session, tmp_path):
    product = make_product(session)
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/sh\n")
    link = tmp_path / "keys.txt"
    link.symlink_to(target)

    refused = keyshop(test_settings, tmp_path, "import-keys", "--product", product.slug, str(link))
    assert refused.returncode != 0
    [line] = refused.stderr.strip().splitlines()
    assert "symbolic link" in line and "--follow-symlinks" in line and "root:x" not in line
    assert keys(session) == 0

    followed = keyshop(
        test_settings, tmp_path, "import-keys", "--follow-symlinks", "--product", product.slug,
        str(link),
    )  # fmt: skip
    assert followed.returncode == 0, followed.stderr
    assert "imported 2" in followed.stdout and keys(session) == 2


def test_a_device_is_refused(test_settings, session, tmp_path):
    product = make_product(session)
    refused = keyshop(
        test_settings, tmp_path, "import-keys", "--product", product.slug, "/dev/zero"
    )
    assert refused.returncode != 0 and "not a regular file" in refused.stderr
    assert keys(session) == 0
