"""Row locks have one home (STYLE: "Row-locking queries live together in one module"):
no module of core/ but core/services/locking.py takes one."""

from __future__ import annotations

import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
LOCKING = CORE / "services" / "locking.py"


def test_no_row_lock_is_taken_outside_locking_py():
    taking = re.compile(r"with_for_update|FOR (NO KEY )?UPDATE|FOR SHARE|FOR KEY SHARE")
    found = []
    for path in sorted(CORE.rglob("*.py")):
        if path == LOCKING:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if taking.search(code) and "``" not in code:  # docstrings quote the SQL
                found.append(f"{path.relative_to(CORE.parent)}:{number}: {line.strip()}")
    assert not found, "row locks outside core/services/locking.py:\n" + "\n".join(found)
