"""How each console screen looks at 80x24 and 120x35, with fixed data and a fixed
clock (``now`` injected; times on screen come from the data)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.app import make_app
from core import crypto
from core.models import Alert, AuditEvent, ImportBatch, Key, KeyReport, ProviderOffer, WebhookEvent
from core.services.audit import Actor
from tests.console.conftest import fake_clients, settle
from tests.factories import make_keys, make_order, make_product, order_lines
from tests.support.pilot import until_steady, wait_until

NOW = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)
SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 35)], ids=["80x24", "120x35"])


def snapshot_app(test_settings, **overrides):
    """The console as the snapshots see it: operator alice at a fixed time, provider
    clients that answer balances at once, a queue of 7; ``overrides`` replace any of it."""
    clients = fake_clients(test_settings)
    options = {
        "operator": "alice",
        "refresh_seconds": 0,
        "now": lambda: NOW,
        "provider_clients": lambda: clients,
        "queue_depth": lambda: 7,
        **overrides,
    }
    return make_app(test_settings, **options)


def fixed_key(session, product, line_id, n=1, status="delivered"):
    """A key (delivered by default) with a fixed id (its masked handle is on screen)."""
    key_id = uuid.UUID(int=0x0190_0000_0000_7000_8000_0000_0000_0000 + n)
    version, blob = crypto.get_vault().encrypt(f"SNAP-{n}".encode(), row_id=key_id)
    session.add(
        Key(
            id=key_id,
            product_id=product.id,
            status=status,
            order_line_id=line_id,
            ciphertext=blob,
            key_version=version,
            fingerprint=crypto.get_vault().fingerprint(f"SNAP-{n}"),
        )
    )
    session.commit()
    return key_id


def open_screen(key):
    async def run_before(pilot):
        await settle(pilot)
        if key:
            await pilot.press(key)
        await settle(pilot)
        # let the tables lay out their columns for the rows just added
        await pilot.wait_for_scheduled_animations()
        await until_steady(pilot)

    return run_before


@SIZES
def test_attention_screen(session, test_settings, queued_jobs, snap_compare, size):
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
    order = make_order(
        session, [(product, 1)], status="fulfilled", number="KS-SNAP-R", email="gamer@example.com"
    )
    [line] = order_lines(session, order)
    key_id = fixed_key(session, product, line.id)
    session.add(
        KeyReport(
            id=1,
            key_id=key_id,
            order_id=order.id,
            email=order.email,
            message="Steam says the code was already redeemed",
            created_at=NOW - timedelta(hours=5, minutes=12),
        )
    )
    session.commit()

    assert snap_compare(
        snapshot_app(test_settings), run_before=open_screen("2"), terminal_size=size
    )


@SIZES
def test_dashboard_screen(session, test_settings, queued_jobs, snap_compare, size):
    product = make_product(session, slug="dash-game", title="Dashboard Quest", price_minor=1500)
    make_product(session, slug="rare-game", title="Rare Find", low_stock_threshold=3)
    for n, minutes in enumerate([10, 50, 300]):
        make_order(
            session,
            [(product, 1)],
            status="fulfilled",
            number=f"KS-DASH-{n}",
            paid_at=NOW - timedelta(minutes=minutes),
        )
    make_order(session, [(product, 2)], status="needs_attention", number="KS-DASH-A")
    session.add(Alert(kind="provider_down", subject="provider:kinguin", message="kinguin is down"))
    session.commit()

    assert snap_compare(
        snapshot_app(test_settings), run_before=open_screen(None), terminal_size=size
    )


@SIZES
def test_inventory_screen(session, test_settings, queued_jobs, snap_compare, size):
    plenty = make_product(session, slug="plenty-game", title="Plenty Quest", low_stock_threshold=2)
    scarce = make_product(session, slug="scarce-game", title="Scarce Quest", low_stock_threshold=5)
    for n, product in enumerate([plenty, plenty, plenty, scarce], start=10):
        fixed_key(session, product, None, n=n, status="available")
    session.add(
        ImportBatch(
            file_name="keys-march.csv",
            operator="bob",
            status="completed",
            lines_read=10,
            imported=3,
            started_at=NOW - timedelta(days=1),
        )
    )
    session.commit()

    assert snap_compare(
        snapshot_app(test_settings), run_before=open_screen("3"), terminal_size=size
    )


@SIZES
def test_orders_screen(session, test_settings, queued_jobs, snap_compare, size):
    product = make_product(session, slug="order-game", title="Order Quest", price_minor=1999)
    for n, status in enumerate(["fulfilled", "paid", "needs_attention"]):
        make_order(
            session,
            [(product, 1)],
            status=status,
            number=f"KS-ORD-{n}",
            email=f"buyer{n}@example.com",
            created_at=datetime(2025, 1, 2, 9, n, tzinfo=UTC),
        )

    opened = open_screen("4")

    async def run_before(pilot):
        await opened(pilot)
        # the newest order's timeline loads when its row is highlighted: wait for it
        timeline = pilot.app.screen.query_one("#timeline")
        await wait_until(pilot, lambda: "created (buyer2@example.com)" in str(timeline.render()))
        await until_steady(pilot)

    assert snap_compare(snapshot_app(test_settings), run_before=run_before, terminal_size=size)


@SIZES
def test_alerts_screen(session, test_settings, queued_jobs, snap_compare, size):
    product = make_product(session, slug="alert-game", title="Alert Quest")
    session.add(
        Alert(
            kind="low_stock",
            subject=f"product:{product.id}",
            message="Alert Quest (alert-game): 1 keys left, threshold 5",
            created_at=NOW - timedelta(hours=1),
        )
    )
    session.add(
        Alert(
            kind="needs_attention",
            subject="order:KS-ALERT-1",
            severity="error",
            message="0 of 1 keys delivered. kinguin: out of stock",
            created_at=NOW - timedelta(hours=2),
        )
    )
    session.commit()

    assert snap_compare(
        snapshot_app(test_settings), run_before=open_screen("6"), terminal_size=size
    )


@SIZES
def test_webhooks_screen(session, test_settings, queued_jobs, snap_compare, size):
    for n, (authenticated, outcome) in enumerate(
        [(True, "order KS-HOOK-1 paid"), (False, "rejected: bad signature")]
    ):
        session.add(
            WebhookEvent(
                source="stripe",
                event_id=f"evt_snap_{n}",
                event_type="checkout.session.completed",
                raw_body=b'{"id": "evt_snap", "type": "checkout.session.completed"}',
                authenticated=authenticated,
                received_at=datetime(2025, 1, 2, 11, n, tzinfo=UTC),
                processed_at=datetime(2025, 1, 2, 11, n, 5, tzinfo=UTC),
                outcome=outcome,
            )
        )
    session.commit()
    opened = open_screen("7")

    async def run_before(pilot):
        await opened(pilot)
        body = pilot.app.screen.query_one("#webhook-body")
        await wait_until(pilot, lambda: "outcome: rejected" in str(body.render()))
        await until_steady(pilot)

    assert snap_compare(snapshot_app(test_settings), run_before=run_before, terminal_size=size)


@SIZES
def test_providers_screen(session, test_settings, queued_jobs, snap_compare, size):
    opened = open_screen("9")

    async def run_before(pilot):
        await opened(pilot)
        # balances are asked in a worker of their own: wait until they are shown
        detail = pilot.app.screen.query_one("#provider-detail")
        await wait_until(pilot, lambda: "balance check at" in str(detail.render()))
        # the table re-sizes its columns for the rows the balances bring: let that finish
        await settle(pilot)
        await pilot.wait_for_scheduled_animations()
        await until_steady(pilot)

    assert snap_compare(snapshot_app(test_settings), run_before=run_before, terminal_size=size)


@SIZES
def test_audit_screen(session, test_settings, queued_jobs, snap_compare, size):
    for n, (actor, action, object_type, object_id, data) in enumerate(
        [
            (Actor.system(), "order.transition", "order", "KS-AUD-1", {"to": "paid"}),
            (
                Actor.operator("bob", ip="203.0.113.9", user_agent="keyshop-console"),
                "key.reveal",
                "key",
                "0190…0001",
                {"first": False, "operator": True, "order": "KS-AUD-1"},
            ),
        ]
    ):
        session.add(
            AuditEvent(
                actor_type=actor.type,
                actor_id=actor.id,
                action=action,
                object_type=object_type,
                object_id=object_id,
                ip=actor.ip,
                user_agent=actor.user_agent,
                data=data,
                created_at=datetime(2025, 1, 2, 10, n, tzinfo=UTC),
            )
        )
    session.commit()
    opened = open_screen("5")

    async def run_before(pilot):
        await opened(pilot)
        detail = pilot.app.screen.query_one("#audit-detail")
        await wait_until(pilot, lambda: "203.0.113.9" in str(detail.render()))
        await until_steady(pilot)

    assert snap_compare(snapshot_app(test_settings), run_before=run_before, terminal_size=size)


@SIZES
def test_offers_screen(session, test_settings, queued_jobs, snap_compare, size):
    make_product(session, slug="starfall-vanguard-steam-global", title="Starfall Vanguard")
    for n, external_id in enumerate(["cw-5f0c3a9e-2b7d-4e61-9c8a-eu", "cw-77"]):
        session.add(
            ProviderOffer(
                provider="codeswholesale",
                external_id=external_id,
                name="Starfall Vanguard",
                title="Starfall Vanguard",
                platform="Steam",
                region="GLOBAL",
                cost_minor=1240 + n,
                currency="EUR",
                stock=4,
            )
        )
    session.commit()
    opened = open_screen("f2")

    async def run_before(pilot):
        await opened(pilot)
        detail = pilot.app.screen.query_one("#offer-detail")
        await wait_until(pilot, lambda: "Closest" in str(detail.render()))
        await until_steady(pilot)

    assert snap_compare(snapshot_app(test_settings), run_before=run_before, terminal_size=size)


@SIZES
def test_workers_screen(session, test_settings, queued_jobs, snap_compare, size):
    from core.jobs import FailedTask, QueueHealth, WorkerSeen

    health = QueueHealth(
        depth=12,
        oldest_seconds=754,
        workers=[WorkerSeen("web-1:41", 3, True), WorkerSeen("web-2:77", 400, False)],
        failed=[
            FailedTask(
                id="t-1",
                job="tasks.jobs.send_order_email",
                args=(42, "refund"),
                error="SMTPServerDisconnected: Connection unexpectedly closed",
                failed_at=(NOW - timedelta(minutes=30)).timestamp(),
            )
        ],
    )
    app = snapshot_app(test_settings, provider_clients=lambda: {}, queue_health=lambda: health)
    assert snap_compare(app, run_before=open_screen("f9"), terminal_size=size)


@SIZES
def test_customer_screen(session, test_settings, queued_jobs, snap_compare, size):
    from core.models import Customer

    customer = Customer(
        email="buyer@example.com",
        display_name="Alice Buyer",
        created_at=datetime(2024, 6, 1, 8, 0, tzinfo=UTC),
        verified_at=datetime(2024, 6, 1, 8, 5, tzinfo=UTC),
    )
    session.add(customer)
    session.commit()
    product = make_product(session, slug="snap-game", title="Snapshot Quest", price_minor=2499)
    order = make_order(
        session,
        [(product, 1)],
        status="fulfilled",
        number="KS-CUST-1",
        email="buyer@example.com",
        customer_id=customer.id,
        created_at=datetime(2025, 1, 2, 9, 0, tzinfo=UTC),
    )
    [line] = order_lines(session, order)
    fixed_key(session, product, line.id)
    opened = open_screen("4")

    async def run_before(pilot):
        await opened(pilot)
        pilot.app.open_customer(order.id)
        await settle(pilot)
        summary = pilot.app.screen.query_one("#customer-summary")
        await wait_until(pilot, lambda: "1 order(s)" in str(summary.render()))
        await until_steady(pilot)

    assert snap_compare(snapshot_app(test_settings), run_before=run_before, terminal_size=size)


# -- the catalogue's screens, with data that carries no time or random code of its own -------


@SIZES
def test_products_screen(session, test_settings, queued_jobs, snap_compare, size):
    product = make_product(
        session, slug="starfall-vanguard-steam-global", title="Starfall Vanguard", price_minor=2499
    )
    make_keys(session, product, 3)
    make_product(session, slug="comet-rally-steam-eu", title="Comet Rally", price_minor=999)
    assert snap_compare(
        snapshot_app(test_settings), run_before=open_screen("0"), terminal_size=size
    )


@SIZES
def test_pricing_screen(session, test_settings, queued_jobs, snap_compare, size):
    make_product(session, slug="snap-game", title="Snapshot Quest", price_minor=2499)
    assert snap_compare(
        snapshot_app(test_settings), run_before=open_screen("f3"), terminal_size=size
    )


@SIZES
def test_legal_screen(session, test_settings, queued_jobs, snap_compare, size):
    assert snap_compare(
        snapshot_app(test_settings), run_before=open_screen("f6"), terminal_size=size
    )


@SIZES
def test_promos_screen(session, test_settings, queued_jobs, snap_compare, size):
    from core.services.operator.promos import PromoInput, create_promo

    create_promo(
        data=PromoInput(code="SNAP25", percent="25", max_uses=100),
        actor=Actor.operator("alice"),
    )
    assert snap_compare(
        snapshot_app(test_settings), run_before=open_screen("f8"), terminal_size=size
    )


@SIZES
def test_credit_screen(session, test_settings, queued_jobs, snap_compare, size):
    from core.models import Customer
    from core.services.operator.credit import adjust_customer_credit

    session.add(Customer(email="buyer@example.com", display_name="Alice Buyer"))
    session.commit()
    adjust_customer_credit(
        customer="buyer@example.com",
        amount_minor=2500,
        currency="EUR",
        actor=Actor.operator("alice"),
        note="goodwill",
        key="snap",
    )  # a gift card's code would differ each run: its last characters are on screen
    assert snap_compare(
        snapshot_app(test_settings), run_before=open_screen("f7"), terminal_size=size
    )


@SIZES
def test_outbox_screen(session, test_settings, queued_jobs, snap_compare, size):
    # the title names the outbox folder: one whose name is the same on every run
    folder = Path(tempfile.gettempdir()) / "keyshop-snapshot-var"
    shutil.rmtree(folder, ignore_errors=True)
    settings = test_settings.model_copy(update={"var_dir": folder})
    app = snapshot_app(settings, provider_clients=lambda: {})
    assert snap_compare(app, run_before=open_screen("8"), terminal_size=size)
