"""The OpenAPI 3.1 description of every ``/api`` route, served at ``/api/openapi.json``.

Written by hand next to the routes it describes (the app is plain Starlette, which has no
schema generator worth the dependency); ``tests/web/test_store_api.py`` checks that the
document is a valid OpenAPI 3.1 document and that it lists every route the app serves.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from core.models import PLATFORMS, REGIONS
from core.services.catalogue import MAX_PER_PAGE, SORTS
from core.services.orders import MAX_LINES, MAX_QUANTITY_PER_LINE


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"},
            "description": description}  # fmt: skip


STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
DATE_OR_NULL = {"type": ["string", "null"], "format": "date"}
STR_OR_NULL = {"type": ["string", "null"]}
INT_OR_NULL = {"type": ["integer", "null"]}
MONEY = {"type": "integer", "minimum": 0, "description": "minor units (cents)"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {**STR, "description": "stable machine-readable code"},
                    "message": {**STR, "description": "a sentence for people"},
                    "field": {**STR, "description": "the input field at fault, when one is"},
                    "problems": {"type": "array", "items": STR,
                                 "description": "every problem of a refused cart"},
                },
            }
        },
    },
    "ProductHit": {
        "type": "object",
        "required": ["slug", "title", "platform", "region", "price_minor", "currency", "in_stock"],
        "properties": {
            "slug": STR, "title": STR, "platform": STR, "region": STR, "genre": STR,
            "publisher": STR, "price_minor": MONEY, "currency": {**STR, "pattern": "^[A-Z]{3}$"},
            "list_price_minor": INT_OR_NULL, "discount_percent": INT, "is_preorder": BOOL,
            "release_date": DATE_OR_NULL, "featured": BOOL,
            "cover_url": {**STR_OR_NULL, "description": "an URL or a data: URI"},
            "in_stock": {**BOOL, "description": "own keys or a provider offer with stock"},
            "low_stock": BOOL, "url": STR,
        },
    },
    "SearchPage": {
        "type": "object",
        "required": ["items", "total", "total_is_exact", "page", "per_page", "pages", "has_next"],
        "properties": {
            "items": {"type": "array", "items": _ref("ProductHit")},
            "total": {**INT, "description": "matches, counted up to 10,000"},
            "total_is_exact": {**BOOL, "description": "false when there are more than 10,000"},
            "page": INT, "per_page": INT, "pages": INT, "has_next": BOOL,
        },
    },
    "ProductDetail": {
        "type": "object",
        "required": ["slug", "title", "price_minor", "currency", "availability", "can_buy"],
        "properties": {
            "id": INT, "slug": STR, "title": STR, "platform": STR, "region": STR, "genre": STR,
            "publisher": STR, "description": STR, "price_minor": MONEY, "currency": STR,
            "list_price_minor": INT_OR_NULL, "discount_percent": INT, "cover_url": STR_OR_NULL,
            "is_preorder": BOOL, "release_date": DATE_OR_NULL,
            "stock_available": {**INT, "description": "own keys in stock"},
            "provider_available": {**INT, "description": "keys partners can deliver within our margin"},
            "availability": {"enum": ["In stock", "Available from partner stock", "Pre-order",
                                      "Out of stock"]},
            "can_buy": BOOL, "max_quantity": INT, "low_stock": BOOL, "region_locked": BOOL,
            "region_warning": STR_OR_NULL, "activation_instructions": STR,
            "activation_url": {**STR_OR_NULL, "description": "the platform's key-redemption page"},
        },
    },
    "CheckoutRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["email", "lines"],
        "properties": {
            "email": {**STR, "format": "email"},
            "lines": {
                "type": "array", "minItems": 1, "maxItems": MAX_LINES,
                "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["slug", "quantity"],
                    "properties": {
                        "slug": STR,
                        "quantity": {**INT, "minimum": 1, "maximum": MAX_QUANTITY_PER_LINE},
                    },
                },
            },
        },
    },
    "CheckoutResult": {
        "type": "object",
        "required": ["number", "access_token", "payment_url", "order_url", "total_minor", "currency"],
        "properties": {
            "number": {**STR, "description": "the public order number, KS-XXXX-XXXX"},
            "access_token": {**STR, "description": "opens this order; keep it secret"},
            "payment_url": {**STR, "description": "Stripe Checkout, or the built-in test payment page"},
            "order_url": {**STR, "description": "the order page and key portal"},
            "status_url": {**STR, "description": "GET it with the access token"},
            "total_minor": MONEY, "currency": STR,
            "test_payment": {**BOOL, "description": "true when the payment page is the built-in test page"},
        },
    },
    "KeyView": {
        "type": "object",
        "description": "A delivered key, masked. Codes are revealed only in the key portal.",
        "required": ["id", "kind", "status", "masked", "revealed", "reported"],
        "properties": {
            "id": {**STR, "format": "uuid"}, "kind": {"enum": ["text", "image"]},
            "status": {"enum": ["delivered", "faulty", "revoked"]}, "masked": STR,
            "revealed": BOOL, "reported": BOOL,
        },
    },
    "OrderLine": {
        "type": "object",
        "properties": {
            "id": INT, "slug": STR_OR_NULL, "title": STR, "platform": STR, "region": STR,
            "quantity": INT, "unit_price_minor": MONEY, "line_total_minor": MONEY, "currency": STR,
            "cover_url": STR_OR_NULL, "activation_url": STR_OR_NULL,
            "activation_instructions": STR, "delivered": INT,
            "pending": {**INT, "description": "ordered but not delivered yet"},
            "keys": {"type": "array", "items": _ref("KeyView")},
        },
    },
    "Order": {
        "type": "object",
        "required": ["number", "status", "status_label", "stage", "lines"],
        "properties": {
            "number": STR,
            "status": {"enum": ["pending_payment", "paid", "fulfilled", "needs_attention",
                                "cancelled", "refunded", "disputed"]},
            "status_label": {**STR, "description": "the status in customer words"},
            "stage": {**INT, "description": "progress 1..stages; 0 when the order left the normal path"},
            "stages": INT, "email": STR, "created_at": {**STR, "format": "date-time"},
            "paid_at": {"type": ["string", "null"], "format": "date-time"},
            "fulfilled_at": {"type": ["string", "null"], "format": "date-time"},
            "total_minor": MONEY, "currency": STR, "delivered": INT, "pending": INT,
            "is_final": BOOL, "lines": {"type": "array", "items": _ref("OrderLine")},
        },
    },
    "Health": {
        "type": "object",
        "properties": {"status": {"enum": ["ok", "degraded"]}, "database": STR, "queue": STR},
    },
}  # fmt: skip

_BAD = _error("malformed request (unknown or repeated parameter, not a number, not JSON)")
_TOKEN = {
    "name": "token",
    "in": "query",
    "required": False,
    "schema": STR,
    "description": "the order's access token (or send it as Authorization: Bearer)",
}

PATHS: dict[str, Any] = {
    "/api/store/products": {
        "get": {
            "operationId": "searchProducts",
            "summary": "Search the catalogue",
            "tags": ["store"],
            "parameters": [
                _q("q", STR, "words matched as prefixes in title, platform, genre, publisher"),
                _q("platform", {**STR, "examples": list(PLATFORMS)}, "exact, case-insensitive"),
                _q("region", {**STR, "examples": list(REGIONS)}, "exact, case-insensitive"),
                _q("genre", STR, "exact, case-insensitive"),
                _q("min_price", {**INT, "minimum": 0}, "lowest price, minor units"),
                _q("max_price", {**INT, "minimum": 0}, "highest price, minor units"),
                _q("in_stock", BOOL, "true: buyable now (own keys or partner stock)"),
                _q("sort", {"enum": list(SORTS), "default": "relevance"}, "order of results"),
                _q("page", {**INT, "minimum": 1, "default": 1}, "page number"),
                _q(
                    "per_page",
                    {**INT, "minimum": 1, "maximum": MAX_PER_PAGE, "default": 24},
                    "results per page",
                ),
            ],
            "responses": {
                "200": _json(_ref("SearchPage"), "one page of results"),
                "400": _BAD,
                "422": _error("a value out of range (page 0, min above max, unknown sort)"),
            },
        }
    },
    "/api/store/products/{slug}": {
        "get": {
            "operationId": "getProduct",
            "summary": "One product: price, availability, region and activation",
            "tags": ["store"],
            "parameters": [_path("slug", "the product's slug")],
            "responses": {
                "200": _json(_ref("ProductDetail"), "the product"),
                "404": _error("no such product, or no longer for sale"),
            },
        }
    },
    "/api/store/checkout": {
        "post": {
            "operationId": "checkout",
            "summary": "Place an order as a guest and get its payment URL",
            "tags": ["store"],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("CheckoutRequest")}},
            },
            "responses": {
                "201": {
                    **_json(_ref("CheckoutResult"), "the order, waiting for payment"),
                    "headers": {
                        "Location": {"schema": STR, "description": "the order's status URL"}
                    },
                },
                "400": _BAD,
                "413": _error("body larger than 64 KiB"),
                "415": _error("body is not application/json"),
                "422": _error(
                    "refused: bad e-mail, unknown or sold-out product, quantity, "
                    "currencies (see problems); nothing was written"
                ),
                "502": _error("the payment provider is unavailable; nothing was charged"),
            },
        }
    },
    "/api/store/orders/{number}": {
        "get": {
            "operationId": "getOrder",
            "summary": "An order's status, lines and masked keys",
            "description": "Needs the access token returned by checkout (and sent by e-mail). "
            "Keys are never included: reveal them in the key portal.",
            "tags": ["store"],
            "parameters": [_path("number", "the order number"), _TOKEN],
            "security": [{}, {"accessToken": []}],
            "responses": {
                "200": _json(_ref("Order"), "the order"),
                "400": _BAD,
                "404": _error("unknown order, or a wrong token (the same answer for both)"),
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["meta"],
            "responses": {"200": _json({"type": "object"}, "the OpenAPI 3.1 document")},
        }
    },
    "/api/health": {
        "get": {
            "operationId": "health",
            "summary": "Database and queue reachability",
            "tags": ["meta"],
            "responses": {
                "200": _json(_ref("Health"), "everything reachable"),
                "503": _json(_ref("Health"), "something unreachable"),
            },
        }
    },
    "/api/webhooks/{source}": {
        "post": {
            "operationId": "webhook",
            "summary": "Inbound webhooks: Stripe, Kinguin, CodesWholesale",
            "description": "Authenticated by each source's own rule (Stripe-Signature, "
            "Kinguin's secret header, CodesWholesale's signature), stored raw, "
            "de-duplicated and acted on at most once.",
            "tags": ["webhooks"],
            "parameters": [
                _path("source", "who sends it", {"enum": ["stripe", "kinguin", "codeswholesale"]})
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
            "responses": {
                "200": _json(
                    {"type": "object", "properties": {"received": BOOL, "duplicate": BOOL}},
                    "stored (duplicate: it had been received before)",
                ),
                "204": {"description": "stored (Kinguin asks for an empty answer)"},
                "400": _error("malformed or too large"),
                "401": _error("authentication failed; nothing changed"),
                "404": _error("unknown source"),
            },
        }
    },
    "/api/oidc/login": {
        "get": {
            "operationId": "oidc_login",
            "summary": "Start signing in with the configured OpenID Connect provider",
            "tags": ["accounts"],
            "responses": {
                "303": {
                    "description": "to the provider's authorization page (with the login "
                    "ticket cookie), or to /signin when no provider is configured"
                }
            },
        }
    },
    "/api/oidc/callback": {
        "get": {
            "operationId": "oidc_callback",
            "summary": "Where the provider sends the browser back with its code",
            "tags": ["accounts"],
            "parameters": [
                {"name": "code", "in": "query", "required": False, "schema": STR},
                {"name": "state", "in": "query", "required": False, "schema": STR},
            ],
            "responses": {
                "303": {
                    "description": "to /account with the session cookie set, or to /signin "
                    "when the answer is refused (bad state, unverified e-mail address, …)"
                }
            },
        }
    },
    "/api/account/verify": {
        "get": {
            "operationId": "verify_email",
            "summary": "The sign-up e-mail's link: verify the address and sign in",
            "tags": ["accounts"],
            "parameters": [{"name": "token", "in": "query", "required": True, "schema": STR}],
            "responses": {
                "303": {
                    "description": "to /account with the session cookie set, or to "
                    "/signin when the link is not valid or was used"
                }
            },
        }
    },
    "/api/session": {
        "post": {
            "operationId": "start_session",
            "summary": "Set the HttpOnly session cookie for a session just opened",
            "description": "Used by the storefront after a sign-in over its websocket; "
            "same origin only (any other Origin, or none, is refused with 403).",
            "tags": ["accounts"],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {"token": STR},
                        }
                    }
                },
            },
            "responses": {
                "204": {"description": "the cookie is set (HttpOnly, SameSite=Lax)"},
                "400": _error("not the documented body"),
                "401": _error("no such session"),
                "403": _error("foreign origin"),
            },
        }
    },
    "/api/session/sign-out": {
        "post": {
            "operationId": "end_session",
            "summary": "End the cookie's session and clear the cookie (same origin only)",
            "tags": ["accounts"],
            "responses": {
                "204": {"description": "signed out, cookie cleared"},
                "403": _error("foreign origin"),
            },
        }
    },
    "/api/blobs/{name}": {
        "get": {
            "operationId": "blob",
            "summary": "An image key through its signed, expiring link",
            "description": "The name may contain slashes (keys/<uuid>.png). Links are "
            "handed out by the key portal and expire after 15 minutes.",
            "tags": ["keys"],
            "parameters": [
                _path("name", "the blob's name"),
                {"name": "token", "in": "query", "required": True, "schema": STR},
            ],
            "responses": {
                "200": {
                    "description": "the image",
                    "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "403": _error("the link is not valid or has expired"),
                "404": _error("no such blob"),
            },
        }
    },
}


@cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "keyshop API",
            "version": "1.0.0",
            "description": "The JSON store API (catalogue, checkout, order status), the "
            'webhooks and health. Errors are {"error": {"code", "message"}} with the '
            "HTTP status. Amounts are integers in minor units with an ISO currency code.",
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "accessToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an order's access token",
                }
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """The document (a fresh copy each call)."""
    return copy.deepcopy(_document())
