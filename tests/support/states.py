"""Driving the storefront's Reflex states in tests: a state tree as one browser tab
has it, after the shop's front door (web/api/security.py), handlers called like Reflex
calls them, and readers for what a handler sends back to the browser."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import reflex as rx
from reflex.istate.data import RouterData
from reflex_base.event import EventSpec

from web.api.security import SESSION_COOKIE, SecurityMiddleware

S = TypeVar("S", bound=rx.State)
ORIGIN = "http://127.0.0.1:3000"


# -- driving states ----------------------------------------------------------------------


def browser_headers(
    address: str, cookies: dict[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    """What Reflex sees of a browser tab that opened ``address`` with ``cookies``, after
    the shop's front door (web/api/security.py, the real code): a link's ``?token=``
    became an HttpOnly cookie and the page address lost it, and the secret cookies reach
    the websocket only sealed. Returns (page address, websocket request headers)."""
    jar = dict(cookies or {})
    split = urlsplit(address)
    handoff = SecurityMiddleware._handoff(split.path, split.query)
    if handoff is not None:  # the browser stores the cookie and follows the 303
        for name, value in handoff.raw_headers:  # type: ignore[attr-defined]
            if name == b"set-cookie":
                cookie_name, _, rest = value.decode().partition("=")
                jar[cookie_name] = rest.split(";", 1)[0]
            elif name == b"location":
                address = value.decode()
    headers = {"origin": ORIGIN, "host": "127.0.0.1:3000", "user-agent": "pytest"}
    if jar:
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    scope = {"type": "websocket", "path": "/_event/", "headers": []}
    sealed = SecurityMiddleware._sealed(scope, headers)
    return address, {k.decode(): v.decode() for k, v in sealed["headers"]}


def session_cookie(token: str) -> dict[str, str]:
    return {SESSION_COOKIE: token}


def state_for(
    cls: type[S],
    address: str = "/",
    *,
    ip: str = "203.0.113.7",
    cookies: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> S:
    """A fresh state tree, as for one browser tab that opened ``address`` (with
    ``cookies`` and extra request ``headers`` such as ``accept-language``); returns the
    ``cls`` substate."""
    root = rx.State(_reflex_internal_init=True)
    address, sent = browser_headers(address, cookies)
    headers = {**sent, **(headers or {})}
    split = urlsplit(address)
    root.router = RouterData.from_router_data(
        {
            "pathname": split.path,
            "asPath": address,
            "query": {k: v[0] for k, v in parse_qs(split.query).items()},
            "headers": headers,
            "ip": ip,
            "sid": "test-sid",
            "token": "test-client-token",
        }
    )
    return root.get_substate(cls.get_full_name().split("."))  # type: ignore[return-value]


def call(handler: Any, *args: Any) -> list[EventSpec]:
    """Run one handler like Reflex does (plain, async, or an async generator that yields
    updates) and return every event it sent back to the browser, in order."""
    result = handler(*args)

    async def drive() -> list[Any]:
        if inspect.isasyncgen(result):
            return [item async for item in result]
        if inspect.isawaitable(result):
            return [await result]
        return [result]

    out: list[EventSpec] = []
    for item in asyncio.run(drive()):
        out.extend(item if isinstance(item, list) else [item] if item is not None else [])
    return out


def arg_of(spec: EventSpec, name: str) -> Any:
    return next(value for key, value in spec.args if str(key) == name)._var_value


def redirect_of(specs: list[EventSpec]) -> str | None:
    paths = [arg_of(s, "path") for s in specs if s.handler.fn.__qualname__ == "_redirect"]
    assert len(paths) <= 1
    return paths[0] if paths else None


def scripts_of(specs: list[EventSpec]) -> list[str]:
    return [
        arg_of(s, "javascript_code") for s in specs if s.handler.fn.__qualname__ == "_call_script"
    ]


def toasts_of(specs: list[EventSpec]) -> list[tuple[str, str]]:
    """(kind, rendered call) of every toast."""
    out = []
    for spec in specs:
        if spec.handler.fn.__qualname__ == "_call_function":
            js = str(next(value for key, value in spec.args if str(key) == "function"))
            kind = js.split('?.["', 1)[1].split('"', 1)[0] if "__toast" in js else ""
            out.append((kind, js))
    return out


def tree(state: rx.State) -> Iterator[rx.State]:
    root = state
    while root.parent_state is not None:
        root = root.parent_state
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.substates.values())


def root_of(state: rx.State) -> rx.State:
    return next(tree(state))


def handed_off(specs: list[EventSpec]) -> str | None:
    """The session token a handler hands to the browser's cookie (the script that posts
    it to /api/session and then loads /account), or None."""
    found = [js for js in scripts_of(specs) if js.startswith('fetch("/api/session",')]
    assert len(found) <= 1
    if not found:
        return None
    assert 'window.location.assign(r.ok?"/account"' in found[0]
    return json.loads(found[0].split("{token:", 1)[1].split("})", 1)[0])


def loaded(specs: list[EventSpec]) -> str | None:
    """The address of a full page load a handler asks for, or None."""
    urls = [
        json.loads(js.removeprefix("window.location.assign(").removesuffix(")"))
        for js in scripts_of(specs)
        if js.startswith("window.location.assign(")
    ]
    assert len(urls) <= 1
    return urls[0] if urls else None
