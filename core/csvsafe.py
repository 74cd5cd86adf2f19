"""CSV files a spreadsheet may open, and CSV files a person may have edited.

- :func:`escape_cell` neutralises spreadsheet formulas on the way out: a cell starting
  with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (OWASP's list) gets a
  leading apostrophe, and so does one already starting with an apostrophe, so
  :func:`unescape_cell` gives back exactly what was written.
- :func:`records` reads CSV text into records numbered by the physical line they start
  on, and recovers from broken quoting: a record the ``csv`` module refuses (an unclosed
  quote reads to the end of the file) is refused on its own line, and reading goes on
  from the next line, so one bad quote never swallows the valid lines after it.
- :func:`decode_lines` turns bytes into lines, refusing UTF-16 and naming the lines that
  are not UTF-8.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from core.errors import InvalidInput

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: str) -> str:
    """``value`` as a cell no spreadsheet runs as a formula (reversible)."""
    return "'" + value if value.startswith((*FORMULA_START, "'")) else value


def unescape_cell(value: str) -> str:
    """The inverse of :func:`escape_cell`: one leading apostrophe dropped."""
    return value[1:] if value.startswith("'") else value


def is_formula(value: str) -> bool:
    """A cell a spreadsheet would run: refused on import unless escaped."""
    return value.startswith(FORMULA_START)


class FileRefused(InvalidInput):
    """The whole file is refused (encoding, header); ``lines`` names where."""

    code = "file_refused"


def decode_lines(data: bytes, *, name: str) -> list[str]:
    """UTF-8 text (a BOM is dropped) as lines with their endings. UTF-16, NUL bytes or
    lines that are not UTF-8 refuse the file, naming up to five such lines."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileRefused(f"{name} is UTF-16 text; save it as UTF-8", lines=[1])
    data = data.removeprefix(codecs.BOM_UTF8)
    lines: list[str] = []
    bad: list[int] = []
    for number, raw in enumerate(data.splitlines(keepends=True), 1):
        if b"\x00" in raw:
            bad.append(number)
            continue
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append(number)
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" …" if len(bad) > 5 else "")
        raise FileRefused(
            f"{name} is not UTF-8 text (line {shown}); save it as UTF-8", lines=bad[:5]
        )
    return lines


@dataclass(frozen=True)
class Record:
    """One CSV record: the line it starts on, and its cells (None: malformed)."""

    line: int
    cells: list[str] | None
    problem: str = ""


class _Feed:
    def __init__(self, lines: Sequence[str], position: int) -> None:
        self.lines = lines
        self.position = position

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.position >= len(self.lines):
            raise StopIteration
        self.position += 1
        return self.lines[self.position - 1]


def records(lines: Sequence[str], *, delimiter: str = ",") -> Iterator[Record]:
    """The records of ``lines`` (the first is line 1), blank lines skipped."""
    feed = _Feed(lines, 0)
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    while True:
        start = feed.position
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problem = str(exc)
            if "end of data" in problem:
                problem = "a quoted cell is never closed"
            yield Record(start + 1, None, f"malformed CSV ({problem})")
            feed.position = start + 1  # go on from the next line
            reader = csv.reader(feed, delimiter=delimiter, strict=True)
            continue
        if cells and any(cell.strip() for cell in cells):
            yield Record(start + 1, cells)
