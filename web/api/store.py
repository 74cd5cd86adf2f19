"""The JSON store API: the catalogue, checkout and order status for other programs.

    GET  /api/store/products            search, filters, sort, paging
    GET  /api/store/products/{slug}     one product (availability, region, activation)
    POST /api/store/checkout            e-mail and lines → order number, token, payment URL
    POST /api/store/gift-cards/balance  a gift card code → its balance (rate limited)
    GET  /api/store/orders/{number}     the order with its access token (never a key)
    GET  /api/openapi.json              the OpenAPI 3.1 description of every /api route

Each route only translates: its request and answer are pydantic models (``extra="forbid"``)
from which FastAPI generates the OpenAPI document, ``web.api.http.ApiRoute`` checks the
request strictly (unknown query parameters, repeated ones, non-numbers, bodies that are
not the documented JSON are refused), and the route calls a ``core`` service in the thread
pool and shapes the answer. Errors are DESIGN §6 JSON,
``{"error": {"code": ..., "message": ...}}``: 400 a malformed request, 404 nothing there
(or not yours), 405 wrong method, 413 body too large, 415 not JSON, 422 a well-formed
request the shop refuses (with ``problems`` for a cart, including a cart that stock and
partners cannot serve because other orders hold it), 429 too many requests (every
request counts against its client address's limit, a checkout also against the
checkout limit: ``core.services.ratelimit``), 502 the
payment provider refused, 503 the checkout failed on our side (``checkout_failed``: no
order is left behind) or the database cannot be reached or lost the connection
(``database_unavailable``, with ``Retry-After``; nothing was written).

Keys are never part of any answer: the order's keys appear masked, and are revealed
only in the key portal (``core.services.portal.reveal_order_key``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.db import get_engine, session_scope
from core.services import catalogue, checkout, giftcards, portal, ratelimit, storefront
from core.services.catalogue import MAX_PER_PAGE, SORTS
from core.services.catalogue.covers import cover_src
from core.services.orders import MAX_LINES, MAX_QUANTITY_PER_LINE
from web.api.http import (
    MAX_PARAM_CHARS,
    NO_STORE,
    ApiRoute,
    BadRequest,
    Boolean,
    Page,
    Price,
    StrictQuery,
    error_response,
    fallback_routes,
    openapi_document,
    whole_number,
)

MONEY: Final = "minor units (cents)"
Text = Annotated[str | SkipJsonSchema[None], Field(max_length=MAX_PARAM_CHARS)]


PerPage = Annotated[
    Annotated[int, Field(ge=1, le=MAX_PER_PAGE)] | SkipJsonSchema[None],
    BeforeValidator(whole_number),
]


class Model(BaseModel):
    """An answer of the API: exactly these fields, nothing undocumented."""

    model_config = ConfigDict(extra="forbid")


# -- requests ----------------------------------------------------------------------------


class SearchQuery(StrictQuery):
    q: Text = Field(
        None, description="words matched as prefixes in title, platform, genre, publisher"
    )
    platform: Text = Field(None, description="exact, case-insensitive")
    region: Text = Field(None, description="exact, case-insensitive")
    genre: Text = Field(None, description="exact, case-insensitive")
    min_price: Price = Field(None, description="lowest price, minor units")
    max_price: Price = Field(None, description="highest price, minor units")
    in_stock: Boolean = Field(None, description="true: buyable now (own keys or partner stock)")
    currency: Text = Field(
        None,
        description="list prices, price bounds and price sorts in this currency (EUR, USD, "
        "GBP); products without a price in it are left out, never converted; default: "
        "each product at its own price",
    )
    sort: Text = Field(
        None,
        description="order of results (default relevance)",
        json_schema_extra={"enum": list(SORTS)},
    )
    page: Page = Field(None, description="page number (default 1)")
    per_page: PerPage = Field(
        None,
        description=f"results per page (default 24, at most {MAX_PER_PAGE})",
    )


class OrderQuery(StrictQuery):
    token: Text = Field(
        None, description="the order's access token (or send it as Authorization: Bearer)"
    )


class CheckoutLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: StrictStr = Field(min_length=1)
    quantity: StrictInt = Field(
        description=f"1..{MAX_QUANTITY_PER_LINE}; the shop refuses others as a cart problem"
    )


class CheckoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: StrictStr = Field(json_schema_extra={"format": "email"})
    lines: list[CheckoutLine] = Field(
        max_length=100, description=f"at most {MAX_LINES} products; none is a cart problem"
    )
    currency: StrictStr | None = Field(
        None,
        pattern="^[A-Z]{3}$",
        description="the currency to buy in (default: the first product's own); a product "
        "without a price in it is a cart problem, never converted",
    )
    country: StrictStr | None = Field(
        None,
        pattern="^[A-Z]{2}$",
        description="the buyer's country (ISO 3166 alpha-2): sets the VAT the total includes",
    )
    payment_method: Literal["card", "crypto"] = Field(
        "card", description="card (Stripe), or crypto (NOWPayments) where the shop offers it"
    )
    promo_code: StrictStr | None = Field(
        None,
        max_length=220,
        description="a promo code (several, separated by commas, only when each allows "
        "combining); a code that cannot be used is refused (promo_rejected) with the reason",
    )
    gift_cards: list[StrictStr] = Field(
        default_factory=list,
        max_length=5,
        description="gift card codes, applied in this order before the payment method; "
        "the payment method pays exactly the rest (card only), and an order they cover "
        "wholly is paid at once (payment_url is then the order page)",
    )


class GiftCardBalanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: StrictStr = Field(max_length=64, description="the gift card code, as printed")


# -- answers -----------------------------------------------------------------------------


class ProductHit(Model):
    slug: str
    title: str
    platform: str
    region: str
    genre: str
    publisher: str
    price_minor: int = Field(ge=0, description=MONEY)
    currency: str = Field(pattern="^[A-Z]{3}$")
    list_price_minor: int | None
    discount_percent: int
    is_preorder: bool
    release_date: date | None
    featured: bool
    cover_url: str | None = Field(
        description="an URL (an uploaded cover: /api/covers/…, card size) or a data: URI"
    )
    in_stock: bool = Field(description="own keys or a provider offer with stock")
    low_stock: bool
    url: str


class SearchPage(Model):
    items: list[ProductHit]
    total: int = Field(description="matches, counted up to 10,000")
    total_is_exact: bool = Field(description="false when there are more than 10,000")
    page: int
    per_page: int
    pages: int
    has_next: bool


class ProductDetail(Model):
    id: int
    slug: str
    title: str
    platform: str
    region: str
    genre: str
    publisher: str
    description: str
    price_minor: int = Field(ge=0, description=MONEY)
    currency: str
    list_price_minor: int | None
    discount_percent: int
    cover_url: str | None
    is_preorder: bool
    release_date: date | None
    stock_available: int = Field(description="own keys in stock")
    provider_available: int = Field(description="keys partners can deliver within our margin")
    availability: Literal["In stock", "Available from partner stock", "Pre-order", "Out of stock"]
    can_buy: bool
    max_quantity: int = Field(description="how many one order may take now (0: cannot be bought)")
    low_stock: bool
    region_locked: bool
    region_warning: str | None
    activation_instructions: str
    activation_url: str | None = Field(description="the platform's key-redemption page")
    sold_in_currency: bool = Field(description="false: no price in the currency asked for")
    arrival: str = Field(description="when the key arrives, in customer words")


class CheckoutResult(Model):
    number: str = Field(description="the public order number, KS-XXXX-XXXX")
    access_token: str = Field(description="opens this order; keep it secret")
    payment_url: str = Field(
        description="Stripe Checkout, the NOWPayments invoice, or the built-in test payment page"
    )
    order_url: str = Field(description="the order page and key portal")
    status_url: str = Field(description="GET it with the access token")
    total_minor: int = Field(ge=0, description=MONEY)
    discount_minor: int = Field(ge=0, description="what promo codes took off; " + MONEY)
    paid_from_balances_minor: int = Field(
        ge=0, description="what gift cards and store credit paid; " + MONEY
    )
    currency: str
    test_payment: bool = Field(description="true when the payment page is the built-in test page")


class GiftCardBalance(Model):
    last4: str = Field(description="the code's last four characters")
    currency: str
    balance_minor: int = Field(ge=0, description=MONEY)
    initial_minor: int = Field(ge=0, description=MONEY)
    active: bool = Field(description="false once the shop voided the card")


class KeyView(Model):
    """A delivered key, masked. Codes are revealed only in the key portal."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    kind: Literal["text", "image"]
    status: Literal["delivered", "faulty", "revoked"]
    masked: str
    revealed: bool
    reported: bool = Field(description="an open faulty-key report exists")


class OrderLine(Model):
    id: int
    slug: str | None = Field(description="null when the product left the catalogue")
    title: str
    platform: str
    region: str
    quantity: int
    unit_price_minor: int = Field(ge=0, description=MONEY)
    line_total_minor: int = Field(ge=0, description=MONEY)
    currency: str
    cover_url: str | None
    activation_url: str | None
    activation_instructions: str
    delivered: int
    pending: int = Field(description="ordered but not delivered yet")
    keys: list[KeyView]
    is_preorder: bool = Field(description="a pre-order: delivered on the release date")
    discount_minor: int = Field(
        ge=0, description="what promo codes took off this line (line_total_minor is after it)"
    )


class Order(Model):
    number: str
    status: Literal[
        "pending_payment", "paid", "fulfilled", "needs_attention", "cancelled", "refunded",
        "disputed",
    ]  # fmt: skip
    status_label: str = Field(description="the status in customer words")
    stage: int = Field(description="progress 1..stages; 0 when the order left the normal path")
    stages: int
    email: str
    created_at: datetime
    paid_at: datetime | None
    fulfilled_at: datetime | None
    total_minor: int = Field(ge=0, description=MONEY)
    currency: str
    lines: list[OrderLine]
    delivered: int
    pending: int
    consent_given: bool = Field(
        description="the customer agreed to immediate delivery (needed before a reveal)"
    )
    country: str | None = Field(description="the buyer's country (ISO 3166), chosen at checkout")
    vat_rate_bp: int = Field(description="VAT rate in basis points (1900 = 19%)")
    vat_minor: int = Field(ge=0, description="the VAT contained in total_minor; " + MONEY)
    payment_note: str | None = Field(
        None, description="a crypto payment's state on the blockchain, in words"
    )
    paid_from_balances_minor: int = Field(
        0, ge=0, description="what gift cards and store credit paid of total_minor; " + MONEY
    )
    discount_minor: int = Field(
        0, ge=0, description="what promo codes took off the order (total_minor is after it)"
    )
    promo_codes: list[str] = Field(default_factory=list, description="the promo codes it used")
    is_final: bool = Field(description="nothing will change on its own any more")


# -- shaping answers --------------------------------------------------------------------


def _single_statement_reads() -> Engine:
    """The engine for a read that is one statement (the product search): on PostgreSQL in
    autocommit, so the search is one round trip instead of BEGIN, query and COMMIT (one
    statement sees one snapshot either way)."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def hit_json(hit: catalogue.ProductHit) -> dict[str, Any]:
    return {
        "slug": hit.slug,
        "title": hit.title,
        "platform": hit.platform,
        "region": hit.region,
        "genre": hit.genre,
        "publisher": hit.publisher,
        "price_minor": hit.price_minor,
        "currency": hit.currency,
        "list_price_minor": hit.list_price_minor,
        "discount_percent": hit.discount_percent,
        "is_preorder": hit.is_preorder,
        "release_date": hit.release_date,
        "featured": hit.featured,
        "cover_url": cover_src(hit),
        "in_stock": hit.in_stock,
        "low_stock": hit.low_stock,
        "url": f"/api/store/products/{hit.slug}",
    }


def order_json(view: portal.OrderView) -> Order:
    """The order page as the API's model. KeyView carries no code, and the model has no
    field for one, so nothing here can leak one."""
    return Order.model_validate({**asdict(view), "is_final": view.is_final})


def _access_token(request: Request, token: str | None) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise BadRequest("Authorization must be 'Bearer <access token>'")
        return value.strip()
    return token


# -- routes ------------------------------------------------------------------------------

BAD: Final = error_response(
    "malformed request (unknown or repeated parameter, not a number, not JSON)"
)
UNAVAILABLE: Final = error_response(
    "the database cannot be reached just now (Retry-After); nothing was written"
)


async def _limit(request: Request) -> None:
    """Every store API request counts against its client's limit (RateLimited, 429)."""
    ip = request.client.host if request.client else None
    await run_in_threadpool(lambda: ratelimit.check_store_api(ip=ip))


class StoreRoute(ApiRoute):
    before = staticmethod(_limit)


router = APIRouter(route_class=StoreRoute)


@router.get(
    "/api/store/products",
    operation_id="searchProducts",
    summary="Search the catalogue",
    tags=["store"],
    response_model=SearchPage,
    responses={
        400: BAD,
        422: error_response("a value out of range (page 0, min above max, unknown sort)"),
        503: UNAVAILABLE,
    },
)
async def list_products(params: Annotated[SearchQuery, Query()]) -> Any:
    def search() -> catalogue.SearchPage:
        with session_scope(write=False, engine=_single_statement_reads()) as session:
            return catalogue.search_products(
                session=session,
                query=params.q,
                platform=params.platform or None,
                region=params.region or None,
                genre=params.genre or None,
                min_price_minor=params.min_price,
                max_price_minor=params.max_price,
                in_stock=params.in_stock,
                currency=params.currency or None,
                sort=params.sort or "relevance",
                page=params.page if params.page is not None else 1,
                per_page=params.per_page if params.per_page is not None else 24,
            )

    found = await run_in_threadpool(search)
    return {
        "items": [hit_json(h) for h in found.items],
        "total": found.total,
        "total_is_exact": found.total_is_exact,
        "page": found.page,
        "per_page": found.per_page,
        "pages": found.pages,
        "has_next": found.has_next,
    }


@router.get(
    "/api/store/products/{slug}",
    operation_id="getProduct",
    summary="One product: price, availability, region and activation",
    tags=["store"],
    response_model=ProductDetail,
    responses={
        400: BAD,
        404: error_response("no such product, or no longer for sale"),
        503: UNAVAILABLE,
    },
)
async def get_product(slug: Annotated[str, Path(description="the product's slug")]) -> Any:
    def detail() -> storefront.ProductDetail:
        with session_scope(write=False) as session:
            return storefront.product_detail(session=session, slug=slug)

    data = asdict(await run_in_threadpool(detail))
    cover = data.pop("cover")
    return {**data, "cover_url": cover["src"] if cover else None}


@router.post(
    "/api/store/checkout",
    operation_id="checkout",
    summary="Place an order as a guest and get its payment URL",
    tags=["store"],
    status_code=201,
    response_model=CheckoutResult,
    responses={
        201: {
            "description": "the order, waiting for payment",
            "headers": {
                "Location": {"schema": {"type": "string"}, "description": "the order's status URL"}
            },
        },
        400: BAD,
        413: error_response("body larger than 64 KiB"),
        415: error_response("body is not application/json"),
        422: error_response(
            "refused: not the documented object (invalid_input), or by the shop: bad e-mail, "
            "unknown product, quantity, currencies, or more than own stock and partner "
            "stock not held by other orders can serve (cart_rejected, see problems), a promo "
            "code that cannot be used (promo_rejected: unknown, paused, not yet valid, "
            "expired, used up, minimum not reached, not for these products); nothing was "
            "written"
        ),
        429: error_response("too many requests"),
        502: error_response(
            "the payment provider is unavailable; nothing was charged and the order was cancelled"
        ),
        503: error_response(
            "the checkout failed on our side (checkout_failed), or the database cannot be "
            "reached just now (database_unavailable, Retry-After); nothing was charged and "
            "no order is left waiting"
        ),
    },
)
async def create_checkout(order: CheckoutRequest, request: Request, response: Response) -> Any:
    lines = [checkout.CartLine(slug=line.slug, quantity=line.quantity) for line in order.lines]
    ip = request.client.host if request.client else None
    await run_in_threadpool(lambda: ratelimit.check_checkout(ip=ip))
    result = await run_in_threadpool(
        lambda: checkout.place_order(
            email=order.email,
            lines=lines,
            ip=ip,
            currency=order.currency,
            country=order.country,
            payment_method=order.payment_method,
            gift_cards=order.gift_cards,
            promo_code=order.promo_code,
        )
    )
    status_url = f"/api/store/orders/{result.number}"
    response.headers.update({**NO_STORE, "Location": status_url})
    return {**asdict(result), "status_url": status_url}


@router.get(
    "/api/store/orders/{number}",
    operation_id="getOrder",
    summary="An order's status, lines and masked keys",
    description="Needs the access token returned by checkout (and sent by e-mail). "
    "Keys are never included: reveal them in the key portal.",
    tags=["store"],
    response_model=Order,
    responses={
        400: BAD,
        404: error_response("unknown order, or a wrong token (the same answer for both)"),
        503: UNAVAILABLE,
    },
    openapi_extra={"security": [{}, {"accessToken": []}]},
)
async def get_order(
    number: Annotated[str, Path(description="the order number")],
    params: Annotated[OrderQuery, Query()],
    request: Request,
    response: Response,
) -> Any:
    token = _access_token(request, params.token)

    response.headers.update(NO_STORE)
    view = await run_in_threadpool(lambda: portal.view_order(number=number, access_token=token))
    return order_json(view)


@router.post(
    "/api/store/gift-cards/balance",
    operation_id="giftCardBalance",
    summary="A gift card's balance by its code (rate limited per address)",
    tags=["store"],
    response_model=GiftCardBalance,
    responses={
        400: BAD,
        404: error_response("no gift card has that code"),
        422: error_response("not a gift card code, or a typo in it (its check character)"),
        429: error_response("too many look-ups from this address"),
    },
)
async def gift_card_balance(
    body: GiftCardBalanceRequest, request: Request, response: Response
) -> Any:
    ip = request.client.host if request.client else None
    found = await run_in_threadpool(lambda: giftcards.check_balance(code=body.code, ip=ip))
    response.headers.update(NO_STORE)
    return asdict(found)


@router.get(
    "/api/openapi.json",
    operation_id="openapi",
    summary="This document",
    tags=["meta"],
    response_model=dict[str, Any],
    responses={200: {"description": "the OpenAPI 3.1 document"}},
)
async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(request.app))


fallback_routes(router, catch_all="/api/store/{rest:path}")
