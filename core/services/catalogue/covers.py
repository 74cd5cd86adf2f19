"""Product cover images: uploaded by the owner, checked, resized, kept in the blob store.

- :func:`prepare_cover` checks an upload by its content (JPEG, PNG or WebP as Pillow
  reads it, whatever the file is called), at most :data:`MAX_COVER_BYTES` and
  :data:`MAX_COVER_PIXELS`, at least :data:`MIN_WIDTH` x :data:`MIN_HEIGHT`, and makes
  one WebP per storefront size in :data:`SIZES` (portrait 3:4 like box art, cropped
  around the centre, metadata dropped). A bad upload is :class:`CoverRefused` saying why.
- :func:`set_cover` stores the sizes under a fresh name (``covers/<product id>/<random>/
  <size>.webp``) in the blob store (:mod:`core.blobs`: sealed at rest, local or S3),
  points the product at it (``Product.cover_image``) in an audited transaction, then
  removes the previous cover's blobs. A failure before the commit removes the new blobs
  and leaves the product as it was. :func:`remove_cover` takes the cover off.
- :func:`cover_of` is the one rule of what the storefront shows: the uploaded cover at a
  size (its URL under ``/api/covers/``, width, height and alt text), else the product's
  ``cover_url`` (an URL or data: URI), else nothing. :func:`read_cover` serves the
  bytes of a public cover name to the web layer.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from PIL import Image, ImageOps, UnidentifiedImageError

from core.blobs import BlobNotFound, BlobStore, BlobStoreError, get_blob_store
from core.errors import InvalidInput

log = logging.getLogger(__name__)

MAX_COVER_BYTES: Final = 10 * 1024 * 1024
MAX_COVER_PIXELS: Final = 40_000_000
MIN_WIDTH: Final = 300
MIN_HEIGHT: Final = 400
FORMATS: Final = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
CONTENT_TYPE: Final = "image/webp"
# The sizes the storefront shows, (width, height) in pixels: cards in the catalogue grid
# and the cart, and the product page (about 320 CSS pixels wide, twice that for sharp
# screens).
SIZES: Final[dict[str, tuple[int, int]]] = {"card": (300, 400), "page": (600, 800)}
PREFIX: Final = "covers"
URL_PATH: Final = "/api/covers"
_PUBLIC_NAME: Final = re.compile(r"([0-9]{1,18})/([0-9a-f]{16})/(" + "|".join(SIZES) + r")\.webp")
_IMAGE_NAME: Final = re.compile(PREFIX + r"/[0-9]{1,18}/[0-9a-f]{16}")


class CoverRefused(InvalidInput):
    """The upload is not a cover keyshop takes (type, size, dimensions)."""

    code = "cover_refused"


# -- checking and resizing ----------------------------------------------------------------


def prepare_cover(data: bytes, *, name: str = "the file") -> dict[str, bytes]:
    """Each size of :data:`SIZES` as WebP bytes, from the uploaded ``data``; CoverRefused
    saying what is wrong with it otherwise. ``name`` is how messages call the upload."""
    if not data:
        raise CoverRefused(f"{name} is empty", field="cover")
    if len(data) > MAX_COVER_BYTES:
        raise CoverRefused(
            f"{name} is {len(data):,} bytes; a cover may be at most "
            f"{MAX_COVER_BYTES // (1024 * 1024)} MiB",
            field="cover",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise CoverRefused(
                f"{name} has too many pixels; a cover may have at most {MAX_COVER_PIXELS:,}",
                field="cover",
            ) from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise CoverRefused(
                f"{name} is not a JPEG, PNG or WebP image (judged by its content)",
                field="cover",
            ) from None
        with image:
            width, height = image.size
            if width * height > MAX_COVER_PIXELS:
                raise CoverRefused(
                    f"{name} is {width}x{height} pixels; a cover may have at most "
                    f"{MAX_COVER_PIXELS:,} pixels",
                    field="cover",
                )
            if width < MIN_WIDTH or height < MIN_HEIGHT:
                raise CoverRefused(
                    f"{name} is {width}x{height} pixels; a cover must be at least "
                    f"{MIN_WIDTH}x{MIN_HEIGHT} (portrait 3:4 suits the storefront best)",
                    field="cover",
                )
            kind = FORMATS.get(str(image.format), "JPEG")  # a camera's MPO is a JPEG
            try:
                image.load()
                upright = ImageOps.exif_transpose(image)
            except (OSError, ValueError, SyntaxError):
                raise CoverRefused(
                    f"{name} is a damaged or truncated {kind} image", field="cover"
                ) from None
            try:
                return _sizes(upright)
            except (OSError, ValueError):
                raise CoverRefused(
                    f"{name} is a {kind} image keyshop cannot convert ({upright.mode} pixels); "
                    "save it as 8-bit RGB",
                    field="cover",
                ) from None


def _sizes(image: Image.Image) -> dict[str, bytes]:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale to 8 bits
        image = image.point(lambda v: v / 256).convert("L")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    out: dict[str, bytes] = {}
    for size, box in SIZES.items():
        fitted = ImageOps.fit(image, box, method=Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        fitted.save(buffer, format="WEBP", quality=85, method=4)
        out[size] = buffer.getvalue()
    return out


# -- names ----------------------------------------------------------------------------------


def new_image_name(product_id: int) -> str:
    """A fresh cover name for the product: ``covers/<id>/<16 hex digits>``."""
    return f"{PREFIX}/{product_id}/{secrets.token_hex(8)}"


def blob_names(image: str) -> list[str]:
    """The blobs of the cover ``image`` (one per size)."""
    return [f"{image}/{size}.webp" for size in SIZES]


def public_path(image: str, size: str) -> str:
    """The storefront's URL path of the cover ``image`` at ``size``."""
    return f"{URL_PATH}/{image.removeprefix(PREFIX + '/')}/{size}.webp"


def blob_name_of(public_name: str) -> str | None:
    """The blob behind ``/api/covers/<public_name>``; None for anything that is not a
    cover's name (so the route can never read another blob)."""
    if not isinstance(public_name, str) or not _PUBLIC_NAME.fullmatch(public_name):
        return None
    return f"{PREFIX}/{public_name}"


def read_cover(public_name: str, *, store: BlobStore | None = None) -> bytes:
    """The WebP bytes of a public cover name; BlobNotFound for any other name or a cover
    that is gone."""
    name = blob_name_of(public_name)
    if name is None:
        raise BlobNotFound("no such cover", blob=str(public_name)[:100])
    return (store or get_blob_store()).read(name)[0]


# -- what the storefront shows ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cover:
    """A cover as an ``<img>``: source, intrinsic width and height, alt text."""

    src: str
    width: int
    height: int
    alt: str


def cover_alt(*, title: str, alt: str) -> str:
    """The alt text: the owner's, or one made from the title."""
    return alt.strip() or f"Cover art of {title}"


def cover_of(product: Any, size: str = "card") -> Cover | None:
    """What to show as ``product``'s cover at ``size`` (a Product or a listing row with
    ``cover_image``, ``cover_url``, ``cover_alt`` and ``title``); None: no cover."""
    width, height = SIZES[size]
    alt = cover_alt(title=product.title, alt=product.cover_alt or "")
    if product.cover_image:
        return Cover(public_path(product.cover_image, size), width, height, alt)
    if product.cover_url:
        return Cover(product.cover_url, width, height, alt)
    return None


def cover_src(product: Any, size: str = "card") -> str | None:
    found = cover_of(product, size)
    return found.src if found else None


# -- storing ---------------------------------------------------------------------------------


def store_cover(*, product_id: int, sizes: dict[str, bytes], store: BlobStore) -> str:
    """Put the sizes in the blob store under a fresh name; returns it. On a failure the
    blobs already written are removed before the error goes on."""
    image = new_image_name(product_id)
    written: list[str] = []
    try:
        for size, data in sizes.items():
            written.append(store.put(f"{image}/{size}.webp", data, content_type=CONTENT_TYPE))
    except BaseException:
        delete_cover_blobs(image, store=store, names=written)
        raise
    return image


def delete_cover_blobs(
    image: str | None, *, store: BlobStore, names: list[str] | None = None
) -> None:
    """Remove a cover's blobs (all sizes); a cover name that is not ours is left alone."""
    if not image or not _IMAGE_NAME.fullmatch(image):
        return
    for name in blob_names(image) if names is None else names:
        store.delete(name)


def load_cover_file(path: Path | str) -> dict[str, bytes]:
    """:func:`prepare_cover` of the file at ``path`` (a regular file, checked for size
    before it is read); CoverRefused saying what is wrong."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise CoverRefused(f"{path} is not a regular file", field="cover")
        if info.st_size > MAX_COVER_BYTES:
            raise CoverRefused(
                f"{path.name} is {info.st_size:,} bytes; a cover may be at most "
                f"{MAX_COVER_BYTES // (1024 * 1024)} MiB",
                field="cover",
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise CoverRefused(f"{path}: no such file", field="cover") from None
    except OSError as exc:
        raise CoverRefused(f"{path}: cannot read it ({exc.strerror})", field="cover") from None
    return prepare_cover(data, name=path.name)


def set_cover(
    *,
    slug: str,
    sizes: dict[str, bytes],
    actor: Any,
    file_name: str = "",
    store: BlobStore | None = None,
) -> str:
    """Make ``sizes`` (from :func:`prepare_cover` or :func:`load_cover_file`) the cover
    of product ``slug`` (see the module docstring). Audited as ``product.cover`` with the
    old and new cover names. Owns its transaction; returns the new cover's name."""
    if set(sizes) != set(SIZES):
        raise CoverRefused("a cover needs every storefront size", field="cover")
    blobs = store or get_blob_store()
    from core.db import session_scope
    from core.services.catalogue.products import get_product_by_slug

    with session_scope(write=False) as session:
        product_id = get_product_by_slug(session=session, slug=slug).id
    assert product_id is not None
    image = store_cover(product_id=product_id, sizes=sizes, store=blobs)
    try:
        old = _point_at(slug=slug, image=image, actor=actor, file_name=file_name)
    except BaseException:
        delete_cover_blobs(image, store=blobs)
        raise
    _forget(old, blobs)
    return image


def remove_cover(*, slug: str, actor: Any, store: BlobStore | None = None) -> bool:
    """Take the uploaded cover off product ``slug`` and remove its blobs (audited as
    ``product.cover``). False when it had none."""
    old = _point_at(slug=slug, image=None, actor=actor)
    if old is None:
        return False
    _forget(old, store or get_blob_store())
    return True


def _forget(image: str | None, store: BlobStore) -> None:
    """Remove a replaced cover's blobs once the change is committed. The change stands
    if the store fails now: the blobs left are logged, named, for removal by hand."""
    try:
        delete_cover_blobs(image, store=store)
    except BlobStoreError as exc:
        log.warning("cover %s replaced, but its blobs stay: %s", image, exc.message)


def _point_at(*, slug: str, image: str | None, actor: Any, file_name: str = "") -> str | None:
    """Set the product's cover to ``image`` (clearing ``cover_url``: one cover at a time)
    in one audited transaction; returns the previous uploaded cover's name."""

    from core.db import session_scope
    from core.errors import UnknownProduct
    from core.models import utcnow
    from core.services.audit import record_audit
    from core.services.locking import lock_product_by_slug

    with session_scope() as session:
        # Locked: two uploads at once each remove the cover the other replaced.
        product = lock_product_by_slug(session, slug)
        if product is None:
            raise UnknownProduct(f"no product with slug {slug!r}", slug=slug)
        old = product.cover_image
        if old is None and image is None:
            return None
        product.cover_image = image
        if image is not None:
            product.cover_url = None
        product.updated_at = utcnow()
        session.add(product)
        assert product.id is not None
        record_audit(
            session=session,
            actor=actor,
            action="product.cover",
            object_type="product",
            object_id=product.id,
            data={"slug": slug, "before": old, "after": image, "file": file_name[:200]},
        )
    return old


# -- a provider's picture, copied in ----------------------------------------------------------

FETCH_TIMEOUT_SECONDS: Final = 10.0
MAX_REDIRECTS: Final = 3


def fetch_cover(url: str, *, client: Any = None) -> dict[str, bytes]:
    """:func:`prepare_cover` of the picture at ``url``: https only (redirects too, at
    most :data:`MAX_REDIRECTS`), at most :data:`MAX_COVER_BYTES` read, within
    :data:`FETCH_TIMEOUT_SECONDS`. CoverRefused saying what went wrong."""
    import httpx

    from core.providers.base import cover_url_or_none

    own = client is None
    http = client or httpx.Client(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            checked = cover_url_or_none(url)
            if checked is None:
                raise CoverRefused(f"{url[:200]} is not an https address", field="cover")
            host = httpx.URL(checked).host
            try:
                with http.stream("GET", checked, headers={"Accept": "image/*"}) as answer:
                    if answer.is_redirect and "location" in answer.headers:
                        url = str(answer.url.join(answer.headers["location"]))
                        continue
                    if answer.status_code != 200:
                        raise CoverRefused(
                            f"the picture at {host} answered HTTP {answer.status_code}",
                            field="cover",
                        )
                    data = bytearray()
                    for chunk in answer.iter_bytes():
                        data += chunk
                        if len(data) > MAX_COVER_BYTES:
                            raise CoverRefused(
                                f"the picture at {host} is larger than "
                                f"{MAX_COVER_BYTES // (1024 * 1024)} MiB",
                                field="cover",
                            )
            except httpx.HTTPError as exc:
                raise CoverRefused(
                    f"the picture at {host} could not be fetched ({type(exc).__name__})",
                    field="cover",
                ) from None
            return prepare_cover(bytes(data), name=f"the picture at {host}")
        raise CoverRefused(f"the picture at {url[:200]} redirects too often", field="cover")
    finally:
        if own:
            http.close()


def copy_linked_cover(
    *, slug: str, actor: Any, client: Any = None, store: BlobStore | None = None
) -> str | None:
    """Copy the picture product ``slug`` links to (``cover_url``, e.g. its provider's)
    into the blob store as its uploaded cover, so the storefront serves it itself, in
    its sizes, and customers' browsers never ask the provider. Returns what happened
    in words (None: the product links to no picture); on any failure the link stays
    as it was."""
    from core.db import session_scope
    from core.services.catalogue.products import get_product_by_slug

    with session_scope(write=False) as session:
        url = get_product_by_slug(session=session, slug=slug).cover_url
    if not url or url.startswith("data:"):
        return None
    try:
        sizes = fetch_cover(url, client=client)
        set_cover(slug=slug, sizes=sizes, actor=actor, file_name=url[:200], store=store)
    except (CoverRefused, BlobStoreError) as exc:
        return f"cover left linked: {exc.message}"
    return "cover copied into the shop"
