# authgate — the two commands are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help setup run migrate test test-fast lint fmt typecheck bench bench-inprocess openapi clean system-deps client example docs docs-serve docs-screenshots

help:
	@echo "make run    - set up and serve on http://$(HOST):$(PORT) (SQLite, console email, dev keys)"
	@echo "make test   - set up and run lint, type checks and the whole suite (SQLite + PostgreSQL)"
	@echo "make bench  - run the benchmark suite (BENCH_DB=postgres for PostgreSQL)"
	@echo "make example - serve the example SPA on http://localhost:5173 (next to make run)"
	@echo "make client  - regenerate the TypeScript kit's types from the API spec, type-check, build"
	@echo "make docs   - build the documentation site into site/ (strict, offline); make docs-serve"
	@echo "make lint | fmt | migrate | openapi"

# uv from PyPI with pip when missing; uv uses the machine's Python (never downloads one).
$(UV):
	$(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen --python $(PYTHON)
	@touch $@

setup: .venv/.synced

migrate: setup
	$(UV) run --frozen authgate migrate

run: setup
	@mkdir -p var
	$(UV) run --frozen authgate migrate
	$(UV) run --frozen authgate serve --host $(HOST) --port $(PORT)

openapi: setup
	@$(UV) run --frozen authgate openapi

# The TypeScript kit (clients/typescript) and the example SPA on it (examples/spa). Node packages
# come from each project's committed package-lock.json (npm ci, skipped when already installed).
CLIENT_DIR := clients/typescript
SPA_DIR := examples/spa

# After any change to the API: regenerate src/schema.d.ts from `authgate openapi` with the kit's
# pinned openapi-typescript, then type-check and build it (tests/test_client_kit.py fails until then).
client: setup
	@bash scripts/npm-ci.sh $(CLIENT_DIR)
	@spec=$$(mktemp) && trap 'rm -f "$$spec"' EXIT && \
		$(UV) run --frozen authgate openapi > "$$spec" && \
		cd $(CLIENT_DIR) && node scripts/generate-schema.mjs "$$spec" src/schema.d.ts
	cd $(CLIENT_DIR) && npm run --silent typecheck && npm run --silent build
	@echo "regenerated $(CLIENT_DIR)/src/schema.d.ts and built $(CLIENT_DIR)/dist"

# The example SPA's dev server on http://localhost:5173 (AUTHGATE_FRONTEND_URL's default, so the
# emails of `make run` link to it); it calls authgate at http://localhost:8000 (public/config.js).
example:
	@bash scripts/npm-ci.sh $(CLIENT_DIR) $(SPA_DIR)
	cd $(SPA_DIR) && npm run dev

# The documentation site (mkdocs.yml): MkDocs Material, strict, nothing fetched from the network.
# The settings, HTTP, CLI and metrics references are generated from the code (docsgen/); the
# suite builds it too (tests/docs/test_site.py), so a broken link fails `make test`.
DOCS_ADDR ?= 127.0.0.1:8001

docs: setup
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen mkdocs build --strict --site-dir site

docs-serve: setup
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen mkdocs serve --strict --dev-addr $(DOCS_ADDR)

# PNGs of the home page and one guide in docs/screenshots (Debian's chromium, headless).
docs-screenshots: docs
	$(UV) run --frozen python scripts/docs-screenshots.py

# Debian packages the test suite runs for real (PostgreSQL server binaries, Redis).
system-deps:
	@bash scripts/install-system-deps.sh

lint: setup
	$(UV) run --frozen ruff format --check src tests bench alembic docsgen scripts
	$(UV) run --frozen ruff check src tests bench alembic docsgen scripts
	$(UV) run --frozen mypy

fmt: setup
	$(UV) run --frozen ruff format src tests bench alembic docsgen scripts
	$(UV) run --frozen ruff check --fix src tests bench alembic docsgen scripts

test: setup system-deps lint
	$(UV) run --frozen pytest -p no:cacheprovider

test-fast: setup
	$(UV) run --frozen pytest -p no:cacheprovider -x -q

bench: setup
	$(UV) run --frozen python -m bench.run

# Per-request CPU of the hot paths, in-process (how they were profiled); health and users-me
# against a bare FastAPI app.
bench-inprocess: setup
	$(UV) run --frozen python -m bench.inprocess health
	$(UV) run --frozen python -m bench.inprocess users-me
	$(UV) run --frozen python -m bench.inprocess refresh
	$(UV) run --frozen python -m bench.inprocess login
	$(UV) run --frozen python -m bench.inprocess register
	$(UV) run --frozen python -m bench.inprocess passkey
	$(UV) run --frozen python -m bench.inprocess webhooks

clean:
	rm -rf .venv var site .pytest_cache .mypy_cache .ruff_cache
