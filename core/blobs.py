"""Blob store for image keys (and exports): encrypted at rest, handed out by short links.

Both wholesale providers can deliver a key as an image. An image key is a key, so it is
never stored in plaintext (DESIGN §4 invariant 5):

- Before it is stored a blob is sealed with AES-256-GCM under the vault's active keyring
  entry (:func:`core.crypto.get_vault`). The associated data is
  ``uuid5(BLOB_NAMESPACE, name)``, so a blob copied or renamed to another name fails to
  decrypt. The content type travels inside the ciphertext, so it is authenticated too.
  Sealed layout: ``b"KSB1" | key_version (u16, big-endian) | nonce+ciphertext+tag`` of
  ``len(content_type) (u16) | content_type | data``. Older keyring entries keep
  decrypting; re-``put`` a blob to move it onto the active entry.
- Names are relative paths of ``[A-Za-z0-9._-]`` segments joined by ``/``
  (``orders/KS-1234/line-1.png``); ``..``, absolute paths, backslashes, NUL and hidden
  segments are refused with :class:`core.errors.InvalidInput`.

Two stores, one behaviour:

- :class:`LocalBlobStore` (embedded default): files under ``var/blobs/`` (folders 0700,
  files 0600), written atomically (temporary file in the same folder, then
  ``os.replace``).
- :class:`S3BlobStore` (production): any S3-compatible service through boto3. Objects
  are the *sealed* bytes, and S3 server-side encryption (``AES256``) is requested on top.

Links. The owner of an image key gets :meth:`link`: our own URL
``{public_url}/api/blobs/{name}?token=…`` with a signed token
(:func:`core.signing.make_token`, purpose ``blob``) that expires after
``KEYSHOP_BLOB_LINK_SECONDS`` (900 s, 15 minutes, by default). The web layer passes name
and token to :meth:`open_link`, which checks the token and decrypts. This holds for S3 as
well: a presigned S3 URL can only serve the bytes as stored, which are ciphertext, so a
presigned link cannot deliver the image to a browser without either storing plaintext
(breaking the invariant) or shipping a decryption key to the browser. S3 therefore keeps
presigned 15-minute links for what they are good at — handing the *encrypted* object to
operators and tools (backups, exports, moving data): :meth:`S3BlobStore.presigned_url`.
Both stores' :meth:`link` share the same signed-token scheme, so the web layer has one
route for both.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import uuid
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from core.config import Settings, get_settings
from core.crypto import get_vault
from core.errors import ConfigError, DomainError, InvalidInput, KeyDecryptionError, NotFound
from core.signing import InvalidToken, check_token, make_token

# Fixed forever: changing it would make every stored blob undecryptable.
BLOB_NAMESPACE = uuid.UUID("5b1f0c8e-6c0e-4f5e-9a57-6b65797368b0")
MAGIC = b"KSB1"
TOKEN_PURPOSE = "blob"  # noqa: S105 (a signing purpose label, not a secret)
MAX_BLOB_BYTES = 16 * 1024 * 1024
MAX_NAME_LENGTH = 512
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*(;[ -~]*)?", re.I)


class BlobNotFound(NotFound):
    code = "blob_not_found"


class BlobStoreError(DomainError):
    """The storage backend failed (unreachable, access denied, …)."""

    code = "blob_store_error"
    http_status = 502


@runtime_checkable
class BlobStore(Protocol):
    def put(self, name: str, data: bytes, *, content_type: str) -> str: ...

    def get(self, name: str) -> bytes: ...

    def delete(self, name: str) -> None: ...

    def link(self, name: str, *, ttl_seconds: int | None = None) -> str: ...

    def read(self, name: str) -> tuple[bytes, str]: ...

    def open_link(self, name: str, token: str) -> tuple[bytes, str]: ...


# -- names and sealing ----------------------------------------------------------------------


def check_name(name: str) -> str:
    """``name`` if it is a safe relative blob name; InvalidInput otherwise."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput("a blob name must be 1 to 512 characters", field="name")
    if "\x00" in name or "\\" in name or name.startswith("/"):
        raise InvalidInput("a blob name must be a relative path with / separators", field="name")
    for segment in name.split("/"):
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            raise InvalidInput(
                "a blob name is made of letters, digits, '.', '_' and '-' segments joined by "
                "'/', none empty, none starting with '.'",
                field="name",
            )
    return name


def check_content_type(content_type: str) -> str:
    if (
        not isinstance(content_type, str)
        or len(content_type) > 200
        or not _CONTENT_TYPE.fullmatch(content_type)
    ):
        raise InvalidInput("content_type must look like type/subtype", field="content_type")
    return content_type


def blob_row_id(name: str) -> uuid.UUID:
    """The UUID bound as associated data for ``name``."""
    return uuid.uuid5(BLOB_NAMESPACE, name)


def seal(name: str, data: bytes, content_type: str) -> bytes:
    ct = content_type.encode("ascii")
    version, blob = get_vault().encrypt(
        struct.pack(">H", len(ct)) + ct + bytes(data), row_id=blob_row_id(name)
    )
    return MAGIC + struct.pack(">H", version) + blob


def unseal(name: str, sealed: bytes) -> tuple[bytes, str]:
    """(data, content type); KeyDecryptionError if the bytes are not ``name``'s blob."""
    if len(sealed) < len(MAGIC) + 2 or not sealed.startswith(MAGIC):
        raise KeyDecryptionError(f"blob {name} is not a sealed keyshop blob", blob=name)
    (version,) = struct.unpack(">H", sealed[len(MAGIC) : len(MAGIC) + 2])
    try:
        plain = get_vault().decrypt(
            sealed[len(MAGIC) + 2 :], key_version=version, row_id=blob_row_id(name)
        )
    except KeyDecryptionError:
        raise KeyDecryptionError(
            f"blob {name} failed authentication (tampered, or not this name's blob)", blob=name
        ) from None
    (ct_len,) = struct.unpack(">H", plain[:2])
    return plain[2 + ct_len :], plain[2 : 2 + ct_len].decode("ascii")


class _SealedStore:
    """What both stores share: sealing, links, opening links. Subclasses move bytes."""

    public_url: str
    link_seconds: int | None = None

    def _ttl(self, ttl_seconds: int | None) -> int:
        if ttl_seconds is not None:
            ttl = ttl_seconds
        elif self.link_seconds is not None:
            ttl = self.link_seconds
        else:
            ttl = get_settings().blob_link_seconds
        if ttl <= 0:
            raise InvalidInput("ttl_seconds must be positive", field="ttl_seconds")
        return ttl

    def _write(self, name: str, sealed: bytes, content_type: str) -> None:
        raise NotImplementedError

    def _read(self, name: str) -> bytes:
        raise NotImplementedError

    def put(self, name: str, data: bytes, *, content_type: str) -> str:
        check_name(name)
        check_content_type(content_type)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput("blob data must be bytes", field="data")
        if len(data) > MAX_BLOB_BYTES:
            raise InvalidInput(
                f"a blob may be at most {MAX_BLOB_BYTES} bytes, got {len(data)}", field="data"
            )
        self._write(name, seal(name, bytes(data), content_type), content_type)
        return name

    def read(self, name: str) -> tuple[bytes, str]:
        """(data, content type)."""
        return unseal(name, self._read(check_name(name)))

    def get(self, name: str) -> bytes:
        return self.read(name)[0]

    def link(self, name: str, *, ttl_seconds: int | None = None) -> str:
        """Our own short-lived URL for the owner; see the module docstring."""
        check_name(name)
        ttl = self._ttl(ttl_seconds)
        token = make_token(TOKEN_PURPOSE, name, ttl_seconds=ttl)
        return f"{self.public_url}/api/blobs/{quote(name, safe='/')}?token={token}"

    def open_link(self, name: str, token: str) -> tuple[bytes, str]:
        """(data, content type) for a link made by :meth:`link`; InvalidToken if the token
        is tampered, expired or made for another name."""
        if check_token(TOKEN_PURPOSE, token) != name:
            raise InvalidToken("this link is not valid")
        return self.read(name)


# -- local folder ---------------------------------------------------------------------------


class LocalBlobStore(_SealedStore):
    def __init__(
        self, folder: Path | str, public_url: str, *, link_seconds: int | None = None
    ) -> None:
        self.folder = Path(folder)
        self.public_url = public_url.rstrip("/")
        self.link_seconds = link_seconds

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.folder)!r})"

    def path_of(self, name: str) -> Path:
        path = self.folder / check_name(name)
        # check_name already forbids escaping; this guards against symlinked folders.
        if not path.resolve().is_relative_to(self.folder.resolve()):
            raise InvalidInput("a blob name must stay inside the blob folder", field="name")
        return path

    def _write(self, name: str, sealed: bytes, content_type: str) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path_of(name)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(sealed)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise BlobStoreError(
                f"could not write blob {name}: {exc.strerror or type(exc).__name__}", blob=name
            ) from None

    def _read(self, name: str) -> bytes:
        try:
            return self.path_of(name).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFound(f"no blob named {name}", blob=name) from None
        except OSError as exc:
            raise BlobStoreError(
                f"could not read blob {name}: {exc.strerror or type(exc).__name__}", blob=name
            ) from None

    def delete(self, name: str) -> None:
        """Removes the blob; deleting a missing blob is not an error."""
        try:
            self.path_of(name).unlink(missing_ok=True)
        except IsADirectoryError:
            pass
        except OSError as exc:
            raise BlobStoreError(
                f"could not delete blob {name}: {exc.strerror or type(exc).__name__}", blob=name
            ) from None


# -- S3-compatible ---------------------------------------------------------------------------


class S3BlobStore(_SealedStore):
    """Sealed objects in an S3 bucket (AWS, MinIO, R2, …).

    ``client`` may be given (tests, custom sessions); otherwise one is built from the
    standard AWS credential chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a
    profile, an instance role).
    """

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        *,
        public_url: str | None = None,
        link_seconds: int | None = None,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise InvalidInput("S3_BUCKET is required for the S3 blob store", field="bucket")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.link_seconds = link_seconds
        self.public_url = (public_url or get_settings().public_url).rstrip("/")
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                config=Config(
                    signature_version="s3v4",
                    connect_timeout=5,
                    read_timeout=30,
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
        self.client = client

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"

    def _call(self, what: str, name: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, what)(Bucket=self.bucket, Key=name, **params)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise BlobNotFound(f"no blob named {name}", blob=name) from None
            raise BlobStoreError(
                f"S3 {what} of blob {name} in bucket {self.bucket} failed: {code or 'error'}",
                blob=name,
                s3_code=code,
            ) from None
        except BotoCoreError as exc:
            raise BlobStoreError(
                f"S3 {what} of blob {name} in bucket {self.bucket} failed: {type(exc).__name__}",
                blob=name,
            ) from None

    def _write(self, name: str, sealed: bytes, content_type: str) -> None:
        self._call(
            "put_object",
            name,
            Body=sealed,
            ContentType="application/octet-stream",
            Metadata={"content-type": content_type, "sealed": MAGIC.decode()},
            ServerSideEncryption="AES256",
        )

    def _read(self, name: str) -> bytes:
        body = self._call("get_object", name)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def delete(self, name: str) -> None:
        """Removes the object; deleting a missing blob is not an error (S3 semantics)."""
        self._call("delete_object", check_name(name))

    def presigned_url(self, name: str, *, ttl_seconds: int | None = None) -> str:
        """A presigned GET URL of the *sealed* object, valid ``ttl_seconds`` (default
        ``KEYSHOP_BLOB_LINK_SECONDS``): for operators and tools, not for customers."""
        check_name(name)
        ttl = self._ttl(ttl_seconds)
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": name}, ExpiresIn=ttl
            )
        )


def get_blob_store(settings: Settings | None = None) -> BlobStore:
    """The store ``KEYSHOP_BLOB_STORE`` names: ``local`` (default) or ``s3``."""
    s = settings or get_settings()
    if s.blob_store == "s3":
        if not s.s3_bucket:
            raise ConfigError("S3_BUCKET", "required when KEYSHOP_BLOB_STORE=s3")
        return S3BlobStore(
            s.s3_bucket,
            s.s3_endpoint_url,
            s.s3_region,
            public_url=s.public_url,
            link_seconds=s.blob_link_seconds,
        )
    return LocalBlobStore(s.blob_dir, s.public_url, link_seconds=s.blob_link_seconds)
