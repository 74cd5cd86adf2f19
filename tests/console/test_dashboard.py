"""The dashboard's queue depth (through the injected callable), provider health and
balances, and faulty-key reports; a queue or provider that fails is shown, not raised."""

from __future__ import annotations

from console.app import make_app
from core.models import Alert
from tests.console.conftest import OPERATOR, FakeClient, run, settle


def panel(pilot, name):
    return str(pilot.app.screen.query_one(f"#dash-{name}").render())


def test_queue_depth_and_provider_balances(session, console_app):
    session.add(Alert(kind="provider_down", subject="provider:kinguin", message="kinguin is down"))
    session.commit()

    async def scenario(pilot):
        await settle(pilot)
        assert "Queue:               3 waiting" in panel(pilot, "fulfilment")
        providers = panel(pilot, "alerts")
        assert "1 open" in providers
        assert "codeswholesale ok 1,234.56 EUR" in providers
        assert "kinguin        alert 1,234.56 EUR" in providers

    run(console_app, scenario)


def test_a_failing_queue_or_provider_is_shown_not_raised(session, test_settings, queued_jobs):
    def broken_queue() -> int:
        raise ConnectionError("redis is down")

    clients = {
        "codeswholesale": FakeClient("codeswholesale", error="HTTP 500"),
        "kinguin": FakeClient("kinguin"),
    }
    app = make_app(
        test_settings,
        operator=OPERATOR,
        refresh_seconds=0,
        queue_depth=broken_queue,
        provider_clients=lambda: clients,
    )

    async def scenario(pilot):
        await settle(pilot)
        assert "unreadable (ConnectionError)" in panel(pilot, "fulfilment")
        assert "codeswholesale ok balance failed" in panel(pilot, "alerts")

    run(app, scenario)


def test_without_a_queue_the_depth_says_so(session, test_settings, queued_jobs):
    app = make_app(test_settings, operator=OPERATOR, refresh_seconds=0, provider_clients=dict)

    async def scenario(pilot):
        await settle(pilot)
        assert "Queue:               not connected" in panel(pilot, "fulfilment")

    run(app, scenario)


def test_the_dashboard_says_when_no_worker_was_seen(session, test_settings, queued_jobs):
    from datetime import timedelta

    from core.models import utcnow

    now = utcnow()
    beats = {"last": (now - timedelta(seconds=test_settings.worker_stale_seconds + 15)).timestamp()}
    app = make_app(
        test_settings,
        operator=OPERATOR,
        refresh_seconds=0,
        provider_clients=dict,
        queue_depth=lambda: 0,
        worker_heartbeat=lambda: beats["last"],
        now=lambda: now,
    )

    async def scenario(pilot):
        await settle(pilot)
        assert f"no worker seen for {test_settings.worker_stale_seconds + 15} s" in panel(
            pilot, "fulfilment"
        )
        beats["last"] = (now - timedelta(seconds=3)).timestamp()
        await pilot.press("f5")
        await settle(pilot)
        assert "Workers:             seen 3 s ago" in panel(pilot, "fulfilment")
        beats["last"] = None
        await pilot.press("f5")
        await settle(pilot)
        assert "no worker seen" in panel(pilot, "fulfilment")

    run(app, scenario)
