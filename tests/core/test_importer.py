"""The bulk key importer, as an operator sees it: counts, stored keys, rejected lines,
refused files, interruptions, and that no key text leaks anywhere."""

from __future__ import annotations

import logging
import secrets
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from core import crypto
from core.config import Settings
from core.errors import ImportFileError, UnknownProduct
from core.models import AuditEvent, ImportBatch, ImportStatus, Key, KeyStatus, Product
from core.services import importer
from core.services.importer import ImportReport, Rejection, import_keys
from tests.conftest import is_postgres_run
from tests.factories import make_keys, make_product

# --- helpers -----------------------------------------------------------------------


def new_codes(n: int) -> list[str]:
    return [
        f"{secrets.token_hex(4).upper()}-{secrets.token_hex(4).upper()}-{i:07d}" for i in range(n)
    ]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


# The helpers below read fresh rows (populate_existing) rather than expiring the session:
# an expired ``product`` would be reloaded by ``product.slug`` in a transaction left open,
# and on SQLite that holds the write lock (or an old snapshot) across the next import.


def stored_codes(session: Session, vault: crypto.KeyVault, **where: Any) -> list[str]:
    query = select(Key).execution_options(populate_existing=True)
    for name, value in where.items():
        query = query.where(getattr(Key, name) == value)
    codes = sorted(
        vault.decrypt(k.ciphertext, key_version=k.key_version, row_id=k.id).decode()
        for k in session.exec(query)
    )
    session.commit()  # end the read: on SQLite an open transaction blocks the importer
    return codes


def key_count(session: Session) -> int:
    count = session.exec(select(func.count()).select_from(Key)).one()
    session.commit()
    return count


def batch_row(session: Session, batch_id: int) -> ImportBatch:
    row = session.get(ImportBatch, batch_id, populate_existing=True)
    assert row is not None
    session.commit()
    return row


def assert_balanced(report: ImportReport) -> None:
    assert report.read == (
        report.imported + report.duplicate_in_file + report.duplicate_in_stock + report.rejected
    )


def assert_row_matches(row: ImportBatch, report: ImportReport) -> None:
    assert (
        row.lines_read,
        row.imported,
        row.duplicate_in_file,
        row.duplicate_in_stock,
        row.rejected,
    ) == (
        report.read,
        report.imported,
        report.duplicate_in_file,
        report.duplicate_in_stock,
        report.rejected,
    )


def run(engine: Engine, path: Path, product: Product | None, **kw: Any) -> ImportReport:
    return import_keys(
        path=path,
        product_slug=product.slug if product else None,
        operator="alice",
        engine=engine,
        **kw,
    )


# --- plain text --------------------------------------------------------------------


def test_txt_import_stores_every_key_encrypted_with_counts(engine, session, vault, tmp_path):
    product = make_product(session)
    codes = new_codes(5)
    # A BOM, padding around a key, CRLF line ends, a blank line, no final newline.
    path = write(
        tmp_path,
        "keys.txt",
        "\ufeff" + f"{codes[0]}\r\n  {codes[1]}\t\r\n\r\n{codes[2]}\n{codes[3]}\n{codes[4]}",
    )

    report = run(engine, path, product)

    assert (report.read, report.imported, report.rejected) == (6, 5, 1)
    assert report.rejections == [Rejection(line=3, reason="empty")]
    assert report.file_name == "keys.txt" and report.product_slug == product.slug
    assert_balanced(report)
    row = batch_row(session, report.batch_id)
    assert row.status == ImportStatus.COMPLETED and row.finished_at is not None
    assert row.product_id == product.id and row.operator == "alice" and row.file_format == "txt"
    assert_row_matches(row, report)
    assert row.rejections == [{"line": 3, "reason": "empty"}]
    assert stored_codes(session, vault) == sorted(codes)
    keys = session.exec(select(Key)).all()
    assert {(k.product_id, k.status, k.kind, k.import_batch_id) for k in keys} == {
        (product.id, KeyStatus.AVAILABLE, "text", report.batch_id)
    }
    assert all(
        k.fingerprint == vault.fingerprint(c)
        for k, c in zip(
            sorted(
                keys,
                key=lambda k: vault.decrypt(k.ciphertext, key_version=k.key_version, row_id=k.id),
            ),
            sorted(codes),
            strict=True,
        )
    )
    audit = session.exec(select(AuditEvent).where(AuditEvent.object_type == "import_batch")).one()
    assert audit.actor_id == "alice" and audit.data["imported"] == 5


def test_a_trailing_newline_is_not_a_line_but_blank_lines_are(engine, session, tmp_path):
    product = make_product(session)
    codes = new_codes(2)
    report = run(engine, write(tmp_path, "k.txt", f"{codes[0]}\n{codes[1]}\n"), product)
    assert (report.read, report.imported, report.rejected) == (2, 2, 0)
    report = run(engine, write(tmp_path, "k2.txt", f"{new_codes(1)[0]}\n\n   \n"), product)
    assert (report.read, report.imported, report.rejected) == (3, 1, 2)
    assert [r.line for r in report.rejections] == [2, 3]


def test_rejected_lines_are_reported_by_number_and_reason(
    engine, session, vault, test_settings, tmp_path
):
    product = make_product(session)
    good = new_codes(2)
    too_long = "A" * (test_settings.max_key_length + 1)
    lines = [
        good[0].encode(),  # 1
        b"",  # 2 empty
        b"ABC\x07DEF",  # 3 control character
        too_long.encode(),  # 4
        "ABC\u200bDEF".encode(),  # 5 zero-width space (Cf)
        b"AB\xff\xfeCD",  # 6 invalid UTF-8
        b"---",  # 7 only separators: no code
        b"AB\tCD",  # 8 a tab inside
        ("B" * test_settings.max_key_length).encode(),  # 9 exactly the limit: fine
        ("C" * 100_000).encode(),  # 10 far too long, not read into memory whole
        good[1].encode(),  # 11
    ]
    path = write(tmp_path, "mixed.txt", b"\n".join(lines) + b"\n")

    report = run(engine, path, product)

    assert [(r.line, r.reason) for r in report.rejections] == [
        (2, "empty"),
        (3, "control or binary characters"),
        (4, "too long"),
        (5, "control or binary characters"),
        (6, "control or binary characters"),
        (7, "empty"),
        (8, "control or binary characters"),
        (10, "too long"),
    ]
    assert (report.read, report.imported, report.rejected) == (11, 3, 8)
    assert_balanced(report)
    assert stored_codes(session, vault) == sorted([*good, "B" * test_settings.max_key_length])
    row = batch_row(session, report.batch_id)
    assert row.rejections == [{"line": r.line, "reason": r.reason} for r in report.rejections]


def test_report_lists_20_rejections_and_the_batch_row_100(engine, session, tmp_path):
    product = make_product(session)
    path = write(tmp_path, "blank.txt", "X" * 20 + "\n" + "\n" * 150 + "Y" * 20 + "\n")
    report = run(engine, path, product, batch_size=40)
    assert (report.read, report.imported, report.rejected) == (152, 2, 150)
    assert [r.line for r in report.rejections] == list(range(2, 22))
    row = batch_row(session, report.batch_id)
    assert [r["line"] for r in row.rejections] == list(range(2, 102))


# --- CSV ---------------------------------------------------------------------------


def test_csv_with_cost_currency_supplier_and_product_columns(engine, session, vault, tmp_path):
    main = make_product(session, currency="EUR")
    other = make_product(session, currency="USD")
    yen = make_product(session, currency="JPY")
    c = new_codes(8)
    path = write(
        tmp_path,
        "keys.csv",
        "Supplier,KEY,Cost,currency,product\n"
        f"Acme,{c[0]},4.99,,\n"  # 2: product's currency (EUR)
        f"Acme,{c[1]},4.99,gbp,\n"  # 3: given currency
        f'"Big, Co",{c[2]},,,{other.slug}\n'  # 4: another product, no cost
        f",{c[3]},12,,{other.slug}\n"  # 5: the other product's currency
        f",{c[4]},500,,{yen.slug}\n"  # 6: no minor unit in JPY
        f",{c[5]},1,,no-such-game\n"  # 7: unknown product
        f",{c[6]},1.999,,\n"  # 8: more decimals than the currency has
        f",{c[7]},abc,,\n"  # 9: not a number
        f",{c[7]},-1,,\n"  # 10: negative
        f",{c[7]},1,EURO,\n"  # 11: not a currency code
        f",{c[7]},1\n"  # 12: wrong field count
        f',"{c[7]}"x,1,,\n'  # 13: bad quoting
        ",,1,,\n"  # 14: no key
        ",,,,\n",  # 15: nothing at all
    )

    report = run(engine, path, main)

    assert [(r.line, r.reason) for r in report.rejections] == [
        (7, "unknown product"),
        (8, "bad cost: too many decimals for EUR, or too large"),
        (9, "bad cost: not a number"),
        (10, "bad cost: negative"),
        (11, "bad currency: not a three-letter code such as EUR"),
        (12, "malformed CSV: 3 fields, the header has 5"),
        (13, "malformed CSV: a quote in the middle of a field"),
        (14, "empty"),
        (15, "empty"),
    ]
    assert (report.read, report.imported, report.rejected) == (14, 5, 9)
    assert_balanced(report)
    by_code = {
        vault.decrypt(k.ciphertext, key_version=k.key_version, row_id=k.id).decode(): k
        for k in session.exec(select(Key))
    }
    assert set(by_code) == set(c[:5])
    got = {
        code: (k.product_id, k.supplier, k.cost_minor, k.cost_currency)
        for code, k in by_code.items()
    }
    assert got == {
        c[0]: (main.id, "Acme", 499, "EUR"),
        c[1]: (main.id, "Acme", 499, "GBP"),
        c[2]: (other.id, "Big, Co", None, None),
        c[3]: (other.id, None, 1200, "USD"),
        c[4]: (yen.id, None, 500, "JPY"),
    }
    row = batch_row(session, report.batch_id)
    assert row.file_format == "csv"
    assert_row_matches(row, report)


def test_csv_product_column_without_product_option(engine, session, vault, tmp_path):
    game = make_product(session)
    c = new_codes(3)
    path = write(
        tmp_path, "p.csv", f"key,product\n{c[0]},{game.slug}\n{c[1]},\n{c[2]},{game.slug}\n"
    )
    report = run(engine, path, None)
    assert (report.imported, report.rejected) == (2, 1)
    assert report.rejections == [Rejection(3, "unknown product")]
    assert stored_codes(session, vault, product_id=game.id) == sorted([c[0], c[2]])
    assert batch_row(session, report.batch_id).product_id is None


def test_csv_product_cell_with_undecodable_bytes_is_rejected(engine, session, vault, tmp_path):
    game = make_product(session)
    c = new_codes(2)
    body = f"key,product\n{c[0]},{game.slug}\n".encode() + c[1].encode() + b",bad\xff\xfeslug\n"
    report = run(engine, write(tmp_path, "b.csv", body), None)
    assert (report.imported, report.rejected) == (1, 1)
    assert report.rejections == [Rejection(3, "control or binary characters")]


def test_csv_semicolon_delimiter_bom_and_a_record_split_over_two_lines(
    engine, session, vault, tmp_path
):
    product = make_product(session)
    c = new_codes(3)
    path = write(
        tmp_path, "s.csv", f'\ufeffKey;Supplier\n{c[0]};A\n{c[1]};"two\nlines"\n{c[2]};B\n'
    )
    report = run(engine, path, product)
    # A record of a key file is one line: a quoted field never runs onto the next line,
    # so each half is refused on its own line and the lines around them are imported.
    assert (report.read, report.imported, report.rejected) == (4, 2, 2)
    assert report.rejections == [
        Rejection(3, "malformed CSV: a quote is not closed on this line"),
        Rejection(4, "malformed CSV: 1 field, the header has 2"),
    ]
    assert stored_codes(session, vault) == sorted([c[0], c[2]])


def test_an_unclosed_quote_refuses_its_line_only(engine, session, vault, tmp_path):
    """An unclosed quote used to swallow every line after it into one malformed record:
    valid keys silently not imported."""
    product = make_product(session)
    c = new_codes(4)
    path = write(tmp_path, "q.csv", f'key\n{c[0]}\n"{c[1]}\n{c[2]}\n{c[3]}\n')
    report = run(engine, path, product)
    assert (report.read, report.imported, report.rejected) == (4, 3, 1)
    assert report.rejections == [Rejection(3, "malformed CSV: a quote is not closed on this line")]
    assert stored_codes(session, vault) == sorted([c[0], c[2], c[3]])


# --- duplicates --------------------------------------------------------------------


def test_duplicates_in_the_file_across_batches_and_in_stock(engine, session, vault, tmp_path):
    product = make_product(session)
    stock = new_codes(2)
    make_keys(session, product, 0, codes=stock)
    c = new_codes(5)
    lines = [
        c[0], c[1], c[0],  # batch 1: a duplicate inside the batch
        stock[0], c[2], c[1].lower(),  # batch 2: stock; c[1] again, normalised, across batches
        c[3], c[2].replace("-", " "), stock[1],  # batch 3: c[2] again from batch 2
        c[4], c[0],  # batch 4: c[0] from batch 1
    ]  # fmt: skip
    path = write(tmp_path, "d.txt", "\n".join(lines) + "\n")

    report = run(engine, path, product, batch_size=3)

    assert (report.read, report.imported, report.duplicate_in_file, report.duplicate_in_stock) == (
        11, 5, 4, 2,
    )  # fmt: skip
    assert_balanced(report)
    assert_row_matches(batch_row(session, report.batch_id), report)
    assert stored_codes(session, vault, import_batch_id=report.batch_id) == sorted(c)
    assert key_count(session) == 7


def test_importing_the_same_file_again_imports_nothing_twice(engine, session, vault, tmp_path):
    product = make_product(session)
    codes = new_codes(25)
    path = write(tmp_path, "again.txt", "\n".join(codes) + "\n")
    first = run(engine, path, product, batch_size=10)
    second = run(engine, path, product, batch_size=10)
    assert (first.imported, first.duplicate_in_stock) == (25, 0)
    assert (second.read, second.imported, second.duplicate_in_file, second.duplicate_in_stock) == (
        25, 0, 0, 25,
    )  # fmt: skip
    assert second.batch_id != first.batch_id
    assert batch_row(session, second.batch_id).status == ImportStatus.COMPLETED
    assert stored_codes(session, vault) == sorted(codes)


def test_a_key_inserted_concurrently_counts_as_in_stock_and_the_batch_goes_on(
    engine, session, vault, tmp_path, monkeypatch
):
    """Another import stores one of our codes after we prepared the batch and before we
    insert it: ON CONFLICT skips it, the batch commits, the code counts as in stock."""
    product = make_product(session)
    codes = new_codes(6)
    path = write(tmp_path, "race.txt", "\n".join(codes) + "\n")
    real_prepare = importer._prepare
    calls = []

    def prepare_then_compete(chunk: Any, **kw: Any) -> Any:
        prepared = real_prepare(chunk, **kw)
        calls.append(1)
        if len(calls) == 2:  # the competitor takes a code of the second batch
            with Session(engine) as other:
                make_keys(other, product, 0, codes=[codes[4]])
        return prepared

    monkeypatch.setattr(importer, "_prepare", prepare_then_compete)
    report = run(engine, path, product, batch_size=3)

    assert (report.read, report.imported, report.duplicate_in_file, report.duplicate_in_stock) == (
        6, 5, 0, 1,
    )  # fmt: skip
    assert_row_matches(batch_row(session, report.batch_id), report)
    assert stored_codes(session, vault) == sorted(codes)


# --- refused files: a clear error and nothing written ------------------------------


def assert_nothing_written(session: Session) -> None:
    assert key_count(session) == 0
    assert session.exec(select(func.count()).select_from(ImportBatch)).one() == 0
    session.commit()


BAD_FILES: list[tuple[str, str, bytes | str | None, str]] = [
    ("missing", "nope.txt", None, "no such file"),
    ("directory", "folder.txt", "DIR", "is a directory"),
    ("empty", "empty.txt", b"", "is empty"),
    ("whitespace only", "blank.txt", " \n\n\t\r\n   ", "is empty"),
    ("bom only", "bom.csv", b"\xef\xbb\xbf\n", "is empty"),
    (
        "binary",
        "image.txt",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        "binary",
    ),
    ("not utf-8", "latin.txt", bytes(range(128, 256)) * 20, "not UTF-8"),
    ("utf-16", "wide.txt", "ABCD-EFGH\n".encode("utf-16"), "UTF-16"),
    ("csv without key column", "nokey.csv", "code,cost\nAAAA-BBBB,1\n", "'key' column"),
    ("csv headed by a key", "keys.csv", "SECRET-KEY-11111\nSECRET-KEY-22222\n", "'key' column"),
    ("unsupported extension", "keys.xlsx", "AAAA-BBBB\n", "unsupported file type"),
    ("no extension", "keys", "AAAA-BBBB\n", "unsupported file type"),
]


@pytest.mark.parametrize(
    ("name", "content", "message"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_unusable_files_are_refused_whole(engine, session, tmp_path, name, content, message):
    product = make_product(session)
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif content is not None:
        write(tmp_path, name, content)
    with pytest.raises(ImportFileError) as raised:
        run(engine, path, product)
    assert message in str(raised.value)
    assert "SECRET" not in str(raised.value)
    assert_nothing_written(session)


def test_unknown_product_is_refused_before_anything_is_written(engine, session, tmp_path):
    make_product(session)
    path = write(tmp_path, "k.txt", "AAAA-BBBB\n")
    with pytest.raises(UnknownProduct, match="no-such-game"):
        import_keys(path=path, product_slug="no-such-game", operator="alice", engine=engine)
    assert_nothing_written(session)


def test_a_txt_file_needs_a_product(engine, session, tmp_path):
    path = write(tmp_path, "k.txt", "AAAA-BBBB\n")
    with pytest.raises(ImportFileError, match="--product"):
        run(engine, path, None)
    path = write(tmp_path, "k.csv", "key,cost\nAAAA-BBBB,1\n")
    with pytest.raises(ImportFileError, match="--product"):
        run(engine, path, None)
    assert_nothing_written(session)


# --- interruptions and failures ----------------------------------------------------


def test_interruption_leaves_whole_batches_and_a_rerun_completes(engine, session, vault, tmp_path):
    product = make_product(session)
    codes = new_codes(450)
    path = write(tmp_path, "big.txt", "\n".join(codes) + "\n")
    seen: list[tuple[int, int | None]] = []

    def ctrl_c_after_two_batches(done: int, total: int | None) -> None:
        seen.append((done, total))
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(engine, path, product, batch_size=100, progress=ctrl_c_after_two_batches)

    first = session.exec(select(ImportBatch)).one()
    session.commit()
    assert first.status == ImportStatus.FAILED and first.error == "interrupted"
    assert first.finished_at is not None
    # The two batches reported, and on PostgreSQL perhaps the third, which a second
    # writer was already storing when the interruption came: whole batches either way.
    done = first.lines_read
    assert done in ((200, 300) if importer.PG_WRITERS > 1 and is_postgres_run() else (200,))
    assert first.imported == done
    assert stored_codes(session, vault) == sorted(codes[:done])

    progress: list[tuple[int, int | None]] = []
    report = run(
        engine, path, product, batch_size=100, progress=lambda d, t: progress.append((d, t))
    )
    assert (report.read, report.imported, report.duplicate_in_stock, report.duplicate_in_file) == (
        450, 450 - done, done, 0,
    )  # fmt: skip
    assert stored_codes(session, vault) == sorted(codes)
    size = path.stat().st_size
    assert len(progress) == 5 and progress[-1] == (size, size)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_an_error_mid_way_marks_the_batch_failed_and_keeps_whole_batches(
    engine, session, vault, tmp_path, monkeypatch
):
    product = make_product(session)
    codes = new_codes(30)
    path = write(tmp_path, "k.txt", "\n".join(codes) + "\n")
    real_write = importer._Writer.write
    third = vault.fingerprint(codes[25])

    def fail_the_last_batch(self: Any, batch: Any) -> Any:
        if third in batch.fingerprints:  # the third batch (writers may run side by side)
            raise RuntimeError(f"boom near {codes[25]}")  # a careless message quoting a key
        return real_write(self, batch)

    monkeypatch.setattr(importer._Writer, "write", fail_the_last_batch)
    with pytest.raises(RuntimeError):
        run(engine, path, product, batch_size=10)
    row = session.exec(select(ImportBatch)).one()
    session.commit()
    assert row.status == ImportStatus.FAILED
    assert row.error and "RuntimeError" in row.error and codes[25] not in row.error
    assert (row.lines_read, row.imported) == (20, 20)
    assert stored_codes(session, vault) == sorted(codes[:20])


# --- secrets -----------------------------------------------------------------------


def test_key_text_never_appears_in_the_batch_row_errors_or_logs(engine, session, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    product = make_product(session)
    secret = [f"TOPSECRET{i:04d}XYZ" for i in range(6)]
    path = write(
        tmp_path,
        "s.csv",
        "key,cost,currency\n"
        f"{secret[0]},1,\n{secret[0]},1,\n{secret[1]},abc,\n{secret[2]}\x01,1,\n"
        f"{secret[3]},1,EUROS\n{secret[4]},1\n{secret[5]},2,\n",
    )
    run(engine, path, product)
    report = run(engine, path, product)  # again: every key is now a duplicate in stock
    assert report.duplicate_in_stock == 2

    with pytest.raises(ImportFileError) as raised:  # a key file mistaken for a CSV
        run(engine, write(tmp_path, "plain.csv", "\n".join(secret) + "\n"), product)

    texts = [caplog.text, str(raised.value), repr(raised.value.to_dict())]
    for row in session.exec(select(ImportBatch)):
        texts.append(repr(row.model_dump()))
    for event in session.exec(select(AuditEvent)):
        texts.append(repr(event.model_dump()))
    everything = "\n".join(texts).upper()
    assert "TOPSECRET" not in everything
    assert "import batch" in caplog.text  # the logs do say what happened


# --- streaming ---------------------------------------------------------------------


def test_a_large_file_is_streamed_not_loaded(engine, session, tmp_path):
    """A 10 MB file: the memory held at once is a batch or two, not the file.

    50,000 long lines, one in ten a key and the rest rejected: tracemalloc slows every
    allocation tenfold, and this keeps the test to a few seconds. The importer's speed on
    a 1,000,000-line file is measured by bench/import_keys.py, not here."""
    product = make_product(session)
    n = 50_000
    path = tmp_path / "large.txt"
    with path.open("w") as fh:
        for i in range(n):
            fh.write(
                f"STREAM-{i:08d}-{'X' * 185}\n" if i % 10 == 0 else f"BAD\x01{i:08d}-{'Y' * 188}\n"
            )
    size = path.stat().st_size
    assert size > 10_000_000
    tracemalloc.start()
    try:
        report = run(engine, path, product, batch_size=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.read, report.imported, report.rejected) == (n, n // 10, n - n // 10)
    assert key_count(session) == n // 10
    assert peak < size / 10, (peak, size)


def test_the_writer_thread_is_gone_after_an_import(engine, session, tmp_path):
    product = make_product(session)
    run(engine, write(tmp_path, "k.txt", "\n".join(new_codes(3))), product)
    assert not [t for t in threading.enumerate() if t.name.startswith("keyshop-import")]


def test_rejections_never_include_the_line_text_even_when_many(engine, session, tmp_path):
    product = make_product(session)
    path = write(tmp_path, "bad.txt", "".join(f"BAD\x01KEY{i}\n" for i in range(30)))
    report = run(engine, path, product)
    row = batch_row(session, report.batch_id)
    assert all(set(r) == {"line", "reason"} for r in row.rejections)
    assert len(report.rejections) == 20 and report.rejected == 30
    assert (
        session.exec(
            select(func.count()).select_from(Key).where(col(Key.import_batch_id) == report.batch_id)
        ).one()
        == 0
    )


def test_batch_size_defaults_to_the_setting(engine, session, tmp_path, test_settings: Settings):
    product = make_product(session)
    calls: list[int] = []
    report = run(
        engine,
        write(tmp_path, "k.txt", "\n".join(new_codes(3)) + "\n"),
        product,
        progress=lambda d, t: calls.append(d),
    )
    assert report.imported == 3 and len(calls) == 1  # 3 lines < import_batch_size
    assert test_settings.import_batch_size >= 100


# --- PostgreSQL: COPY straight into keys, and its fallback -------------------------


@pytest.mark.postgres_only
def test_a_key_stored_between_the_check_and_the_copy_sends_the_batch_through_on_conflict(
    engine, session, vault, tmp_path, monkeypatch, caplog
):
    """The per-batch check missed a code a concurrent import committed just after it: the
    COPY meets the unique index, the batch is rolled back whole and stored again with
    ON CONFLICT DO NOTHING, and the code counts as in stock. (A code already in stock
    in the first batch keeps the importer checking before each COPY.)"""
    product = make_product(session)
    codes = new_codes(6)
    make_keys(session, product, 0, codes=[codes[0]])
    path = write(tmp_path, "race.txt", "\n".join(codes) + "\n")
    real_check = importer._PostgresStore._already_stored
    calls: list[int] = []
    contested = vault.fingerprint(codes[4])

    def check_then_compete(self: Any, cur: Any, fingerprints: list[bytes]) -> Any:
        found = real_check(self, cur, fingerprints)
        calls.append(1)
        if contested in fingerprints:  # the competitor commits a code of the second batch now
            with Session(engine) as other:
                make_keys(other, product, 0, codes=[codes[4]])
        return found

    monkeypatch.setattr(importer._PostgresStore, "_already_stored", check_then_compete)
    with caplog.at_level(logging.INFO, logger="core.services.importer"):
        report = run(engine, path, product, batch_size=3)

    assert len(calls) == 2
    assert (report.read, report.imported, report.duplicate_in_file, report.duplicate_in_stock) == (
        6, 4, 0, 2,
    )  # fmt: skip
    assert "storing the batch again" in caplog.text
    assert codes[4] not in caplog.text and codes[4].upper() not in caplog.text
    assert_row_matches(batch_row(session, report.batch_id), report)
    assert stored_codes(session, vault) == sorted(codes)


@pytest.mark.postgres_only
def test_concurrent_imports_of_overlapping_files_both_complete(engine, session, vault, tmp_path):
    """Two imports race over the same codes (in opposite orders, to provoke unique
    violations and deadlocks between their COPYs): both complete, every code is stored
    once, and the counts add up."""
    product = make_product(session)
    codes = new_codes(2000)
    first = write(tmp_path, "a.txt", "\n".join(codes) + "\n")
    second = write(tmp_path, "b.txt", "\n".join(reversed(codes)) + "\n")
    start = threading.Barrier(2)
    reports: list[ImportReport] = []
    errors: list[BaseException] = []

    def importing(path: Path) -> None:
        try:
            start.wait()
            reports.append(run(engine, path, product, batch_size=250))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=importing, args=(p,)) for p in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(reports) == 2
    for report in reports:
        assert_balanced(report)
        assert report.duplicate_in_file == 0 and report.rejected == 0
        assert_row_matches(batch_row(session, report.batch_id), report)
    assert sum(r.imported for r in reports) == len(codes)
    assert sum(r.duplicate_in_stock for r in reports) == len(codes)
    assert key_count(session) == len(codes)
    assert stored_codes(session, vault) == sorted(codes)


@pytest.mark.postgres_only
def test_batches_stored_side_by_side_may_commit_out_of_order(
    engine, session, vault, tmp_path, monkeypatch
):
    """The first batch is held back until the second, stored by the other writer, has
    committed: the counts, the stored codes and the rejected lines listed on the batch
    row (which only grows, whatever the order of the commits) are as one writer would
    leave them."""
    assert importer.PG_WRITERS >= 2
    product = make_product(session)
    codes = new_codes(20)
    # batch 1: a rejected line 5; batch 2: rejected lines 11 and 20; batch 3: two codes
    lines = [*codes[:4], "BAD\x01ONE", *codes[4:9], "\x02", *codes[9:17], "", *codes[17:]]
    path = write(tmp_path, "k.txt", "\n".join(lines) + "\n")
    first = vault.fingerprint(codes[0])
    second_stored = threading.Event()
    real_write = importer._Writer.write

    def hold_the_first_batch(self: Any, batch: Any) -> Any:
        if first in batch.fingerprints:
            assert second_stored.wait(timeout=30), "the second batch waited for the first"
            return real_write(self, batch)
        stored = real_write(self, batch)
        second_stored.set()
        return stored

    monkeypatch.setattr(importer._Writer, "write", hold_the_first_batch)
    report = run(engine, path, product, batch_size=10)

    assert second_stored.is_set()
    assert (report.read, report.imported, report.rejected) == (23, 20, 3)
    row = batch_row(session, report.batch_id)
    assert_row_matches(row, report)
    assert row.rejections == [
        {"line": 5, "reason": "control or binary characters"},
        {"line": 11, "reason": "control or binary characters"},
        {"line": 20, "reason": "empty"},
    ]
    assert stored_codes(session, vault) == sorted(codes)
