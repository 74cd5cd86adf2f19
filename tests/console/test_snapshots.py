"""How the attention queue looks at 80x24, with fixed data (no clocks on screen)."""

from __future__ import annotations

from datetime import UTC, datetime

from console.app import make_app
from tests.console.conftest import settle
from tests.factories import make_order, make_product


def test_attention_screen(session, test_settings, queued_jobs, snap_compare):
    product = make_product(session, slug="snap-game", title="Snapshot Quest", price_minor=2499)
    for n, reason in enumerate(["no stock and every provider refused", "payment under review"]):
        make_order(
            session,
            [(product, 1)],
            status="needs_attention",
            number=f"KS-SNAP-{n}",
            email=f"buyer{n}@example.com",
            attention_reason=reason,
            created_at=datetime(2025, 1, 2, 3, 4, tzinfo=UTC),
            updated_at=datetime(2025, 1, 2, 3, 4 + n, tzinfo=UTC),
        )
    app = make_app(test_settings, operator="alice", refresh_seconds=0)

    async def open_attention(pilot):
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)

    assert snap_compare(app, run_before=open_attention, terminal_size=(80, 24))
