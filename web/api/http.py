"""What every ``/api`` route shares: the JSON error shape, strict requests, the route class.

The API is a FastAPI app (``web.api.app.create_api``); its routes are declared with
pydantic models (``extra="forbid"``) and the OpenAPI 3.1 document at
``/api/openapi.json`` is generated from them, so the document cannot drift from the code.

``ApiRoute`` keeps the shop's own error answers, ``{"error": {"code", "message"}}`` with
the HTTP status, instead of FastAPI's defaults:

- the query string is checked before anything else: an unknown or repeated parameter,
  or a value over 200 characters, is a 400 (FastAPI would take the last of repeated
  values and ignore unknown ones);
- a route with a JSON body reads it itself: 415 unless ``application/json``, 413 over
  64 KiB (counted while streaming, whatever ``Content-Length`` says), 400 when it is not
  JSON or is nested too deeply to parse;
- pydantic's validation errors become 400 (a malformed query: not a number, not a
  boolean) or 422 ``invalid_input`` (a value out of range, a body that is not the
  documented object);
- ``DomainError`` becomes its own status and code (with ``problems`` for a refused cart,
  ``Retry-After`` when it has one), and a database that cannot be reached a 503
  ``database_unavailable`` with ``Retry-After``.

Wrong methods and unknown ``/api/store`` paths are answered here too (``fallback_routes``):
otherwise the Reflex app mounted behind this one would take them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Annotated, Any, Final

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.db import is_database_unavailable
from core.errors import DatabaseUnavailable, DomainError

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
MAX_PARAM_CHARS: Final = 200
NO_STORE: Final = {"Cache-Control": "no-store"}
ALL_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
OUT_OF_RANGE: Final = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "literal_error",
     "enum", "too_long", "too_short"}
)  # fmt: skip


# -- the error answer --------------------------------------------------------------------


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="stable machine-readable code")
    message: str = Field(description="a sentence for people")
    field: str | SkipJsonSchema[None] = Field(
        None, description="the input field at fault, when one is"
    )
    problems: list[str] | SkipJsonSchema[None] = Field(
        None, description="every problem of a refused cart"
    )


class Error(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


def error_response(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for an error status."""
    return {"model": Error, "description": description}


class BadRequest(Exception):
    def __init__(self, message: str, *, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}}, status_code=status,
        headers=NO_STORE,
    )  # fmt: skip


def domain_error(exc: DomainError) -> JSONResponse:
    from core.services.checkout import CartRejected

    extra: dict[str, Any] = {}
    if isinstance(exc, CartRejected):
        extra["problems"] = exc.problems
    field = exc.data.get("field") if isinstance(exc.data, dict) else None
    if isinstance(field, str):
        extra["field"] = field
    response = error(exc.http_status, exc.code, exc.message, **extra)
    retry_after = exc.data.get("retry_after") if isinstance(exc.data, dict) else None
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    return response


# -- strict query values -----------------------------------------------------------------


def whole_number(value: Any) -> Any:
    """A query value of ASCII digits only (no sign, no decimal point); empty means absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and (not value.isascii() or not value.isdigit() or len(value) > 12):
        raise PydanticCustomError("whole_number", "must be a whole number")
    return value


BOOLEANS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _boolean(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        found = BOOLEANS.get(value.lower())
        if found is None:
            raise PydanticCustomError("true_or_false", "must be true or false")
        return found
    return value


# SkipJsonSchema[None]: absent is the only "null", so the document says integer/boolean.
Page = Annotated[Annotated[int, Field(ge=1)] | SkipJsonSchema[None], BeforeValidator(whole_number)]
"""A whole number from 1."""
Price = Annotated[Annotated[int, Field(ge=0)] | SkipJsonSchema[None], BeforeValidator(whole_number)]
"""A whole number from 0 (minor units)."""
Boolean = Annotated[bool | SkipJsonSchema[None], BeforeValidator(_boolean)]
"""A query value true/1/yes or false/0/no (any case); empty means absent."""


class StrictQuery(BaseModel):
    """Base of the query-string models: unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")


# -- the route class ---------------------------------------------------------------------


def _query_names(route: APIRoute) -> frozenset[str]:
    names: set[str] = set()
    for param in route.dependant.query_params:
        annotation = param.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= {f.alias or n for n, f in annotation.model_fields.items()}
        else:
            names.add(param.alias)
    for sub in route.dependant.dependencies:
        names |= {p.alias for p in sub.query_params}
    return frozenset(names)


def _check_query(request: Request, allowed: frozenset[str]) -> None:
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            choices = ", ".join(sorted(allowed)) or "none"
            raise BadRequest(f"unknown query parameter {name!r}; allowed: {choices}")
        if name in seen:
            raise BadRequest(f"query parameter {name!r} given more than once")
        if len(value) > MAX_PARAM_CHARS:
            raise BadRequest(f"query parameter {name!r} is too long")
        seen.add(name)


async def _read_json_body(request: Request) -> None:
    """Check and read the body before FastAPI does (it caches it on the request)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise BadRequest(
            "send the body as application/json", status=415, code="unsupported_media_type"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest("the body is too large", status=413, code="payload_too_large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest("the body is too large", status=413, code="payload_too_large")
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[" * 100_000
        raise BadRequest("the body is not valid JSON") from None
    request._body = body  # what Request.body() returns from now on


def _where(loc: Iterable[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    loc = tuple(first.get("loc", ()))
    kind, message = first.get("type", ""), first.get("msg", "invalid")
    if loc and loc[0] == "body":
        where = _where(loc[1:])
        return error(422, "invalid_input", f"{where}: {message}" if where else message)
    where = str(loc[1]) if len(loc) > 1 else "request"  # the parameter (not union branches)
    if kind in OUT_OF_RANGE:
        return error(422, "invalid_input", f"{where}: {message}", field=where)
    return error(400, "bad_request", f"{where} {message}" if kind in {"whole_number",
                 "true_or_false"} else f"{where}: {message}")  # fmt: skip


class ApiRoute(APIRoute):
    """A FastAPI route answering the shop's JSON errors (see the module docstring)."""

    strict_query: bool = True
    #: Run first for every request of the route (a rate limit); may raise a DomainError.
    before: Callable[[Request], Coroutine[Any, Any, None]] | None = None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        allowed = _query_names(self)
        reads_body = self.body_field is not None
        strict = self.strict_query
        before = type(self).before

        async def answer(request: Request) -> Response:
            try:
                if before is not None:
                    await before(request)
                if strict:
                    _check_query(request, allowed)
                if reads_body:
                    await _read_json_body(request)
                return await handler(request)
            except BadRequest as exc:
                return error(exc.status, exc.code, exc.message)
            except RequestValidationError as exc:
                return _validation_error(exc)
            except DomainError as exc:
                return domain_error(exc)
            except DBAPIError as exc:
                if not is_database_unavailable(exc):
                    raise
                log.warning(
                    "%s: database unavailable (%s)", request.url.path, type(exc.orig).__name__
                )
                return domain_error(DatabaseUnavailable())

        return answer


class LenientQueryRoute(ApiRoute):
    """An ``ApiRoute`` that ignores query parameters it does not declare (webhooks and
    signed links: what the sender appends is not ours to refuse)."""

    strict_query = False


def fallback_routes(router: APIRouter, catch_all: str | None = None) -> None:
    """Answer HEAD where GET is served (as Starlette's routes do), a JSON 405 (with
    ``Allow``) for the methods a path does not serve, and a JSON 404 for anything else
    under ``catch_all``; none of these is in the document. Call it after the routes."""
    served: dict[str, set[str]] = {}
    for route in list(router.routes):
        if isinstance(route, APIRoute):
            methods = route.methods or set()
            served.setdefault(route.path, set()).update(methods)
            if "GET" in methods:
                router.add_api_route(route.path, route.endpoint, methods=["HEAD"],
                                     response_class=route.response_class,
                                     include_in_schema=False)  # fmt: skip
    for path, methods in served.items():
        allow = methods | ({"HEAD"} if "GET" in methods else set())
        others = [m for m in ALL_METHODS if m not in allow]
        router.add_api_route(
            path, _method_not_allowed(sorted(methods), sorted(allow)), methods=others,
            include_in_schema=False,
        )  # fmt: skip
    if catch_all:

        async def not_found() -> Response:
            return error(404, "not_found", "no such store API route")

        router.add_api_route(catch_all, not_found, methods=list(ALL_METHODS),
                             include_in_schema=False)  # fmt: skip


def _method_not_allowed(
    methods: list[str], allow: list[str]
) -> Callable[[], Coroutine[Any, Any, Response]]:
    async def method_not_allowed() -> Response:
        response = error(405, "method_not_allowed", f"use {' or '.join(methods)} here")
        response.headers["Allow"] = ", ".join(allow)
        return response

    return method_not_allowed


# -- the document ------------------------------------------------------------------------

DESCRIPTION: Final = (
    "The JSON store API (catalogue, checkout, order status), the webhooks and health. "
    'Errors are {"error": {"code", "message"}} with the HTTP status. Amounts are integers '
    "in minor units with an ISO currency code."
)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI 3.1 document generated from the app's routes and models (cached)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title="keyshop API",
            version="1.0.0",
            openapi_version="3.1.0",
            description=DESCRIPTION,
            routes=app.routes,
        )
        _drop_fastapi_validation_errors(document)
        document.setdefault("components", {})["securitySchemes"] = {
            "accessToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "an order's access token",
            }
        }
        app.openapi_schema = document
    return app.openapi_schema


def _drop_fastapi_validation_errors(document: dict[str, Any]) -> None:
    """FastAPI documents a 422 of its own shape on routes that declare none; ours never
    answer it (``ApiRoute`` answers ``Error``), so those entries go."""
    own = "#/components/schemas/HTTPValidationError"
    for item in document["paths"].values():
        for operation in item.values():
            answer = operation.get("responses", {}).get("422", {})
            if answer.get("content", {}).get("application/json", {}).get("schema") == {"$ref": own}:
                del operation["responses"]["422"]
    schemas = document.get("components", {}).get("schemas", {})
    if own not in json.dumps(document):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
