"""The providers screen: health, balance, last sync and offer counts per provider, the
offers table, and starting a sync (confirmed, audited, queued, followed to its end)."""

from __future__ import annotations

from datetime import timedelta

from textual.widgets import DataTable

from console.app import make_app
from console.screens.modals import ConfirmScreen
from core.models import Alert, ProviderOffer, ProviderPurchase, utcnow
from core.services.provider_sync import sync_offers
from tests.console.conftest import (
    OPERATOR,
    FakeClient,
    audit,
    keep_notes,
    run,
    settle,
    show,
)
from tests.factories import make_order, make_product, order_lines


def cells(pilot, table_id):
    table = pilot.app.screen.query_one(table_id, DataTable)
    return {
        str(table.coordinate_to_cell_key((i, 0)).row_key.value): [
            str(c) for c in table.get_row_at(i)
        ]
        for i in range(table.row_count)
    }


def add_offers(session, provider, product, *, mapped, unmapped, synced_at):
    for n in range(mapped + unmapped):
        session.add(
            ProviderOffer(
                provider=provider,
                external_id=f"{provider}-{n}",
                name=f"Offer {n}",
                product_id=product.id if n < mapped else None,
                cost_minor=500 + n,
                stock=0 if n == 0 else 10,
                last_synced_at=synced_at,
            )
        )
    session.commit()


def providers_app(test_settings, clients, **kw):
    return keep_notes(
        make_app(
            test_settings,
            operator=OPERATOR,
            refresh_seconds=0,
            provider_clients=lambda: clients,
            **kw,
        )
    )


def test_health_balance_sync_and_offers(session, test_settings, queued_jobs):
    product = make_product(session, title="Mapped Game")
    synced = utcnow() - timedelta(minutes=7)
    add_offers(session, "kinguin", product, mapped=3, unmapped=2, synced_at=synced)
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    session.add(
        ProviderPurchase(
            order_line_id=line.id,
            provider="codeswholesale",
            reference="ref-1",
            quantity=1,
            status="failed",
            error="out of stock at the provider",
        )
    )
    session.add(
        Alert(
            kind="provider_down",
            subject="provider:codeswholesale",
            message="codeswholesale did not answer a balance check",
        )
    )
    session.commit()
    clients = {
        "codeswholesale": FakeClient("codeswholesale", error="HTTP 503"),
        "kinguin": FakeClient("kinguin", amount=250075),
    }
    app = providers_app(test_settings, clients)

    async def scenario(pilot):
        await show(pilot, "9")
        rows = cells(pilot, "#providers-table")
        cw, kg = rows["codeswholesale"], rows["kinguin"]
        assert cw[1].startswith("failing") and "failed" in cw[2] and "HTTP 503" in cw[2]
        assert kg[1].startswith("ok") and kg[2] == "2,500.75 EUR"
        assert kg[3] == synced.strftime("%Y-%m-%d %H:%M")
        assert kg[4:] == ["3", "2", "2"]  # mapped, unmapped, mapped with stock
        table = pilot.app.screen.query_one("#providers-table", DataTable)
        table.move_cursor(row=table.get_row_index("codeswholesale"))
        await settle(pilot)
        detail = str(pilot.app.screen.query_one("#provider-detail").render())
        assert "last error" in detail and "balance check" in detail
        table.move_cursor(row=table.get_row_index("kinguin"))
        await settle(pilot)
        offers = cells(pilot, "#offers-table")
        assert len(offers) == 5
        assert sum(1 for r in offers.values() if r[2] == "unmapped") == 2

    run(app, scenario)


def test_a_provider_that_does_not_answer_in_time_is_shown_not_raised(
    session, test_settings, queued_jobs
):
    slow = FakeClient("kinguin", hang=True)
    clients = {"codeswholesale": FakeClient("codeswholesale"), "kinguin": slow}
    # long enough for the client that answers at once to do so on a loaded machine
    app = providers_app(test_settings, clients, balance_timeout=3)

    async def scenario(pilot):
        await show(pilot, "9")
        rows = cells(pilot, "#providers-table")
        assert rows["kinguin"][2] == "failed: no answer in 3 s"
        assert rows["codeswholesale"][2] == "1,234.56 EUR"

    try:
        run(app, scenario)
    finally:
        slow.released.set()


def test_the_offers_table_pages_lazily(session, test_settings, queued_jobs):
    product = make_product(session)
    add_offers(session, "kinguin", product, mapped=150, unmapped=80, synced_at=utcnow())
    app = providers_app(test_settings, {})

    async def scenario(pilot):
        await show(pilot, "9")
        screen = pilot.app.screen
        providers = screen.query_one("#providers-table", DataTable)
        providers.move_cursor(row=providers.get_row_index("kinguin"))
        await settle(pilot)
        offers = screen.query_one("#offers-table", DataTable)
        assert offers.row_count == 100
        offers.focus()
        offers.move_cursor(row=99)
        await settle(pilot)
        assert offers.row_count == 200
        offers.move_cursor(row=199)
        await settle(pilot)
        assert offers.row_count == 230

    run(app, scenario)


def test_start_a_sync(session, test_settings, queued_jobs, providers, sim_server):
    product = make_product(session, title="Synced Game", platform="Steam", region="GLOBAL")
    sim_server.add_product("kinguin", name="Synced Game", price="4.10", stock=7)
    app = providers_app(test_settings, providers)

    async def scenario(pilot):
        await show(pilot, "9")
        table = pilot.app.screen.query_one("#providers-table", DataTable)
        table.move_cursor(row=table.get_row_index("kinguin"))
        await pilot.press("s")
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert ("sync_provider", ("kinguin",), {}) in queued_jobs
        assert cells(pilot, "#providers-table")["kinguin"][3].endswith("(syncing)")
        # what the worker does with the job
        sync_offers(client=providers["kinguin"])
        await pilot.press("f5")
        await settle(pilot)
        row = cells(pilot, "#providers-table")["kinguin"]
        assert not row[3].endswith("(syncing)") and row[4] == "1"

    run(app, scenario)
    [event] = audit(session, "provider.sync")
    assert event.actor_id == OPERATOR and event.object_id == "kinguin"
    assert any("kinguin synced at" in msg and "1 mapped" in msg for _, msg in app.notes)
    assert product.id is not None


def test_backing_out_of_a_sync_queues_nothing(session, console_app, queued_jobs):
    async def scenario(pilot):
        await show(pilot, "9")
        await pilot.press("s", "n")
        await settle(pilot)

    run(console_app, scenario)
    assert [j for j in queued_jobs if j[0] == "sync_provider"] == []
    assert audit(session, "provider.sync") == []


def test_an_unmapped_offer_shows_the_closest_products(session, test_settings, queued_jobs):
    """Kinguin's "... Steam CD Key" names do not map by name alone; an offer left
    unmapped shows the products closest to its title, platform and region."""
    near = make_product(session, title="Starfall Vanguard", platform="Steam", region="EU")
    make_product(session, title="Copperline Express", platform="Steam", region="GLOBAL")
    session.add(
        ProviderOffer(
            provider="kinguin",
            external_id="kg-star",
            name="Starfall Vanguard Deluxe Steam CD Key",
            title="Starfall Vanguard Deluxe",
            platform="Steam",
            region="REGION FREE",
            cost_minor=900,
            stock=3,
            last_synced_at=utcnow(),
        )
    )
    session.commit()
    app = providers_app(
        test_settings,
        {"codeswholesale": FakeClient("codeswholesale"), "kinguin": FakeClient("kinguin")},
    )

    async def scenario(pilot):
        await show(pilot, "9")
        table = pilot.app.screen.query_one("#providers-table", DataTable)
        table.move_cursor(row=table.get_row_index("kinguin"))
        await settle(pilot)
        offers = pilot.app.screen.query_one("#offers-table", DataTable)
        offers.focus()
        offers.move_cursor(row=0)
        await settle(pilot)
        text = str(pilot.app.screen.query_one("#offer-detail").render())
        assert "unmapped. Closest: Starfall Vanguard (Steam, EU)" in text, text

    run(app, scenario)
    assert near.id


def test_health_is_what_the_most_recent_call_says_with_its_time(session, test_settings):
    """Issue #17 defect 8: an old provider_down alert does not make a provider "down"
    next to a recent success, and a failed balance check is not "ok"."""
    product = make_product(session)
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    now = utcnow()
    session.add(
        Alert(
            kind="provider_down",
            subject="provider:kinguin",
            message="kinguin did not answer",
            created_at=now - timedelta(hours=2),
        )
    )
    session.add(
        ProviderPurchase(
            order_line_id=line.id,
            provider="kinguin",
            reference="ref-ok",
            quantity=1,
            status="completed",
            updated_at=now - timedelta(minutes=5),
        )
    )
    add_offers(
        session,
        "codeswholesale",
        product,
        mapped=1,
        unmapped=0,
        synced_at=now - timedelta(minutes=3),
    )
    checked = now.replace(microsecond=0)
    clients = {
        "codeswholesale": FakeClient("codeswholesale", error="HTTP 401 bad token"),
        "kinguin": FakeClient("kinguin"),
    }
    app = providers_app(test_settings, clients, now=lambda: checked)

    async def scenario(pilot):
        await show(pilot, "9")
        rows = cells(pilot, "#providers-table")
        assert rows["kinguin"][1] == f"ok {checked:%H:%M}"
        assert rows["codeswholesale"][1] == f"failing {checked:%H:%M}"
        table = pilot.app.screen.query_one("#providers-table", DataTable)
        table.move_cursor(row=table.get_row_index("codeswholesale"))
        await settle(pilot)
        detail = str(pilot.app.screen.query_one("#provider-detail").render())
        assert "failing, from the last call: balance check" in detail
        assert "failed: codeswholesale: HTTP 401 bad token" in detail

    run(app, scenario)


def test_provider_offer_ids_are_whole(session, test_settings, queued_jobs):
    """Issue #17 defect 12: provider offer ids were cut to 14 characters; a wide
    terminal shows them whole and the detail line shows the highlighted one at 80."""
    long_id = "kg-2f1e0d9c-8b7a-4655-9e4d-3c2b1a0f9e8d-global"
    for suffix in ("", "-2"):
        session.add(
            ProviderOffer(
                provider="kinguin",
                external_id=long_id + suffix,
                name="Starfall Vanguard",
                title="Starfall Vanguard",
                cost_minor=999,
                currency="EUR",
                stock=1,
            )
        )
    session.commit()
    clients = {"codeswholesale": FakeClient("codeswholesale"), "kinguin": FakeClient("kinguin")}

    for size in ((160, 35), (80, 24)):
        app = providers_app(test_settings, clients)

        async def scenario(pilot, size=size):
            await show(pilot, "9")
            table = pilot.app.screen.query_one("#providers-table", DataTable)
            table.move_cursor(row=table.get_row_index("kinguin"))
            await settle(pilot)
            offers = pilot.app.screen.query_one("#offers-table", DataTable)
            if size[0] == 160:
                ids = {str(offers.get_row_at(i)[0]) for i in range(offers.row_count)}
                assert ids == {long_id, long_id + "-2"}
            else:
                assert sum(c.get_render_width(offers) for c in offers.columns.values()) <= 80
                offers.focus()
                offers.move_cursor(row=1)
                await settle(pilot)
                detail = str(pilot.app.screen.query_one("#offer-detail").render())
                assert long_id in detail

        run(app, scenario, size=size)
