"""In-memory state of one simulated provider: catalogue, balance, orders, keys, knobs.

Everything is guarded by one lock per provider; handlers only hold it for dictionary
work, never while sleeping or sending webhooks.

Key codes are random (``secrets``) on every run, never derived from the seed: a
restarted simulator must not hand out codes the shop already holds (its fingerprint
index would reject them as duplicates). The seed only drives the injected errors.
"""

from __future__ import annotations

import base64
import logging
import secrets
import string
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from random import Random
from typing import Any, Literal

import httpx

log = logging.getLogger("keyshop.simulators")

KeyKind = Literal["text", "image"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(value: Decimal) -> float:
    """A price for a JSON body (two places; see core.providers.http.decimal_json)."""
    return float(value.quantize(Decimal("0.01")))


# -- knobs ---------------------------------------------------------------------------------


@dataclass
class Knobs:
    """Behaviour switches, settable at start and at run time (``POST /_control/{p}``)."""

    latency_ms: float = 0.0  # added to every provider request
    error_rate: float = 0.0  # fraction of provider requests answered 503 (seeded RNG)
    seed: int = 0  # re-seeds the error RNG when set
    out_of_stock: list[str] = field(default_factory=list)  # product ids that are unavailable
    preorder: list[str] = field(default_factory=list)  # product ids treated as pre-orders
    late_keys_seconds: float = 0.0  # regular keys arrive this long after the order
    preorder_release_seconds: float = 2.0  # pre-order keys arrive this long after the order
    timeout: float = 0.0  # order creation hangs this long before it is processed
    crash_after_charge: bool = False  # order created and charged, then the connection drops
    webhook_target: str | None = None  # where webhooks / postbacks go (None: nowhere)
    webhook_secret: str = ""  # Kinguin X-Event-Secret
    notify_stock: bool = False  # product.update / STOCK on stock changes
    token_ttl_seconds: float = 300.0  # CodesWholesale access-token lifetime
    token_shape: Literal["oauth", "wrapper"] = "oauth"  # CodesWholesale token answer shape
    code_spelling: Literal["v2", "v1", "v3"] = "v2"  # CodesWholesale code type field
    empty_codes: bool = False  # CodesWholesale: leave `code` empty in order answers
    page_size: int = 0  # CodesWholesale: continuationToken paging (0: one page)
    # The same reference (Kinguin orderExternalId, CodesWholesale orderId) sent again:
    # "conflict" refuses it, "existing" answers the existing order, "duplicate" places
    # and charges a second order (what a provider that does not de-duplicate does).
    # None: the provider's default (Kinguin conflict, CodesWholesale duplicate).
    duplicate_reference: Literal["conflict", "existing", "duplicate"] | None = None
    fail_lookups: bool = False  # order searches (KG GET /v1/order, CW history) answer 503
    drop_before_charge: int = 0  # the next N order requests: connection dropped, no order
    return_window_seconds: float = 86400.0  # Kinguin key returns: within 24 h of the order

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name: f for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown knob {key!r}")
            current = getattr(self, key)
            if key in ("out_of_stock", "preorder"):
                value = [value] if isinstance(value, str) else [str(v) for v in (value or [])]
            elif key == "webhook_target":
                value = str(value) if value else None
            elif key == "token_shape" and value not in ("oauth", "wrapper"):
                raise ValueError("token_shape must be oauth or wrapper")
            elif key == "code_spelling" and value not in ("v1", "v2", "v3"):
                raise ValueError("code_spelling must be v1, v2 or v3")
            elif key == "duplicate_reference":
                if value not in (None, "conflict", "existing", "duplicate"):
                    raise ValueError("duplicate_reference must be conflict, existing or duplicate")
            elif isinstance(current, bool):
                value = (
                    value
                    if isinstance(value, bool)
                    else str(value).lower() in ("1", "true", "yes", "on")
                )
            elif isinstance(current, float):
                value = float(value)
            elif isinstance(current, int):
                value = int(value)
            elif isinstance(current, str):
                value = str(value)
            if key == "error_rate" and not 0.0 <= value <= 1.0:
                raise ValueError("error_rate must be between 0 and 1")
            setattr(self, key, value)


# -- catalogue, orders, keys ---------------------------------------------------------------


@dataclass
class SimProduct:
    external_id: str
    name: str
    price: Decimal
    stock: int
    platform: str = "Steam"
    region: str = "GLOBAL"
    preorder: bool = False
    image_keys: bool = False
    release_date: date | None = None
    kinguin_id: int = 0
    always_low_balance: bool = False  # the CW sandbox "not enough balance" product
    cover_url: str | None = None  # the product's picture, as the real APIs list it
    updated_at: datetime = field(default_factory=utcnow)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["price"] = str(self.price)
        data["release_date"] = self.release_date.isoformat() if self.release_date else None
        data["updated_at"] = iso(self.updated_at)
        return data


@dataclass
class SimKey:
    key_id: str
    kind: KeyKind
    preorder: bool
    code: str | None = None  # text code, or base64 PNG for image keys; None until released
    filename: str | None = None

    @property
    def released(self) -> bool:
        return self.code is not None


@dataclass
class SimOrder:
    order_id: str
    reference: str
    product_id: str
    product_name: str
    kinguin_id: int
    quantity: int
    unit_price: Decimal
    request_price: Decimal | None
    total: Decimal
    preorder: bool
    keys: list[SimKey]
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    status: str = "processing"
    returned: bool = False  # Kinguin: its keys were returned (one request per order)
    part_of: str | None = None  # CodesWholesale: a further products[] line of that order

    @property
    def complete(self) -> bool:
        return all(k.released for k in self.keys)

    def summary(self) -> dict[str, Any]:
        """What the control API shows: never the key codes."""
        return {
            "order_id": self.order_id,
            "reference": self.reference,
            "product_id": self.product_id,
            "quantity": self.quantity,
            "unit_price": str(self.unit_price),
            "total": str(self.total),
            "status": self.status,
            "preorder": self.preorder,
            "keys_released": sum(1 for k in self.keys if k.released),
            "created_at": iso(self.created_at),
        }


class SimError(Exception):
    """A business refusal: ``kind`` is one of unavailable, stock, price, balance,
    quantity, preorder."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


_ALPHABET = string.ascii_uppercase + string.digits


def text_code() -> str:
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(3))


def png_bytes(size: int = 12) -> bytes:
    """A small random-coloured PNG, different every time (a stand-in for a key photo)."""
    rows = b"".join(b"\x00" + secrets.token_bytes(size * 3) for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def release_key(key: SimKey) -> None:
    if key.kind == "image":
        key.code = base64.b64encode(png_bytes()).decode()
        key.filename = f"{key.key_id}.png"
    else:
        key.code = text_code()


# -- one provider --------------------------------------------------------------------------


Hook = Callable[["ProviderState", Any], None]


class ProviderState:
    def __init__(
        self,
        name: str,
        *,
        products: list[SimProduct],
        balance: Decimal,
        order_id: Callable[[], str],
        knobs: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.base_url = ""  # the API's public address, as the last request reached it
        self.lock = threading.RLock()
        self.knobs = Knobs()
        self._seed_products = [
            SimProduct(**{f.name: getattr(p, f.name) for f in fields(p)}) for p in products
        ]
        self._seed_balance = balance
        self._new_order_id = order_id
        self.products: dict[str, SimProduct] = {}
        self.orders: dict[str, SimOrder] = {}
        self.by_reference: dict[str, str] = {}
        self.tokens: dict[str, float] = {}  # CodesWholesale access tokens -> monotonic expiry
        self.stats: dict[str, int] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.timers: list[threading.Timer] = []
        self.rng = Random(0)
        self.balance = balance
        self.generation = 0
        # provider modules set these: build a webhook for a released order / a product
        self.on_release: Hook | None = None
        self.on_stock_change: Hook | None = None
        self._initial_knobs = dict(knobs or {})
        self.knobs.update(self._initial_knobs)  # validates before anything runs
        self.reset()

    # -- control ---------------------------------------------------------------------

    def reset(self) -> None:
        """Catalogue, balance, orders, tokens, counters and knobs back to the start."""
        with self.lock:
            self.cancel_timers()
            self.generation += 1  # requests still hanging from before the reset are void
            self.knobs = Knobs()
            self.knobs.update(self._initial_knobs)
            self.products = {
                p.external_id: SimProduct(**{f.name: getattr(p, f.name) for f in fields(p)})
                for p in self._seed_products
            }
            self.orders.clear()
            self.by_reference.clear()
            self.tokens.clear()
            self.stats = {
                "requests": 0,
                "token_requests": 0,
                "tokens_issued": 0,
                "basic_auth_headers": 0,
                "injected_errors": 0,
                "order_requests": 0,
                "orders_created": 0,
            }
            self.deliveries = []
            self.balance = self._seed_balance
            self.rng = Random(self.knobs.seed)

    def set_knobs(self, values: dict[str, Any]) -> dict[str, Any]:
        values = dict(values)
        with self.lock:
            balance = values.pop("balance", None)
            if values.pop("revoke_tokens", False):
                self.tokens.clear()
            self.knobs.update(values)
            if "seed" in values:
                self.rng = Random(self.knobs.seed)
            if balance is not None:
                try:
                    self.balance = Decimal(str(balance))
                except InvalidOperation:
                    raise ValueError("balance must be a decimal amount") from None
            return self.describe()

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {
                "provider": self.name,
                "balance": str(self.balance),
                "knobs": asdict(self.knobs),
                "stats": dict(self.stats),
            }

    def add_product(self, values: dict[str, Any]) -> SimProduct:
        values = dict(values)
        with self.lock:
            ext = str(
                values.pop("external_id", None) or values.pop("productId", None) or uuid.uuid4()
            )
            existing = self.products.get(ext)
            product = existing or SimProduct(
                external_id=ext,
                name=str(values.get("name") or f"Simulated product {ext[:8]}"),
                price=Decimal("9.99"),
                stock=10,
                kinguin_id=max((p.kinguin_id for p in self.products.values()), default=100000) + 1,
            )
            for key, value in values.items():
                if key == "price":
                    product.price = Decimal(str(value))
                elif key == "release_date":
                    product.release_date = date.fromisoformat(str(value)) if value else None
                elif key in ("stock", "kinguin_id"):
                    setattr(product, key, int(value))
                elif key in ("preorder", "image_keys", "always_low_balance"):
                    setattr(product, key, bool(value))
                elif key in ("name", "platform", "region"):
                    setattr(product, key, str(value))
                elif key == "cover_url":
                    product.cover_url = str(value) if value else None
                else:
                    raise ValueError(f"unknown product field {key!r}")
            product.updated_at = utcnow()
            self.products[ext] = product
        if existing is not None and "stock" in values:
            self.notify_stock(product)
        return product

    def order_summaries(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                o.summary()
                for o in sorted(self.orders.values(), key=lambda o: o.created_at)
                if o.part_of is None
            ]

    # -- request gate ----------------------------------------------------------------

    def count(self, stat: str) -> None:
        with self.lock:
            self.stats[stat] = self.stats.get(stat, 0) + 1

    def inject_error(self) -> bool:
        """True when this request should fail with a 503 (seeded, per provider)."""
        with self.lock:
            self.stats["requests"] += 1
            if self.knobs.error_rate > 0 and self.rng.random() < self.knobs.error_rate:
                self.stats["injected_errors"] += 1
                return True
            return False

    def is_preorder(self, product: SimProduct) -> bool:
        return product.preorder or product.external_id in self.knobs.preorder

    def is_unavailable(self, product_id: str) -> bool:
        return product_id in self.knobs.out_of_stock

    def visible_stock(self, product: SimProduct) -> int:
        return 0 if self.is_unavailable(product.external_id) else product.stock

    # -- ordering --------------------------------------------------------------------

    def place_order(
        self,
        *,
        reference: str,
        product_id: str,
        quantity: int,
        max_unit_price: Decimal | None,
        shortfall_as_preorder: bool,
        preorder_allowed: bool = True,
        part_of: str | None = None,
    ) -> SimOrder:
        """Check, charge and record one order (or, with ``part_of``, one further line of
        that order); raises :class:`SimError`. The caller has already handled a repeated
        ``reference``."""
        with self.lock:
            product = self.products.get(product_id)
            if product is None or self.is_unavailable(product_id):
                raise SimError("unavailable", "Product is not available")
            if quantity < 1:
                raise SimError("quantity", "Quantity must be at least 1")
            preorder = self.is_preorder(product)
            if preorder and not preorder_allowed:
                raise SimError("preorder", "Product is a pre-order")
            if max_unit_price is not None and max_unit_price < product.price:
                raise SimError("price", f"No offer at or below {max_unit_price}")
            waiting = 0
            if not preorder and product.stock < quantity:
                if not shortfall_as_preorder:
                    raise SimError("stock", "Not enough quantity in stock")
                waiting = quantity - max(product.stock, 0)
            total = product.price * quantity
            if product.always_low_balance or self.balance < total:
                raise SimError("balance", "Balance too low")
            self.balance -= total
            in_stock = 0 if preorder else quantity - waiting
            product.stock -= in_stock
            product.updated_at = utcnow()
            late = self.knobs.late_keys_seconds
            keys: list[SimKey] = []
            for n in range(quantity):
                is_pre = preorder or n >= in_stock
                key = SimKey(
                    key_id=str(uuid.uuid4()),
                    kind="image" if product.image_keys else "text",
                    preorder=is_pre,
                )
                if not is_pre and late <= 0:
                    release_key(key)
                keys.append(key)
            order = SimOrder(
                order_id=self._new_order_id(),
                reference=reference,
                product_id=product.external_id,
                product_name=product.name,
                kinguin_id=product.kinguin_id,
                quantity=quantity,
                unit_price=product.price,
                request_price=max_unit_price,
                total=total,
                preorder=preorder or waiting > 0,
                keys=keys,
            )
            order.status = "completed" if order.complete else "processing"
            self.orders[order.order_id] = order
            order.part_of = part_of
            if part_of is None:
                self.by_reference[reference] = order.order_id
            self.stats["orders_created"] += 1
            if not order.complete:
                delay = self.knobs.preorder_release_seconds if order.preorder else late
                self._schedule(max(delay, 0.0), order.order_id)
        if in_stock:
            self.notify_stock(product)
        log.info(
            "%s simulator: order %s (%s x%d) %s",
            self.name,
            order.order_id,
            product_id,
            quantity,
            order.status,
        )
        return order

    def return_keys(self, order_id: str) -> tuple[SimOrder | None, str | None]:
        """Return an order's keys for a refund (Kinguin ``features/ReturnKeys.md``): once
        per order, within ``return_window_seconds``, never a pre-order. Returns the order
        and None, or the order (or None) and why not."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                return None, "Order not found"
            if order.preorder:
                return order, "Pre-order keys cannot be returned"
            if order.returned:
                return order, "Keys of this order were already returned"
            if (utcnow() - order.created_at).total_seconds() > self.knobs.return_window_seconds:
                return order, "The return window has passed"
            if not any(k.released for k in order.keys):
                return order, "No keys to return"
            order.returned = True
            refund = order.unit_price * sum(1 for k in order.keys if k.released)
            self.balance += refund
            order.updated_at = utcnow()
            return order, None

    def take_drop_before_charge(self) -> bool:
        """True (once per unit of the ``drop_before_charge`` knob) when this order request
        must be dropped before anything is processed."""
        with self.lock:
            if self.knobs.drop_before_charge > 0:
                self.knobs.drop_before_charge -= 1
                return True
            return False

    def place_lines(
        self,
        *,
        reference: str,
        lines: list[tuple[str, int, Decimal | None]],
        shortfall_as_preorder: bool,
    ) -> SimOrder:
        """One order of several lines ``(product id, quantity, max unit price)``, all or
        nothing: a line refused undoes the lines before it. Returns the first line, which
        carries the order's id; the others are its parts."""
        with self.lock:
            placed: list[SimOrder] = []
            try:
                for product_id, quantity, price in lines:
                    placed.append(
                        self.place_order(
                            reference=reference,
                            product_id=product_id,
                            quantity=quantity,
                            max_unit_price=price,
                            shortfall_as_preorder=shortfall_as_preorder,
                            part_of=placed[0].order_id if placed else None,
                        )
                    )
            except SimError:
                for order in placed:
                    self._undo(order)
                raise
            return placed[0]

    def _undo(self, order: SimOrder) -> None:
        with self.lock:
            self.balance += order.total
            product = self.products.get(order.product_id)
            if product is not None:
                product.stock += sum(1 for k in order.keys if not k.preorder)
            self.orders.pop(order.order_id, None)
            if self.by_reference.get(order.reference) == order.order_id:
                del self.by_reference[order.reference]

    def members(self, order: SimOrder) -> list[SimOrder]:
        """An order's lines: itself, then its parts."""
        with self.lock:
            return [order] + [o for o in self.orders.values() if o.part_of == order.order_id]

    def order_for(self, reference: str) -> SimOrder | None:
        with self.lock:
            order_id = self.by_reference.get(reference)
            return self.orders.get(order_id) if order_id else None

    def _schedule(self, delay: float, order_id: str) -> None:
        timer = threading.Timer(delay, self.release, args=(order_id,))
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def release(self, order_id: str) -> SimOrder | None:
        """Hand out every outstanding key of an order (late keys, pre-order release)."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None or order.complete:
                return order
            released = [k for k in order.keys if not k.released]
            for key in released:
                release_key(key)
            order.status = "completed"
            order.updated_at = utcnow()
        if self.on_release is not None:
            self.on_release(self, (order, released))
        return order

    def notify_stock(self, product: SimProduct) -> None:
        if (
            self.knobs.notify_stock
            and self.knobs.webhook_target
            and self.on_stock_change is not None
        ):
            self.on_stock_change(self, product)

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers = []

    # -- webhooks --------------------------------------------------------------------

    def deliver(
        self, event: str, headers: dict[str, str], body: dict[str, Any], *, background: bool = True
    ) -> None:
        """POST a webhook to ``webhook_target``, retrying a few times (in a thread)."""
        target = self.knobs.webhook_target
        if not target:
            return
        record: dict[str, Any] = {
            "event": event,
            "target": target,
            "status": None,
            "attempts": 0,
            "at": iso(utcnow()),
        }
        with self.lock:
            self.deliveries.append(record)

        def run() -> None:
            for attempt in range(1, 4):
                record["attempts"] = attempt
                try:
                    response = httpx.post(target, json=body, headers=headers, timeout=5.0)
                    record["status"] = response.status_code
                    if response.is_success:
                        log.info(
                            "%s simulator: %s delivered to %s (%s)",
                            self.name,
                            event,
                            target,
                            response.status_code,
                        )
                        return
                except httpx.HTTPError as exc:
                    record["status"] = type(exc).__name__
                time.sleep(0.2 * attempt)
            log.warning(
                "%s simulator: %s to %s failed: %s", self.name, event, target, record["status"]
            )

        if background:
            threading.Thread(target=run, name=f"{self.name}-webhook", daemon=True).start()
        else:
            run()
