"""Production packaging as an operator meets it: docker-compose.yml, .env.example and the
Dockerfile.

No Docker engine runs here. The compose file is checked against the Compose
specification's JSON schema (``tests/compose_spec.json``: the schema compose-go embeds in
Docker Compose v2.40.3, so this check never depends on a compose binary being installed)
and, where the Compose v2 CLI is installed, by ``docker compose config`` itself. The
commands the services run are parsed by the real ``keyshop`` click commands, and the
settings they are given by the real ``core.config.Settings``.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml

from core.config import Settings, load_settings
from core.errors import ConfigError
from keyshop.cli import cli

pytestmark = pytest.mark.one_pass  # independent of the pass's database

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA = Path(__file__).with_name("compose_spec.json")

KEYSHOP_SERVICES = ("migrate", "web", "worker", "scheduler")
ALL_SERVICES = ("postgres", "redis", *KEYSHOP_SERVICES)
# variables the services may be given that are not keyshop settings, and who reads them
FOREIGN_VARIABLES = {
    "REFLEX_REDIS_URL": "Reflex's state manager (rx.Config.redis_url)",
    "GRANIAN_WORKERS": "Reflex's prod backend (Granian worker count)",
    "AWS_ACCESS_KEY_ID": "boto3 (S3 blob store)",
    "AWS_SECRET_ACCESS_KEY": "boto3 (S3 blob store)",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus-client (core/metrics.py: counters shared by processes)",
}
# compose-file variables (${NAME}) that configure the topology, not the app
COMPOSE_VARIABLES = {"POSTGRES_PASSWORD", "KEYSHOP_IMAGE", "KEYSHOP_HTTP_PORT"}
# settings that only the embedded default uses (the simulators run on loopback)
EMBEDDED_ONLY = {"KEYSHOP_SIMULATOR_HOST", "KEYSHOP_SIMULATOR_PORT"}

SECRET32 = base64.b64encode(b"s" * 32).decode()
# what an operator would type into .env.example's blanks
FILLED = {
    "POSTGRES_PASSWORD": "correct-horse",
    "DATABASE_URL": "postgresql://keyshop:correct-horse@postgres:5432/keyshop",
    "KEYSHOP_KEYRING": f"1:{SECRET32}",
    "KEYSHOP_FINGERPRINT_KEY": SECRET32,
    "KEYSHOP_SECRET_KEY": "x" * 43,
    "KEYSHOP_PUBLIC_URL": "https://shop.example.com",
    "STRIPE_SECRET_KEY": "sk_live_" + "a" * 24,
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "b" * 32,
    "CODESWHOLESALE_BASE_URL": "https://api.codeswholesale.com",
    "CODESWHOLESALE_CLIENT_ID": "client-id",
    "CODESWHOLESALE_CLIENT_SECRET": "client-secret",
    "CODESWHOLESALE_CLIENT_SIGNATURE": "client-signature",
    "KINGUIN_BASE_URL": "https://gateway.kinguin.net/esa/api",
    "KINGUIN_API_KEY": "kinguin-key",
    "KINGUIN_WEBHOOK_SECRET": "kinguin-secret",
    "SMTP_URL": "smtp+starttls://shop:pw@smtp.example.com:587",
    "KEYSHOP_MAIL_FROM": "Example Shop <orders@shop.example.com>",
}


# -- helpers ------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> tuple[dict[str, str], set[str]]:
    """(uncommented NAME=value lines, names only mentioned as ``# NAME=default``)."""
    active: dict[str, str] = {}
    optional: set[str] = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            active[m[1]] = m[2]
        elif m := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line):
            optional.add(m[1])
    return active, optional


def setting_names() -> set[str]:
    return {str(f.validation_alias) for f in Settings.model_fields.values()}


def secret_setting_names() -> set[str]:
    return {str(f.validation_alias) for f in Settings.model_fields.values() if not f.repr}


_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} (enough for our file)."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m[1], m[2], m[3]
        if env.get(name):
            return env[name]
        if op == ":?":
            raise ValueError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return _VAR.sub(sub, value)


def service_environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "environment as a mapping, please"
    return {k: interpolate(str(v), env) for k, v in raw.items()}


def keyshop_context(args: list[str]) -> click.Context:
    """Parse a service's command with the real ``keyshop`` CLI (unknown commands and
    options raise, as they would in the container)."""
    name, *rest = args
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, f"keyshop has no command {name!r}"
    return command.make_context(name, list(rest))


def compose_cli() -> list[str] | None:
    """The Compose v2 CLI when installed (the docker plugin, or a standalone v2 binary)."""
    candidates = [["docker", "compose"]]
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for argv in candidates:
        if not shutil.which(argv[0]):
            continue
        probe = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").startswith("2."):
            return argv
    return None


def project_copy(tmp_path: Path, env: dict[str, str]) -> Path:
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    shutil.copy(DOCKERFILE, tmp_path / "Dockerfile")
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return tmp_path


def filled_env() -> dict[str, str]:
    active, _ = env_example()
    missing = [name for name in active if name not in FILLED]
    assert not missing, f"the test does not know what to fill into {missing}"
    return {name: FILLED[name] for name in active}


# -- the compose file -----------------------------------------------------------------------


def test_compose_file_is_valid(tmp_path):
    """The Compose specification's schema accepts the file, and so does `docker compose
    config` wherever the Compose v2 CLI is installed."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose())
    ]
    assert errors == []

    argv = compose_cli()
    if argv is None:
        return
    project = project_copy(tmp_path, filled_env())
    result = subprocess.run(
        [*argv, "config", "--format", "json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert set(model["services"]) == set(ALL_SERVICES)
    assert {model["services"][s]["image"] for s in KEYSHOP_SERVICES} == {"keyshop:latest"}
    assert model["services"]["web"]["environment"]["KEYSHOP_ENV"] == "production"


def test_compose_refuses_to_start_without_the_database_password(tmp_path):
    """`${POSTGRES_PASSWORD:?...}`: forgetting it in .env is an error naming it."""
    env = filled_env()
    del env["POSTGRES_PASSWORD"]
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        interpolate(compose()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"], env)
    argv = compose_cli()
    if argv is None:
        return
    result = subprocess.run(
        [*argv, "config", "-q"],
        cwd=project_copy(tmp_path, env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "POSTGRES_PASSWORD" in result.stderr


def test_schema_check_catches_mistakes():
    """The schema check is not vacuous: a misspelt key and a bad depends_on condition fail."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = compose()
    broken["services"]["web"]["healthchek"] = broken["services"]["web"].pop("healthcheck")
    broken["services"]["worker"]["depends_on"] = {"migrate": {"condition": "when_it_feels_like_it"}}
    paths = {"/".join(map(str, e.absolute_path)) for e in validator.iter_errors(broken)}
    assert "services/web" in paths
    assert any(p.startswith("services/worker/depends_on") for p in paths)


def test_services_and_the_shared_image():
    services = compose()["services"]
    assert set(services) == set(ALL_SERVICES)
    assert services["postgres"]["image"].startswith("postgres:16")
    images = {services[s]["image"] for s in KEYSHOP_SERVICES}
    builds = {json.dumps(services[s].get("build"), sort_keys=True) for s in KEYSHOP_SERVICES}
    assert len(images) == 1 and len(builds) == 1, (
        "web, worker, scheduler and migrate share one image"
    )
    assert services["web"]["build"]["context"] == "."
    for name in KEYSHOP_SERVICES:
        assert services[name]["env_file"] == [".env"], f"{name} reads its secrets from .env"


def test_state_lives_in_volumes():
    doc = compose()
    assert {"postgres-data", "redis-data", "keyshop-var"} <= set(doc["volumes"])
    for name in KEYSHOP_SERVICES:
        # image keys written by a worker are served by web: one var/ for all of them
        assert doc["services"][name]["volumes"] == ["keyshop-var:/app/var"]
        assert service_environment(doc["services"][name], {})["KEYSHOP_VAR_DIR"] == "/app/var"
    assert "postgres-data:/var/lib/postgresql/data" in doc["services"]["postgres"]["volumes"]
    assert "redis-data:/data" in doc["services"]["redis"]["volumes"]
    assert "--appendonly" in doc["services"]["redis"]["command"], (
        "the queue survives a Redis restart"
    )


def test_start_order_health_and_restarts():
    services = compose()["services"]
    for name in ("postgres", "redis", "web"):
        assert services[name]["healthcheck"]["test"], f"{name} has a health check"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    for name in ("web", "worker", "scheduler"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, f"{name} starts after a successful migration on healthy PostgreSQL and Redis"
        assert services[name]["restart"] in ("unless-stopped", "always")
    assert services["migrate"]["restart"] == "no", "a one-shot migration is never restarted"


def test_commands_are_real_keyshop_commands():
    services = compose()["services"]
    assert services["migrate"]["command"] == ["migrate"]
    keyshop_context(services["migrate"]["command"])
    for name in ("worker", "scheduler"):
        assert keyshop_context(services[name]["command"]).info_name == "worker"
    # the web command: `keyshop run` serving Reflex in prod mode on port 3000, without the
    # Huey consumer and the provider simulators it starts on a developer's machine
    web = keyshop_context(services["web"]["command"])
    assert web.info_name == "run"
    assert web.params["no_worker"] and web.params["no_simulators"]
    assert (web.params["host"], web.params["port"]) == ("0.0.0.0", 3000)
    assert services["web"]["ports"] == ["${KEYSHOP_HTTP_PORT:-3000}:3000"]


def test_only_the_scheduler_runs_periodic_tasks():
    services = compose()["services"]
    periodic = {
        name
        for name in KEYSHOP_SERVICES
        if services[name]["command"][0] == "worker"
        and not keyshop_context(services[name]["command"]).params["no_periodic"]
    }
    assert periodic == {"scheduler"}
    worker = keyshop_context(services["worker"]["command"])
    assert worker.params["no_periodic"] and worker.params["workers"] > 1, "several consumers"
    assert (
        "deploy" not in services["scheduler"]
        or services["scheduler"]["deploy"].get("replicas", 1) == 1
    )


def test_web_runs_several_workers_sharing_state_in_redis():
    web = service_environment(compose()["services"]["web"], {})
    assert int(web["GRANIAN_WORKERS"]) > 1
    assert web["REFLEX_REDIS_URL"].startswith("redis://redis:")
    assert web["QUEUE_URL"].startswith("redis://redis:")
    assert web["REFLEX_REDIS_URL"] != web["QUEUE_URL"], (
        "state and queue in separate Redis databases"
    )


def test_reflex_reads_the_redis_variable_we_set():
    """REFLEX_REDIS_URL is the name Reflex reads (in a subprocess: Reflex caches its config)."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from reflex.config import get_config; print(get_config().redis_url)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "REFLEX_REDIS_URL": "redis://redis:6379/1",
            "REFLEX_CHECK_LATEST_VERSION": "false",
            "REFLEX_TELEMETRY_ENABLED": "false",
        },
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().splitlines()[-1] == "redis://redis:6379/1"


# -- settings -------------------------------------------------------------------------------


def test_every_variable_the_services_get_is_a_real_setting():
    settings = setting_names()
    for name in KEYSHOP_SERVICES:
        unknown = (
            set(service_environment(compose()["services"][name], {}))
            - settings
            - set(FOREIGN_VARIABLES)
        )
        assert not unknown, f"{name} sets {sorted(unknown)}, which nothing reads"
    active, optional = env_example()
    unknown = (set(active) | optional) - settings - set(FOREIGN_VARIABLES) - COMPOSE_VARIABLES
    assert not unknown, f".env.example lists {sorted(unknown)}, which nothing reads"
    used = {m[0] for m in _VAR.findall(COMPOSE_FILE.read_text())}
    assert used <= set(active) | optional, (
        f"compose reads {sorted(used - set(active) - optional)} not in .env.example"
    )


def test_no_secret_is_written_in_the_compose_file():
    text = COMPOSE_FILE.read_text()
    for name in secret_setting_names() | {"POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY"}:
        for m in re.finditer(rf"^\s*{name}\s*:\s*(.*)$", text, flags=re.M):
            assert m[1].startswith("${"), (
                f"{name} has a value in docker-compose.yml; it belongs in .env"
            )
    for name in KEYSHOP_SERVICES:
        environment = compose()["services"][name].get("environment") or {}
        assert not set(environment) & secret_setting_names()


def test_env_example_lists_every_production_setting():
    active, optional = env_example()
    compose_set = set(service_environment(compose()["services"]["web"], {}))
    listed = set(active) | optional | compose_set
    missing = setting_names() - EMBEDDED_ONLY - listed
    assert not missing, f".env.example does not mention {sorted(missing)}"
    assert all(value == "" for value in active.values()), (
        ".env.example holds no values, only blanks"
    )


def test_filled_env_example_starts_in_production(monkeypatch, tmp_path):
    """Filling the blanks of .env.example is enough: the settings load in production mode,
    and each blank left empty that production needs is refused, naming it."""
    monkeypatch.chdir(tmp_path)  # no stray .env file
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    base = {**service_environment(compose()["services"]["web"], {}), **filled_env()}
    base = {k: v for k, v in base.items() if k in setting_names()}

    settings = load_settings(_env_file=None, **base)
    assert settings.env == "production" and settings.is_postgres
    assert settings.effective_queue_url == "redis://redis:6379/0"
    assert not settings.test_payments, "production with the env example takes real payments"

    active, _ = env_example()
    required = []
    for name in base:
        try:
            load_settings(_env_file=None, **{k: v for k, v in base.items() if k != name})
        except ConfigError as exc:
            required.append(name)
            # named: the setting left out, or its partner (the two Stripe settings)
            assert exc.setting in base, f"leaving {name} out is reported as {exc.setting}"
    assert {
        "DATABASE_URL",
        "QUEUE_URL",
        "KEYSHOP_KEYRING",
        "KEYSHOP_FINGERPRINT_KEY",
        "KEYSHOP_SECRET_KEY",
        "CODESWHOLESALE_CLIENT_SECRET",
        "KINGUIN_API_KEY",
    } <= set(required)
    assert set(required) - {"KEYSHOP_ENV", "QUEUE_URL"} <= set(active), (
        "every required setting is a blank to fill"
    )


# -- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), args.strip()))
    return stages


def test_dockerfile_runs_keyshop_as_an_unprivileged_user():
    final = dockerfile_stages()[-1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users, "the final stage sets a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert ("ENTRYPOINT", '["keyshop"]') in final
    health = " ".join(args for instruction, args in final if instruction == "HEALTHCHECK")
    assert "/api/health" in health and "3000" in health
    assert any(i == "EXPOSE" and a == "3000" for i, a in final)
    cmd = [json.loads(a) for i, a in final if i == "CMD"]
    assert cmd == [compose()["services"]["web"]["command"]], "`docker run` alone serves the web app"


def test_dockerfile_builds_from_the_lock_with_the_pinned_tools():
    stages = dockerfile_stages()
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.M))
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    uv_pin = re.search(r"^UV_VERSION=(\S+)$", (ROOT / "dev").read_text(), flags=re.M)
    assert uv_pin and args["UV_VERSION"] == uv_pin[1], "the image uses the uv version ./dev pins"
    runs = [a for stage in stages for i, a in stage if i == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs and all("--locked" in r and "--no-dev" in r for r in syncs)
    assert any("bun@${BUN_VERSION}" in r and "npm install" in r for r in runs)
    assert any("reflex export --frontend-only" in r for r in runs), (
        "the frontend is built into the image"
    )
    # the final stage is the python image, not the node one used to fetch bun
    assert stages[-1][0] == ("FROM", "${PYTHON_IMAGE} AS runtime")


def test_dockerignore_keeps_local_state_and_secrets_out():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".web", "var", ".tools", ".git", ".env"} <= ignored
