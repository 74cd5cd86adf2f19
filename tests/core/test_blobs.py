"""Blob store: sealed at rest, safe names, signed expiring links; S3 against a real
S3-compatible server (moto in server mode on loopback)."""

from __future__ import annotations

import shutil
import stat
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from core.blobs import (
    MAGIC,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    LocalBlobStore,
    S3BlobStore,
    get_blob_store,
)
from core.config import Settings
from core.crypto import get_vault
from core.errors import InvalidInput, KeyDecryptionError
from core.signing import InvalidToken, make_token
from tests.support.s3 import moto_server, s3_blob_store

PUBLIC = "https://shop.example"
SECRET_CODE = b"ABCDE-FGHIJ-KLMNO"
IMAGE = b"\x89PNG\r\n\x1a\n" + b"\x00IHDR" + SECRET_CODE + bytes(range(256)) * 4

BAD_NAMES = [
    "",
    "../escape.png",
    "a/../../escape.png",
    "/etc/passwd",
    "a\\b.png",
    "..\\escape.png",
    "a\x00b.png",
    "a//b.png",
    "a/./b.png",
    ".hidden",
    "keys/",
    "k" * 600,
    "ключ.png",
]


@pytest.fixture
def store(tmp_path: Path, test_settings: Settings) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", PUBLIC)


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


# -- local store ------------------------------------------------------------------------------


def test_local_round_trip_and_link(store: LocalBlobStore) -> None:
    assert isinstance(store, BlobStore)
    assert store.put("orders/KS-AB12/line-1.png", IMAGE, content_type="image/png") == (
        "orders/KS-AB12/line-1.png"
    )
    assert store.get("orders/KS-AB12/line-1.png") == IMAGE
    assert store.read("orders/KS-AB12/line-1.png") == (IMAGE, "image/png")

    url = store.link("orders/KS-AB12/line-1.png")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://shop.example/api/blobs/orders/KS-AB12/line-1.png"
    )
    assert store.open_link("orders/KS-AB12/line-1.png", token_of(url)) == (IMAGE, "image/png")

    # Overwrite, then delete (twice: deleting a missing blob is fine).
    store.put("orders/KS-AB12/line-1.png", b"GIF89a", content_type="image/gif")
    assert store.read("orders/KS-AB12/line-1.png") == (b"GIF89a", "image/gif")
    store.delete("orders/KS-AB12/line-1.png")
    store.delete("orders/KS-AB12/line-1.png")
    with pytest.raises(BlobNotFound):
        store.get("orders/KS-AB12/line-1.png")


def test_default_link_lives_fifteen_minutes(store: LocalBlobStore, test_settings: Settings) -> None:
    assert test_settings.blob_link_seconds == 900
    store.put("a.png", IMAGE, content_type="image/png")
    before = time.time()
    expires = int(token_of(store.link("a.png")).split(".")[1])
    assert before + 900 - 1 <= expires <= time.time() + 900
    expires = int(token_of(store.link("a.png", ttl_seconds=60)).split(".")[1])
    assert expires <= time.time() + 60
    with pytest.raises(InvalidInput):
        store.link("a.png", ttl_seconds=0)


def test_files_on_disk_hold_no_plaintext(store: LocalBlobStore) -> None:
    store.put("keys/one.png", IMAGE, content_type="image/png")
    files = [p for p in store.folder.rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["one.png"]  # no temporary files left behind
    raw = files[0].read_bytes()
    assert raw.startswith(MAGIC)
    assert struct.unpack(">H", raw[4:6])[0] == get_vault().active_id
    assert SECRET_CODE not in raw and b"PNG" not in raw and b"image/png" not in raw
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700


def test_tampered_expired_and_foreign_tokens_are_refused(store: LocalBlobStore) -> None:
    store.put("mine.png", IMAGE, content_type="image/png")
    store.put("theirs.png", b"other", content_type="image/png")
    good = token_of(store.link("mine.png"))

    payload, expires, mac = good.split(".")
    tampered = [
        f"{payload}.{expires}.{mac[:-2]}{'A' if mac[-2] != 'A' else 'B'}{mac[-1]}",
        f"{payload}.{int(expires) + 3600}.{mac}",
        "garbage",
        "",
    ]
    for token in tampered:
        with pytest.raises(InvalidToken):
            store.open_link("mine.png", token)

    expired = make_token("blob", "mine.png", ttl_seconds=900, now=time.time() - 901)
    with pytest.raises(InvalidToken, match="expired"):
        store.open_link("mine.png", expired)

    # A valid token for one blob opens no other.
    with pytest.raises(InvalidToken):
        store.open_link("theirs.png", good)
    # Nor does a token made for another purpose.
    with pytest.raises(InvalidToken):
        store.open_link("mine.png", make_token("portal", "mine.png", ttl_seconds=900))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_names_are_refused(store: LocalBlobStore, name: str) -> None:
    with pytest.raises(InvalidInput):
        store.put(name, IMAGE, content_type="image/png")
    for call in (store.get, store.delete, store.link):
        with pytest.raises(InvalidInput):
            call(name)
    assert not (store.folder.parent / "escape.png").exists()


@pytest.mark.parametrize("content_type", ["", "png", "image/png\r\nX-Evil: 1", "text/ html"])
def test_bad_content_types_are_refused(store: LocalBlobStore, content_type: str) -> None:
    with pytest.raises(InvalidInput):
        store.put("a.png", IMAGE, content_type=content_type)


def test_a_blob_moved_to_another_name_fails_to_decrypt(store: LocalBlobStore) -> None:
    store.put("orders/A/key.png", IMAGE, content_type="image/png")
    store.put("orders/B/key.png", b"b", content_type="image/png")
    shutil.copyfile(store.path_of("orders/A/key.png"), store.path_of("orders/B/key.png"))
    with pytest.raises(KeyDecryptionError):
        store.get("orders/B/key.png")

    raw = bytearray(store.path_of("orders/A/key.png").read_bytes())
    raw[-1] ^= 1
    store.path_of("orders/A/key.png").write_bytes(bytes(raw))
    with pytest.raises(KeyDecryptionError) as info:
        store.get("orders/A/key.png")
    assert SECRET_CODE.decode() not in str(info.value)

    store.path_of("orders/A/key.png").write_bytes(IMAGE)  # a plaintext file dropped in
    with pytest.raises(KeyDecryptionError):
        store.get("orders/A/key.png")


def test_get_blob_store_follows_settings(test_settings: Settings) -> None:
    local = get_blob_store(test_settings)
    assert isinstance(local, LocalBlobStore) and local.folder == test_settings.blob_dir
    s3 = get_blob_store(
        test_settings.model_copy(
            update={"blob_store": "s3", "s3_bucket": "b", "s3_endpoint_url": "http://127.0.0.1:9"}
        )
    )
    assert isinstance(s3, S3BlobStore) and s3.bucket == "b" and s3.link_seconds == 900


# -- S3 against moto's server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    yield from moto_server()


@pytest.fixture
def s3_store(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, test_settings: Settings
) -> S3BlobStore:
    store: S3BlobStore = s3_blob_store(moto_endpoint, monkeypatch, tmp_path)
    return store


def raw_object(store: S3BlobStore, name: str) -> dict[str, Any]:
    return store.client.get_object(Bucket=store.bucket, Key=name)  # type: ignore[no-any-return]


def test_s3_round_trip_sealed_and_server_side_encrypted(s3_store: S3BlobStore) -> None:
    assert isinstance(s3_store, BlobStore)
    name = "orders/KS-AB12/line-1.png"
    assert s3_store.put(name, IMAGE, content_type="image/png") == name
    assert s3_store.get(name) == IMAGE
    assert s3_store.read(name) == (IMAGE, "image/png")

    obj = raw_object(s3_store, name)
    body = obj["Body"].read()
    assert body.startswith(MAGIC) and SECRET_CODE not in body and b"PNG" not in body
    assert obj["ServerSideEncryption"] == "AES256"
    assert obj["Metadata"]["content-type"] == "image/png"

    url = s3_store.link(name)
    assert url.startswith(f"{PUBLIC}/api/blobs/{name}?token=")
    assert s3_store.open_link(name, token_of(url)) == (IMAGE, "image/png")
    with pytest.raises(InvalidToken):
        s3_store.open_link("orders/KS-AB12/line-2.png", token_of(url))

    s3_store.delete(name)
    s3_store.delete(name)
    with pytest.raises(BlobNotFound):
        s3_store.get(name)


def test_s3_presigned_url_serves_only_the_sealed_object_for_fifteen_minutes(
    s3_store: S3BlobStore,
) -> None:
    s3_store.put("keys/one.png", IMAGE, content_type="image/png")
    stored = raw_object(s3_store, "keys/one.png")["Body"].read()

    url = s3_store.presigned_url("keys/one.png")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == stored
    assert SECRET_CODE not in response.content and response.content != IMAGE

    short = s3_store.presigned_url("keys/one.png", ttl_seconds=5)
    assert parse_qs(urlsplit(short).query)["X-Amz-Expires"] == ["5"]


def test_s3_object_copied_to_another_name_fails_to_decrypt(s3_store: S3BlobStore) -> None:
    s3_store.put("orders/A/key.png", IMAGE, content_type="image/png")
    s3_store.client.copy_object(
        Bucket=s3_store.bucket,
        Key="orders/B/key.png",
        CopySource={"Bucket": s3_store.bucket, "Key": "orders/A/key.png"},
    )
    with pytest.raises(KeyDecryptionError):
        s3_store.get("orders/B/key.png")
    with pytest.raises(InvalidInput):
        s3_store.put("../escape.png", IMAGE, content_type="image/png")


def test_s3_missing_bucket_is_a_store_error(s3_store: S3BlobStore) -> None:
    other = S3BlobStore(
        "no-such-bucket-here", s3_store.endpoint_url, "us-east-1", public_url=PUBLIC
    )
    with pytest.raises(BlobStoreError, match="NoSuchBucket"):
        other.put("a.png", IMAGE, content_type="image/png")
    with pytest.raises(BlobStoreError):
        other.get("a.png")
