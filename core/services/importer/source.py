"""The file of keys, before anything is written: every check that refuses it as a whole
(missing, a directory, empty, binary or UTF-16, an unsupported extension, a CSV without a
``key`` column), opening it as text, and reading it in bounded physical lines."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.config import get_settings
from core.errors import ImportFileError

FORMATS = {".txt": "txt", ".csv": "csv"}
CSV_COLUMNS = ("key", "cost", "currency", "supplier", "product")
SNIFF_BYTES = 8192


@dataclass(frozen=True)
class _Source:
    path: Path
    file_format: str  # "txt" | "csv"
    size: int
    delimiter: str = ","
    columns: tuple[str, ...] = ()  # lower-cased CSV header

    def column(self, name: str) -> int | None:
        return self.columns.index(name) if name in self.columns else None


def _check_file(path: Path, product_slug: str | None) -> _Source:
    """Everything that refuses the file as a whole, before anything is written."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file", file=str(path)) from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read it ({exc.strerror})", file=str(path)) from None
    if path.is_dir():
        raise ImportFileError(f"{path} is a directory, not a file of keys", file=str(path))
    file_format = FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ImportFileError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; "
            "use .txt (one key per line) or .csv (with a 'key' column)",
            file=str(path),
        )
    if st.st_size == 0:
        raise ImportFileError(f"{path} is empty", file=str(path))
    try:
        with path.open("rb") as fh:
            _refuse_binary(path, fh.read(SNIFF_BYTES))
            fh.seek(0)
            if _only_whitespace(fh):
                raise ImportFileError(f"{path} is empty (only blank lines)", file=str(path))
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read it ({exc.strerror})", file=str(path)) from None
    source = _Source(path=path, file_format=file_format, size=st.st_size)
    if file_format == "csv":
        source = _read_csv_header(source)
    if product_slug is None and source.column("product") is None:
        raise ImportFileError(
            f"{path}: say which product the keys are for (--product SLUG), "
            "or give a CSV file with a 'product' column",
            file=str(path),
        )
    return source


def _refuse_binary(path: Path, head: bytes) -> None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError(f"{path} is UTF-16 text; save it as UTF-8", file=str(path))
    if b"\x00" in head:
        raise ImportFileError(
            f"{path} looks like a binary file (NUL bytes), not text", file=str(path)
        )
    # final=False: a multi-byte character cut at the end of the sample is not an error.
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(
        head.removeprefix(codecs.BOM_UTF8), final=False
    )
    bad = sum(1 for ch in text if ch == "\ufffd" or (ch not in "\r\n\t" and not ch.isprintable()))
    if text and bad * 10 > len(text) * 3:  # over 30%: binary, not a few bad lines
        raise ImportFileError(f"{path} is not UTF-8 text (binary data?)", file=str(path))


def _only_whitespace(fh: io.BufferedReader) -> bool:
    first = True
    while chunk := fh.read(1 << 16):
        if first:
            chunk = chunk.removeprefix(codecs.BOM_UTF8)
            first = False
        if chunk.strip():
            return False
    return True


def _open_text(source: _Source) -> tuple[io.BufferedReader, io.TextIOWrapper]:
    raw = source.path.open("rb")
    # utf-8-sig drops a BOM; surrogateescape turns invalid bytes into lone surrogates,
    # which the per-line check rejects (category Cs) without failing the whole file.
    text = io.TextIOWrapper(
        raw,
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="" if source.file_format == "csv" else None,
    )
    return raw, text


def _line_limit() -> int:
    return get_settings().max_key_length * 2 + 256


class _Lines:
    """Physical lines of a text file, each at most ``limit`` characters: a longer line is
    skipped without being held in memory, replaced by an empty line, and flagged."""

    def __init__(self, fh: io.TextIOWrapper, limit: int) -> None:
        self._readline = fh.readline
        self._limit = limit
        self.overlong = False  # set when a line was cut; the reader clears it

    def __iter__(self) -> Iterator[str]:
        readline, limit = self._readline, self._limit
        while line := readline(limit):
            if len(line) == limit and not line.endswith(("\n", "\r")):
                while (
                    (rest := readline(limit))
                    and len(rest) == limit
                    and not rest.endswith(("\n", "\r"))
                ):
                    pass
                self.overlong = True
                yield "\n"
                continue
            yield line


def _read_csv_header(source: _Source) -> _Source:
    raw, fh = _open_text(source)
    with raw, fh:
        first = fh.readline(_line_limit())
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: (counts[d], d == ","))
    try:
        header = next(csv.reader([first], delimiter=delimiter, strict=True), [])
    except csv.Error:
        header = []
    columns = tuple(name.strip().lower() for name in header)
    # Never echo the header: a key list saved as .csv would put a key in the message.
    if "key" not in columns:
        raise ImportFileError(
            f"{source.path}: the first line of a CSV file must be a header naming a 'key' "
            "column (optional: cost, currency, supplier, product)",
            file=str(source.path),
        )
    for name in CSV_COLUMNS:
        if columns.count(name) > 1:
            raise ImportFileError(
                f"{source.path}: the CSV header names {name!r} twice", file=str(source.path)
            )
    return _Source(
        path=source.path,
        file_format="csv",
        size=source.size,
        delimiter=delimiter,
        columns=columns,
    )
