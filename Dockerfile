# authgate production image: `docker compose up` builds it (docker-compose.yml,
# docs/deployment.md).
#
#   ENTRYPOINT is the `authgate` command, so any subcommand runs as
#   `docker compose run --rm --no-deps app <subcommand>` (migrate, keys rotate, create-admin, ...).
#   Signing keys live in /var/lib/authgate/keys: mount a volume there (compose does).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never

# uv from PyPI with pip (the version range that reads this uv.lock).
RUN pip install "uv>=0.13,<0.14"

WORKDIR /app

# Dependencies first, from the lock only: this layer is rebuilt only when they change.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself (README.md is the package's readme, hatchling needs it) and the
# migrations `authgate migrate` runs: alembic/ (this editable install finds it next to src/)
# and alembic.ini (the `alembic` command line, from /app).
COPY README.md alembic.ini ./
COPY alembic ./alembic
COPY src ./src
RUN uv sync --frozen --no-dev

ENV PATH="/app/.venv/bin:${PATH}"

# An unprivileged user; the code and the venv stay root-owned and read-only to it.
# The key directory is created with that user as owner so a fresh named volume mounted there
# inherits owner and mode 0700.
RUN groupadd --system --gid 10001 authgate \
    && useradd --system --uid 10001 --gid authgate --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin authgate \
    && install -d -o authgate -g authgate -m 0700 /var/lib/authgate /var/lib/authgate/keys

USER authgate

EXPOSE 8000

# No curl in the slim image: Python's urllib asks the liveness endpoint.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]

ENTRYPOINT ["authgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
