"""The file of keys, before anything is written: every check that refuses it as a whole
(missing, a directory, empty, binary or UTF-16, an unsupported extension, a CSV without a
``key`` column), opening it as text, and reading it in bounded physical lines."""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
import shutil
import stat
import tempfile
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
    follow_symlinks: bool = False

    def column(self, name: str) -> int | None:
        return self.columns.index(name) if name in self.columns else None


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def _check_kind(path: Path, *, follow_symlinks: bool) -> os.stat_result:
    """The file's status, refusing a symbolic link (unless ``follow_symlinks``) and
    anything that is not a regular file; never opens it (a FIFO would block)."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            if not follow_symlinks:
                raise ImportFileError(
                    f"{path} is a symbolic link; import the file it points to, or pass "
                    "--follow-symlinks if you mean it",
                    file=str(path),
                )
            st = os.stat(path)
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file", file=str(path)) from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read it ({exc.strerror})", file=str(path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImportFileError(f"{path} is a directory, not a file of keys", file=str(path))
    if not stat.S_ISREG(st.st_mode):
        raise ImportFileError(
            f"{path} is not a regular file (a {_kind(st.st_mode)}); pass "
            "--allow-special-files to read it once into a private copy",
            file=str(path),
        )
    return st


def _open_regular(path: Path, *, follow_symlinks: bool) -> io.BufferedReader:
    """Open ``path`` for reading as checked by :func:`_check_kind`: ``O_NOFOLLOW`` (a link
    put in its place after the check is refused) and ``O_NONBLOCK`` (a FIFO put there
    does not hang), then the opened file itself must be regular."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read it ({exc.strerror})", file=str(path)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImportFileError(f"{path} changed into something other than a file", file=str(path))
    os.set_blocking(fd, True)
    return open(fd, "rb")


@contextlib.contextmanager
def _spooled(path: Path, *, follow_symlinks: bool) -> Iterator[Path]:
    """A regular file to import from: ``path`` itself, or, for a named pipe or a device
    (``allow_special_files``), a private copy (mode 0600) under ``var/import-spool/``,
    read once and deleted afterwards (it holds plaintext keys)."""
    try:
        mode = (os.stat if follow_symlinks else os.lstat)(path).st_mode
    except OSError:
        mode = stat.S_IFREG  # _check_kind reports it
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        yield path
        return
    folder = get_settings().var_dir / "import-spool"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(dir=folder, suffix=path.suffix)
    copy = Path(name)
    try:
        with open(fd, "wb") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        yield copy
    finally:
        copy.unlink(missing_ok=True)


def _check_file(path: Path, product_slug: str | None, *, follow_symlinks: bool = False) -> _Source:
    """Everything that refuses the file as a whole, before anything is written."""
    path = Path(path)
    st = _check_kind(path, follow_symlinks=follow_symlinks)
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
        with _open_regular(path, follow_symlinks=follow_symlinks) as fh:
            _refuse_binary(path, fh.read(SNIFF_BYTES))
            fh.seek(0)
            if _only_whitespace(fh):
                raise ImportFileError(f"{path} is empty (only blank lines)", file=str(path))
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read it ({exc.strerror})", file=str(path)) from None
    source = _Source(
        path=path, file_format=file_format, size=st.st_size, follow_symlinks=follow_symlinks
    )
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
    raw = _open_regular(source.path, follow_symlinks=source.follow_symlinks)
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
        follow_symlinks=source.follow_symlinks,
    )
