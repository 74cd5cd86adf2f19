import base64

import pytest

from core.config import load_settings
from core.errors import ConfigError

GOOD = base64.b64encode(b"x" * 32).decode()


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://root@localhost/shop"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1"}, "DATABASE_URL"),
        ({"QUEUE_URL": "amqp://guest@localhost"}, "QUEUE_URL"),
        ({"KEYSHOP_KEYRING": "1:abc"}, "KEYSHOP_KEYRING"),
        ({"KEYSHOP_KEYRING": "1:" + base64.b64encode(b"x" * 16).decode()}, "KEYSHOP_KEYRING"),
        ({"KEYSHOP_KEYRING": "one:" + GOOD}, "KEYSHOP_KEYRING"),
        ({"KEYSHOP_KEYRING": f"1:{GOOD},1:{GOOD}"}, "KEYSHOP_KEYRING"),
        ({"KEYSHOP_KEYRING": "1:not base64 at all!"}, "KEYSHOP_KEYRING"),
        ({"KEYSHOP_FINGERPRINT_KEY": "short"}, "KEYSHOP_FINGERPRINT_KEY"),
        ({"KEYSHOP_ENV": "staging"}, "KEYSHOP_ENV"),
        ({"KEYSHOP_IMPORT_BATCH_SIZE": "lots"}, "KEYSHOP_IMPORT_BATCH_SIZE"),
        ({"KEYSHOP_IMPORT_BATCH_SIZE": "5"}, "KEYSHOP_IMPORT_BATCH_SIZE"),
        ({"KEYSHOP_ENV": "production"}, "DATABASE_URL"),
        ({"KEYSHOP_ENV": "production", "DATABASE_URL": "sqlite:///x.db", "QUEUE_URL": "redis://r",
          "KEYSHOP_KEYRING": f"1:{GOOD}", "KEYSHOP_FINGERPRINT_KEY": GOOD}, "DATABASE_URL"),
        ({"KEYSHOP_ENV": "production", "DATABASE_URL": "postgresql://u@h/db", "QUEUE_URL": "redis://r",
          "KEYSHOP_FINGERPRINT_KEY": GOOD}, "KEYSHOP_KEYRING"),
        # production without Stripe would hand keys out through the test payment page
        ({"KEYSHOP_ENV": "production", "DATABASE_URL": "postgresql://u@h/db", "QUEUE_URL": "redis://r",
          "KEYSHOP_KEYRING": f"1:{GOOD}", "KEYSHOP_FINGERPRINT_KEY": GOOD, "KEYSHOP_SECRET_KEY": GOOD,
          "KEYSHOP_PROVIDER_CHAIN": ""}, "STRIPE_SECRET_KEY"),
    ],
)
def test_a_malformed_setting_is_named(monkeypatch, tmp_path, env, setting):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == setting
    assert setting in info.value.message


def test_embedded_default_needs_no_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.env == "embedded"
    assert s.effective_database_url == "sqlite:///var/keyshop.db"
    assert s.effective_queue_url == "sqlite:///var/queue.db"


def test_postgres_urls_are_normalised_to_psycopg(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgres://shop:pw@db.internal:5432/shop")
    s = load_settings()
    assert s.effective_database_url == "postgresql+psycopg://shop:pw@db.internal:5432/shop"


def test_describe_masks_every_secret(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://shop:hunter2@db/shop")
    monkeypatch.setenv("QUEUE_URL", "redis://:redispw@cache:6379/0")
    monkeypatch.setenv("KEYSHOP_KEYRING", f"1:{GOOD},2:{GOOD}")
    monkeypatch.setenv("KEYSHOP_FINGERPRINT_KEY", GOOD)
    text = repr(load_settings().describe())
    for secret in ("hunter2", "redispw", GOOD):
        assert secret not in text
    assert "active 2" in text
