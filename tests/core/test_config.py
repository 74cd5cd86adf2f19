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
        (
            {
                "KEYSHOP_ENV": "production",
                "DATABASE_URL": "sqlite:///x.db",
                "QUEUE_URL": "redis://r",
                "KEYSHOP_KEYRING": f"1:{GOOD}",
                "KEYSHOP_FINGERPRINT_KEY": GOOD,
            },
            "DATABASE_URL",
        ),
        (
            {
                "KEYSHOP_ENV": "production",
                "DATABASE_URL": "postgresql://u@h/db",
                "QUEUE_URL": "redis://r",
                "KEYSHOP_FINGERPRINT_KEY": GOOD,
            },
            "KEYSHOP_KEYRING",
        ),
        # production without Stripe would hand keys out through the test payment page
        (
            {
                "KEYSHOP_ENV": "production",
                "DATABASE_URL": "postgresql://u@h/db",
                "QUEUE_URL": "redis://r",
                "KEYSHOP_KEYRING": f"1:{GOOD}",
                "KEYSHOP_FINGERPRINT_KEY": GOOD,
                "KEYSHOP_SECRET_KEY": GOOD,
                "KEYSHOP_PROVIDER_CHAIN": "",
            },
            "STRIPE_SECRET_KEY",
        ),
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


# -- settings describe themselves (issue #12 item 4) -------------------------------------------

SECRETS = {
    "KEYSHOP_KEYRING": f"1:{GOOD}",
    "KEYSHOP_FINGERPRINT_KEY": GOOD,
    "KEYSHOP_SECRET_KEY": "s3cr3t-" + "x" * 40,
    "CODESWHOLESALE_CLIENT_SECRET": "cw-secret-value",
    "CODESWHOLESALE_CLIENT_SIGNATURE": "cw-signature-value",
    "KINGUIN_API_KEY": "kinguin-api-key-value",
    "KINGUIN_WEBHOOK_SECRET": "kinguin-hook-secret",
    "STRIPE_SECRET_KEY": "sk_test_stripesecretvalue1234",
    "STRIPE_WEBHOOK_SECRET": "whsec_stripehooksecret",
    "SMTP_URL": "smtp://mailer:mailpassword@mail.example.com:587",
    "NOWPAYMENTS_API_KEY": "np-api-key-value",
    "NOWPAYMENTS_IPN_SECRET": "np-ipn-secret-value",
}


def _aliases() -> list[str]:
    from core.config import Settings

    return [str(f.validation_alias) for f in Settings.model_fields.values()]


def test_check_config_lists_every_setting(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    names = [name for name, _, _ in load_settings().describe()]
    assert sorted(names) == sorted(_aliases())


def test_the_readme_documents_every_setting():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    missing = [name for name in _aliases() if name not in documented]
    assert not missing, f"README's Configuration table does not mention {missing}"


def test_secrets_are_secret_str_and_never_shown(monkeypatch, tmp_path):
    from pydantic import SecretStr

    monkeypatch.chdir(tmp_path)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert isinstance(settings.stripe_secret_key, SecretStr)
    assert isinstance(settings.kinguin_api_key, SecretStr)
    shown = repr(settings.describe()) + repr(settings) + str(settings.model_dump())
    for value in SECRETS.values():
        assert value not in shown
    assert "mailpassword" not in shown and "mail.example.com" in shown
    rows = {name: (value, source) for name, value, source in settings.describe()}
    assert rows["STRIPE_SECRET_KEY"] == ("***1234", "environment")
    assert rows["KINGUIN_API_KEY"] == ("***", "environment")
    assert rows["KEYSHOP_ALLOW_TEST_PAYMENTS"] == ("False", "default")


def test_use_settings_imports_nothing_that_depends_on_it(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from core import config\n"
        "config.use_settings(None)\n"
        "print(sorted(m for m in ('core.db', 'core.crypto', 'core.signing') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_modules_that_cache_settings_are_reset_when_they_change(test_settings):
    from core import config, db

    engine = db.get_engine()
    config.use_settings(test_settings)
    assert db.get_engine() is not engine  # the engine registered its reset
