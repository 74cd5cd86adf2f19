"""``keyshop import-keys`` refuses a symbolic link (a link named keys.txt to /etc/passwd
once imported its lines as sellable keys) unless ``--follow-symlinks`` says otherwise."""

from __future__ import annotations

from sqlmodel import func, select

from core.models import Key
from tests.factories import make_product
from tests.support.cli import keyshop


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
