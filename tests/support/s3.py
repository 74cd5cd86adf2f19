"""A real S3-compatible server for the tests: moto in server mode on loopback, and a
fresh bucket per test behind an S3BlobStore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

PUBLIC = "https://shop.example"


def moto_server() -> Iterator[str]:
    """Body of a module-scoped fixture: start the server, yield its endpoint, stop it."""
    from moto.server import ThreadedMotoServer  # slow import: only when S3 tests run

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_blob_store(endpoint: str, monkeypatch: Any, tmp_path: Path) -> Any:
    """An S3BlobStore on a new bucket of the server at ``endpoint``, with test
    credentials and no AWS configuration of the machine's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    import boto3

    from core.blobs import S3BlobStore

    bucket = f"keyshop-test-{tmp_path.name.lower().replace('_', '-')[-30:]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return S3BlobStore(bucket, endpoint, "us-east-1", public_url=PUBLIC)


def object_names(store: Any, prefix: str = "") -> list[str]:
    """Every object name in the store's bucket under ``prefix``, sorted."""
    found = store.client.list_objects_v2(Bucket=store.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in found.get("Contents", []))
