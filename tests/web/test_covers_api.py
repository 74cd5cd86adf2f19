"""Uploaded product covers over the HTTP API: public, cached, only cover names, and the
store API pointing at them; every answer checked against the generated document."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from starlette.testclient import TestClient

from core.blobs import get_blob_store
from core.services.audit import Actor
from core.services.catalogue.covers import prepare_cover, set_cover
from tests.factories import make_product
from tests.support.openapi import OpenApiContract


@pytest.fixture(scope="module")
def app():
    from web.api.app import create_api

    return create_api()


@pytest.fixture
def api(app, engine):
    from web.api.http import openapi_document

    contract = OpenApiContract(openapi_document(app))

    def conforms(response):
        response.read()
        content_type = response.headers.get("content-type", "")
        body = response.json() if content_type.startswith("application/json") else None
        contract.check(
            response.request.method,
            response.request.url.path,
            response.status_code,
            content_type,
            body,
        )

    with TestClient(app, raise_server_exceptions=True) as client:
        client.event_hooks = {"request": [], "response": [conforms]}
        yield client


def test_an_uploaded_cover_is_served_public_and_cached(api, session):
    make_product(session, slug="starfall", title="Starfall")
    buffer = io.BytesIO()
    Image.new("RGB", (900, 1200), "teal").save(buffer, format="PNG")
    image = set_cover(
        slug="starfall", sizes=prepare_cover(buffer.getvalue()), actor=Actor.operator("o")
    )
    public = image.removeprefix("covers/")
    get_blob_store().put("keys/secret.png", b"an image key", content_type="image/png")

    page = api.get(f"/api/covers/{public}/page.webp")
    assert page.status_code == 200 and page.headers["content-type"] == "image/webp"
    assert "immutable" in page.headers["cache-control"]
    assert Image.open(io.BytesIO(page.content)).size == (600, 800)
    detail = api.get("/api/store/products/starfall").json()
    assert detail["cover_url"] == f"/api/covers/{public}/page.webp"
    [hit] = api.get("/api/store/products", params={"q": "starfall"}).json()["items"]
    assert hit["cover_url"] == f"/api/covers/{public}/card.webp"
    # nothing but a cover is reachable here: not an image key, not a path outside
    for name in ("keys/secret.png", f"{public}/full.webp", f"{public}/page.webp/../x"):
        assert api.get(f"/api/covers/{name}").status_code == 404
    escaped = api.get("/api/covers/%2E%2E/%2E%2E/keys/secret.png")
    assert escaped.status_code == 404 and b"an image key" not in escaped.content
