"""The order page's live-status watchers cannot be flooded (issue 13, item 2): one per
tab and order, bounded per web worker, ended when the tab disconnects. Driven with a
clock and a sleep the test controls (no waiting): each "second" is a step the test
releases."""

from __future__ import annotations

import asyncio

from web.state.live import MAX_WATCHERS, WATCHERS, Watchers, client_connected, run_watcher


class Ticks:
    """A sleep that returns only when the test releases a tick, and a clock it moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.released = asyncio.Event()
        self.waiting = 0

    async def sleep(self, seconds: float) -> None:
        self.waiting += 1
        await self.released.wait()  # the event of this tick (tick() puts a new one first)
        self.waiting -= 1
        self.now += seconds

    def clock(self) -> float:
        return self.now

    async def tick(self) -> None:
        """Release everyone waiting for one tick, and let them run to their next wait."""
        released, self.released = self.released, asyncio.Event()
        released.set()
        for _ in range(20):
            await asyncio.sleep(0)


def watcher(registry: Watchers, ticks: Ticks, key=("tab-1", "KS-1"), generation=1, **kw):
    reads: list[int] = kw.pop("reads", [])

    async def refresh() -> bool:
        reads.append(1)
        return kw.get("settled", lambda: False)()

    async def is_current() -> bool:
        return kw.get("current", lambda: True)()

    return run_watcher(
        key=key,
        generation=generation,
        is_current=is_current,
        refresh=refresh,
        connected=kw.get("connected", lambda: True),
        registry=registry,
        sleep=ticks.sleep,
        clock=ticks.clock,
    )


def test_six_hundred_calls_for_one_tab_and_order_start_one_watcher():
    async def scenario() -> None:
        registry, ticks, reads = Watchers(), Ticks(), []
        tasks = [asyncio.create_task(watcher(registry, ticks, reads=reads)) for _ in range(600)]
        for _ in range(5):
            await asyncio.sleep(0)
        refused = [t for t in tasks if t.done()]
        assert len(refused) == 599 and {t.result() for t in refused} == {"refused"}
        assert len(registry) == 1
        await ticks.tick()
        await ticks.tick()
        assert len(reads) == 2  # one read a second, not 600
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert len(registry) == 0

    asyncio.run(scenario())


def test_a_newer_page_load_takes_the_slot_and_the_old_loop_ends():
    async def scenario() -> None:
        registry, ticks = Watchers(), Ticks()
        current = {"generation": 1}
        old = asyncio.create_task(
            watcher(registry, ticks, generation=1, current=lambda: current["generation"] == 1)
        )
        await asyncio.sleep(0)
        current["generation"] = 2
        new = asyncio.create_task(
            watcher(registry, ticks, generation=2, current=lambda: current["generation"] == 2)
        )
        await asyncio.sleep(0)
        assert not new.done()  # it took over
        stale = await watcher(registry, ticks, generation=1)  # an old page's call again
        assert stale == "refused"
        await ticks.tick()
        assert old.done() and old.result() == "replaced"
        assert len(registry) == 1 and not new.done()
        new.cancel()
        await asyncio.gather(new, return_exceptions=True)

    asyncio.run(scenario())


def test_watchers_are_bounded_per_worker():
    async def scenario() -> None:
        registry, ticks = Watchers(limit=3), Ticks()
        tasks = [
            asyncio.create_task(watcher(registry, ticks, key=(f"tab-{n}", "KS-1")))
            for n in range(5)
        ]
        await asyncio.sleep(0)
        assert len(registry) == 3
        assert [t.result() for t in tasks if t.done()] == ["refused", "refused"]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
    assert MAX_WATCHERS <= 500 and WATCHERS.limit == MAX_WATCHERS


def test_a_disconnected_tab_stops_its_watcher_within_a_tick():
    async def scenario() -> None:
        registry, ticks, reads = Watchers(), Ticks(), []
        socket = {"open": True}
        task = asyncio.create_task(
            watcher(registry, ticks, reads=reads, connected=lambda: socket["open"])
        )
        await asyncio.sleep(0)
        await ticks.tick()
        assert reads == [1] and not task.done()
        socket["open"] = False  # the browser tab closed
        await ticks.tick()
        assert task.done() and task.result() == "disconnected"
        assert reads == [1] and len(registry) == 0

    asyncio.run(scenario())


def test_a_settled_order_and_the_time_limit_end_the_watcher():
    async def scenario() -> None:
        registry, ticks = Watchers(), Ticks()
        settled = asyncio.create_task(watcher(registry, ticks, settled=lambda: True))
        await asyncio.sleep(0)
        await ticks.tick()
        assert settled.result() == "settled" and len(registry) == 0

    asyncio.run(scenario())


def test_client_connected_asks_the_running_apps_token_manager(monkeypatch):
    import sys
    import types

    assert client_connected("anything")  # no running app: nothing to lose
    manager = types.SimpleNamespace(token_to_socket={"tab-1": object()})
    app = types.SimpleNamespace(event_namespace=types.SimpleNamespace(_token_manager=manager))
    monkeypatch.setitem(sys.modules, "web.web", types.SimpleNamespace(app=app))
    assert client_connected("tab-1") and not client_connected("tab-2")


# -- the real handler ----------------------------------------------------------------------


class Entered:
    """What Reflex hands a background handler: the state, entered with ``async with``."""

    def __init__(self, state) -> None:
        object.__setattr__(self, "_state", state)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> bool:
        return False

    def __getattr__(self, name: str):
        return getattr(self._state, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._state, name, value)


def test_order_state_watch_is_one_per_tab_and_ends_on_disconnect(session, monkeypatch):
    from core.services.notifications import order_access_token
    from tests.factories import make_keys, make_order, make_product
    from tests.support.states import arg_of, call, state_for
    from web.state import live, order
    from web.state.order import OrderState

    product = make_product(session)
    make_keys(session, product, 1)
    paid = make_order(session, [(product, 1)], status="paid")
    state = state_for(OrderState, f"/orders/{paid.number}?token={order_access_token(paid.number)}")
    [spec] = call(state.load)
    generation = arg_of(spec, "generation")
    registry = Watchers()
    monkeypatch.setattr(live, "WATCHERS", registry)
    monkeypatch.setattr(live, "INTERVAL_SECONDS", 0)
    ticks = {"n": 0}
    opened = asyncio.Event()

    def connected(token: str) -> bool:
        assert token == "test-client-token"
        ticks["n"] += 1
        return not opened.is_set()

    monkeypatch.setattr(order, "client_connected", connected)
    handler = OrderState.watch.fn

    async def scenario() -> None:
        # a forged or stale generation starts nothing
        await handler(Entered(state), generation + 7)
        assert len(registry) == 0 and not state.live
        first = asyncio.create_task(handler(Entered(state), generation))
        for _ in range(50):
            await asyncio.sleep(0)
            if len(registry):
                break
        assert len(registry) == 1 and state.live
        # the same tab and order again: refused at once
        await asyncio.wait_for(handler(Entered(state), generation), timeout=5)
        assert len(registry) == 1 and not first.done() and state.live
        opened.set()  # the tab goes away
        await asyncio.wait_for(first, timeout=30)
        assert len(registry) == 0 and not state.live

    asyncio.run(scenario())
