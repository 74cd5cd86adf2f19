"""``import_keys`` reads only regular files, never through a symbolic link, unless told
otherwise (issue 13, item 6): a link named keys.txt pointing at /etc/passwd imported its
31 lines as sellable keys."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from sqlmodel import func, select

from core.errors import ImportFileError
from core.models import ImportBatch, Key
from core.services.importer import import_keys
from tests.factories import make_product


def count(session, model) -> int:
    session.commit()
    return session.exec(select(func.count()).select_from(model)).one()


def run(engine, path: Path, slug: str, **kw):
    return import_keys(path=path, product_slug=slug, operator="alice", engine=engine, **kw)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A text file that is not keys (like /etc/passwd)."""
    path = tmp_path / "elsewhere" / "passwd"
    path.parent.mkdir()
    path.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/sh\n")
    return path


def test_a_symbolic_link_is_refused(engine, session, tmp_path, secret_file):
    product = make_product(session)
    link = tmp_path / "keys.txt"
    link.symlink_to(secret_file)
    with pytest.raises(ImportFileError) as raised:
        run(engine, link, product.slug)
    assert "symbolic link" in str(raised.value) and "--follow-symlinks" in str(raised.value)
    assert "root:x" not in str(raised.value)
    assert count(session, Key) == 0 and count(session, ImportBatch) == 0


def test_a_link_to_a_directory_of_links_is_refused_too(engine, session, tmp_path, secret_file):
    product = make_product(session)
    (tmp_path / "d").symlink_to(secret_file.parent)
    (secret_file.parent / "keys.txt").write_text("AAAAA-BBBBB\n")
    # the file itself is regular; the path runs through a linked directory: allowed
    assert run(engine, tmp_path / "d" / "keys.txt", product.slug).imported == 1


def test_following_a_symbolic_link_is_a_choice(engine, session, tmp_path):
    product = make_product(session)
    real = tmp_path / "real.txt"
    real.write_text("AAAAA-BBBBB\nCCCCC-DDDDD\n")
    link = tmp_path / "keys.txt"
    link.symlink_to(real)
    assert run(engine, link, product.slug, follow_symlinks=True).imported == 2


def test_a_named_pipe_is_refused_without_hanging(engine, session, tmp_path):
    product = make_product(session)
    fifo = tmp_path / "keys.txt"
    os.mkfifo(fifo)
    with pytest.raises(ImportFileError) as raised:
        run(engine, fifo, product.slug)
    assert "not a regular file" in str(raised.value) and "--allow-special-files" in str(
        raised.value
    )
    assert count(session, Key) == 0 and count(session, ImportBatch) == 0


def test_a_named_pipe_is_read_once_when_allowed(engine, session, tmp_path, var_dir):
    product = make_product(session)
    fifo = tmp_path / "keys.txt"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w") as fh:
            fh.write("EEEEE-FFFFF\nGGGGG-HHHHH\nIIIII-JJJJJ\n")

    writer = threading.Thread(target=feed)
    writer.start()
    report = run(engine, fifo, product.slug, allow_special_files=True)
    writer.join(timeout=10)
    assert report.imported == 3 and report.file_name == "keys.txt"
    assert list((var_dir / "import-spool").glob("*")) == []  # the private copy is gone


def test_a_device_is_refused(engine, session):
    product = make_product(session)
    with pytest.raises(ImportFileError) as raised:
        run(engine, Path("/dev/null"), product.slug)
    assert "not a regular file" in str(raised.value)
