"""Product covers: checked by content, resized to the storefront's sizes, kept sealed in
the blob store (a real S3-compatible server here), replaced without leaving old blobs,
shown with width, height and alt text."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select

from core.blobs import MAGIC, BlobNotFound, LocalBlobStore
from core.errors import UnknownProduct
from core.models import AuditEvent, Product
from core.services.audit import Actor
from core.services.catalogue import covers
from core.services.catalogue.covers import (
    SIZES,
    CoverRefused,
    cover_of,
    load_cover_file,
    prepare_cover,
    read_cover,
    remove_cover,
    set_cover,
)
from tests.factories import fresh, make_product
from tests.support.s3 import moto_server, object_names, s3_blob_store

OWNER = Actor.operator("owner")


def image_bytes(size: tuple[int, int], fmt: str = "PNG", mode: str = "RGB", **save) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "navy" if mode in ("RGB", "CMYK") else 0).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def noisy_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((600, 800), 100).convert("RGB").save(buffer, format="JPEG", quality=95)
    assert len(buffer.getvalue()) > 40_000
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    yield from moto_server()


@pytest.fixture
def s3(moto_endpoint, monkeypatch, tmp_path, test_settings):
    return s3_blob_store(moto_endpoint, monkeypatch, tmp_path)


# -- checking and resizing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "fmt", "mode"),
    [
        ((900, 1200), "PNG", "RGB"),
        ((1600, 900), "JPEG", "RGB"),
        ((600, 800), "WEBP", "RGBA"),
        ((300, 400), "JPEG", "CMYK"),
        ((300, 400), "PNG", "I;16"),
        ((300, 400), "PNG", "P"),
    ],
)
def test_every_storefront_size_is_made_as_webp(size, fmt, mode) -> None:
    sizes = prepare_cover(image_bytes(size, fmt, mode))

    assert set(sizes) == set(SIZES)
    for name, data in sizes.items():
        image = opened(data)
        assert (image.format, image.size) == ("WEBP", SIZES[name])


def test_the_type_is_judged_by_content_not_by_name(tmp_path) -> None:
    disguised = tmp_path / "cover.png"
    disguised.write_text("<svg onload=alert(1)>not an image</svg>")
    with pytest.raises(CoverRefused, match="not a JPEG, PNG or WebP image"):
        load_cover_file(disguised)
    jpeg_named_txt = tmp_path / "cover.txt"
    jpeg_named_txt.write_bytes(image_bytes((300, 400), "JPEG"))
    assert set(load_cover_file(jpeg_named_txt)) == set(SIZES)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (image_bytes((300, 400), "GIF", "P"), "not a JPEG, PNG or WebP"),
        (image_bytes((200, 400)), "200x400 pixels; a cover must be at least 300x400"),
        (image_bytes((8000, 6000), "PNG", "1"), "a cover may have at most 40,000,000 pixels"),
        (noisy_jpeg()[:20_000], "damaged or truncated"),
        (b"\xff" * (covers.MAX_COVER_BYTES + 1), "a cover may be at most 10 MiB"),
    ],
    ids=["empty", "gif", "too-small", "too-many-pixels", "truncated", "too-large"],
)
def test_bad_uploads_are_refused_saying_why(data, message) -> None:
    with pytest.raises(CoverRefused) as caught:
        prepare_cover(data, name="box.png")
    assert message in caught.value.message and caught.value.data["field"] == "cover"


def test_a_missing_or_special_file_is_refused(tmp_path) -> None:
    with pytest.raises(CoverRefused, match="no such file"):
        load_cover_file(tmp_path / "nothing.png")
    with pytest.raises(CoverRefused, match="not a regular file"):
        load_cover_file(tmp_path)


# -- storing in S3, replacing, removing ----------------------------------------------------


def test_upload_stores_sealed_sizes_in_s3_and_replacing_removes_the_old(session, s3) -> None:
    product = make_product(session, slug="starfall", title="Starfall", cover_url="https://x/c.png")

    first = set_cover(
        slug="starfall",
        sizes=prepare_cover(image_bytes((900, 1200))),
        actor=OWNER,
        file_name="box.png",
        store=s3,
    )

    assert first.startswith(f"covers/{product.id}/")
    assert object_names(s3) == [f"{first}/card.webp", f"{first}/page.webp"]
    raw = s3.client.get_object(Bucket=s3.bucket, Key=f"{first}/card.webp")["Body"].read()
    assert raw.startswith(MAGIC)  # sealed at rest, like every blob
    public = first.removeprefix("covers/")
    assert opened(read_cover(f"{public}/page.webp", store=s3)).size == SIZES["page"]
    stored = fresh(session).get(Product, product.id)
    assert (stored.cover_image, stored.cover_url) == (first, None)

    second = set_cover(
        slug="starfall", sizes=prepare_cover(image_bytes((600, 800))), actor=OWNER, store=s3
    )

    assert second != first
    assert object_names(s3) == [f"{second}/card.webp", f"{second}/page.webp"]
    with pytest.raises(BlobNotFound):
        read_cover(f"{public}/card.webp", store=s3)
    events = list(
        fresh(session).exec(select(AuditEvent).where(AuditEvent.action == "product.cover"))
    )
    assert [(e.data["before"], e.data["after"]) for e in events] == [
        (None, first),
        (first, second),
    ]

    assert remove_cover(slug="starfall", actor=OWNER, store=s3)
    assert object_names(s3) == []
    assert fresh(session).get(Product, product.id).cover_image is None
    assert not remove_cover(slug="starfall", actor=OWNER, store=s3)


def test_a_failure_before_the_commit_leaves_no_blobs_and_no_change(
    session, s3, monkeypatch
) -> None:
    make_product(session, slug="starfall")
    old = set_cover(
        slug="starfall", sizes=prepare_cover(image_bytes((300, 400))), actor=OWNER, store=s3
    )

    def broken(**kwargs):
        raise UnknownProduct("gone meanwhile", slug="starfall")

    monkeypatch.setattr(covers, "_point_at", broken)
    with pytest.raises(UnknownProduct):
        set_cover(
            slug="starfall", sizes=prepare_cover(image_bytes((300, 400))), actor=OWNER, store=s3
        )

    assert object_names(s3) == [f"{old}/card.webp", f"{old}/page.webp"]
    assert fresh(session).exec(select(Product)).one().cover_image == old


def test_an_unknown_product_stores_nothing(session, s3) -> None:
    with pytest.raises(UnknownProduct):
        set_cover(slug="nope", sizes=prepare_cover(image_bytes((300, 400))), actor=OWNER, store=s3)
    assert object_names(s3) == []


@pytest.mark.parametrize(
    "name",
    [
        "../keys/a.png",
        "keys/a.png",
        "1/0123456789abcdef/full.webp",
        "1/0123456789ABCDEF/card.webp",
        "1/0123456789abcdef/card.png",
        "x/0123456789abcdef/card.webp",
    ],
)
def test_only_cover_names_are_served(name, tmp_path, test_settings) -> None:
    store = LocalBlobStore(tmp_path, "https://shop.example")
    store.put("keys/a.png", b"secret key image", content_type="image/png")
    with pytest.raises(BlobNotFound):
        read_cover(name, store=store)


# -- what the storefront shows ---------------------------------------------------------------


def test_the_cover_shown_has_its_size_and_alt_text(session) -> None:
    plain = make_product(session, slug="plain", title="Plain", cover_url=None)
    linked = make_product(session, slug="linked", title="Linked", cover_url="https://x/c.png")
    uploaded = make_product(session, slug="up", title="Up", cover_alt="A red ship over a moon")
    uploaded.cover_image = f"covers/{uploaded.id}/0123456789abcdef"

    assert cover_of(plain) is None
    shown = cover_of(linked, "page")
    assert (shown.src, shown.width, shown.height, shown.alt) == (
        "https://x/c.png",
        600,
        800,
        "Cover art of Linked",
    )
    card = cover_of(uploaded, "card")
    assert (card.src, card.width, card.height, card.alt) == (
        f"/api/covers/{uploaded.id}/0123456789abcdef/card.webp",
        300,
        400,
        "A red ship over a moon",
    )


def test_cards_and_the_product_page_carry_the_uploaded_cover(session, tmp_path) -> None:
    from core.services.catalogue import search_products
    from core.services.storefront import product_detail
    from web.state.format import product_card

    make_product(session, slug="starfall", title="Starfall")
    image = set_cover(slug="starfall", sizes=prepare_cover(image_bytes((300, 400))), actor=OWNER)
    public = image.removeprefix("covers/")

    [hit] = search_products(session=fresh(session), query="starfall").items
    card = product_card(hit)
    assert (card["cover_url"], card["cover_width"], card["cover_height"]) == (
        f"/api/covers/{public}/card.webp",
        "300",
        "400",
    )
    assert card["cover_alt"] == "Cover art of Starfall"
    detail = product_detail(session=fresh(session), slug="starfall")
    assert detail.cover is not None and detail.cover.src == f"/api/covers/{public}/page.webp"
    assert opened(read_cover(f"{public}/page.webp")).size == (600, 800)


def test_upload_to_the_default_local_store_keeps_no_old_files(session, test_settings) -> None:
    make_product(session, slug="starfall")
    first = set_cover(slug="starfall", sizes=prepare_cover(image_bytes((300, 400))), actor=OWNER)
    second = set_cover(slug="starfall", sizes=prepare_cover(image_bytes((300, 400))), actor=OWNER)
    folder = Path(test_settings.blob_dir)
    assert not [p for p in (folder / first).glob("*") if p.is_file()]
    assert sorted(p.name for p in (folder / second).iterdir()) == ["card.webp", "page.webp"]


def test_a_store_failing_after_the_commit_keeps_the_new_cover(session, s3, monkeypatch) -> None:
    from core.blobs import BlobStoreError

    make_product(session, slug="starfall")
    old = set_cover(
        slug="starfall", sizes=prepare_cover(image_bytes((300, 400))), actor=OWNER, store=s3
    )

    def down(name: str) -> None:
        raise BlobStoreError("S3 delete_object failed: ServiceUnavailable", blob=name)

    monkeypatch.setattr(s3, "delete", down)
    new = set_cover(
        slug="starfall", sizes=prepare_cover(image_bytes((300, 400))), actor=OWNER, store=s3
    )

    assert fresh(session).exec(select(Product)).one().cover_image == new
    # the old blobs stay (logged), the new ones are all there
    assert object_names(s3) == sorted(
        [f"{old}/card.webp", f"{old}/page.webp", f"{new}/card.webp", f"{new}/page.webp"]
    )


# -- a provider's picture, copied in ----------------------------------------------------------


def picture_server(routes: dict[str, object]):
    """An httpx client whose answers come from ``routes`` (URL → bytes, status, a
    redirect target, or an exception to raise); every request is recorded."""
    import httpx

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        seen.append(url)
        answer = routes.get(url, 404)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, bytes):
            return httpx.Response(200, content=answer, headers={"Content-Type": "image/jpeg"})
        if isinstance(answer, str):
            return httpx.Response(302, headers={"Location": answer})
        return httpx.Response(int(answer))

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def test_a_provider_picture_is_fetched_over_https_only() -> None:
    import httpx

    jpeg = image_bytes((600, 800), "JPEG")
    client, seen = picture_server(
        {
            "https://cdn.example/a.jpg": jpeg,
            "https://cdn.example/moved.jpg": "/a.jpg",
            "https://cdn.example/downgrade.jpg": "http://cdn.example/a.jpg",
            "https://cdn.example/big.jpg": b"\xff" * (covers.MAX_COVER_BYTES + 1),
            "https://cdn.example/loop.jpg": "https://cdn.example/loop.jpg",
            "https://down.example/a.jpg": httpx.ConnectError("refused"),
        }
    )

    assert set(covers.fetch_cover("https://cdn.example/moved.jpg", client=client)) == set(SIZES)
    assert seen == ["https://cdn.example/moved.jpg", "https://cdn.example/a.jpg"]
    for url, message in [
        ("http://cdn.example/a.jpg", "not an https address"),
        ("https://cdn.example/downgrade.jpg", "not an https address"),
        ("https://cdn.example/gone.jpg", "answered HTTP 404"),
        ("https://cdn.example/big.jpg", "larger than 10 MiB"),
        ("https://cdn.example/loop.jpg", "redirects too often"),
        ("https://down.example/a.jpg", "could not be fetched (ConnectError)"),
    ]:
        with pytest.raises(CoverRefused) as caught:
            covers.fetch_cover(url, client=client)
        assert message in caught.value.message, url
    assert "http://cdn.example/a.jpg" not in seen


def test_a_linked_cover_is_copied_into_the_store_or_left_linked(session, s3) -> None:
    make_product(session, slug="linked", cover_url="https://cdn.example/a.jpg")
    make_product(session, slug="broken", cover_url="https://cdn.example/gone.jpg")
    make_product(session, slug="plain")
    client, _ = picture_server({"https://cdn.example/a.jpg": image_bytes((600, 800), "JPEG")})

    said = covers.copy_linked_cover(slug="linked", actor=OWNER, client=client, store=s3)

    assert said == "cover copied into the shop"
    products = {p.slug: p for p in fresh(session).exec(select(Product))}
    assert products["linked"].cover_url is None
    assert object_names(s3) == [
        f"{products['linked'].cover_image}/card.webp",
        f"{products['linked'].cover_image}/page.webp",
    ]
    said = covers.copy_linked_cover(slug="broken", actor=OWNER, client=client, store=s3)
    assert said == "cover left linked: the picture at cdn.example answered HTTP 404"
    broken = fresh(session).exec(select(Product).where(Product.slug == "broken")).one()
    assert (broken.cover_url, broken.cover_image) == ("https://cdn.example/gone.jpg", None)
    assert covers.copy_linked_cover(slug="plain", actor=OWNER, client=client, store=s3) is None
