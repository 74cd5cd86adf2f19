# syntax=docker/dockerfile:1
# The keyshop image: one image for the web app, the workers, the scheduler and the
# one-shot commands (migrate, import-keys, keys rotate, check-config).
#
#   docker compose build            (or: docker build -t keyshop:latest .)
#   docker run --rm keyshop:latest keys new-secret
#
# Stages: `bun` fetches the bun binary from the npm registry (as ./dev's machines do);
# `build` installs the locked dependencies with uv and builds the Reflex frontend once;
# the final stage runs as an unprivileged user. No setting or secret is baked in: they
# come from the environment at run time (docker-compose.yml reads them from .env).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM node:22-bookworm-slim AS bun
ARG BUN_VERSION=1.4.4
RUN npm install --no-save --no-audit --no-fund --prefix /opt/bun "bun@${BUN_VERSION}" \
    && /opt/bun/node_modules/bun/bin/bun.exe --version

FROM ${PYTHON_IMAGE} AS build
# the uv version ./dev pins
ARG UV_VERSION=0.13.8
ENV UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# dependencies first, in a layer of their own that survives code changes
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY . .
# the project itself, editable: migrations (alembic/) and rxconfig.py are read from /app
RUN uv sync --locked --no-dev
# the German catalogue, compiled as ./dev setup does (core/i18n.py; *.mo are not in git)
RUN pybabel --quiet compile --directory core/locale

COPY --from=bun /opt/bun/node_modules/bun/bin/bun.exe /usr/local/bin/bun
# the frontend talks to the backend on the same port (Reflex prod mode, port 3000);
# behind an HTTPS proxy the browser uses the page's own host and port
ENV REFLEX_FRONTEND_PORT=3000 \
    REFLEX_BACKEND_PORT=3000 \
    REFLEX_CHECK_LATEST_VERSION=false \
    REFLEX_TELEMETRY_ENABLED=false \
    NPM_CONFIG_REGISTRY=https://registry.npmjs.org
# build the frontend now (bun install + Vite) so that a container starts without it;
# the embedded default settings suffice to compile the app and nothing is kept of them
RUN KEYSHOP_VAR_DIR=/tmp/keyshop-build reflex export --frontend-only --no-zip \
    && rm -rf /tmp/keyshop-build

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 keyshop \
    && useradd --system --uid 10001 --gid keyshop --create-home --home-dir /home/keyshop \
       --shell /usr/sbin/nologin keyshop
COPY --from=bun /opt/bun/node_modules/bun/bin/bun.exe /usr/local/bin/bun
# the virtual environment stays root-owned: the shop cannot rewrite its own code
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=keyshop:keyshop /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KEYSHOP_VAR_DIR=/app/var \
    REFLEX_FRONTEND_PORT=3000 \
    REFLEX_BACKEND_PORT=3000 \
    REFLEX_CHECK_LATEST_VERSION=false \
    REFLEX_TELEMETRY_ENABLED=false \
    NPM_CONFIG_REGISTRY=https://registry.npmjs.org
RUN mkdir -p /app/var && chown keyshop:keyshop /app/var
USER 10001:10001
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/api/health', timeout=4)"]
ENTRYPOINT ["keyshop"]
CMD ["run", "--no-worker", "--no-simulators", "--host", "0.0.0.0", "--port", "3000"]
