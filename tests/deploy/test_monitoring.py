"""The operator's kit in deploy/: the Grafana dashboard and the Prometheus alert rules ask only
for metrics a running authgate exposes on /metrics, the rules pass ``promtool check rules``,
and the compose profile starts Prometheus and Grafana with both provisioned."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from authgate.config import Settings
from authgate.core.email import EmailTemplate
from authgate.core.email.backends import ConsoleBackend
from authgate.core.email.dispatcher import EmailDispatcher
from authgate.core.metrics import HASH_CAPACITY, HASH_IN_FLIGHT, OUTBOX_OLDEST_AGE, OUTBOX_PENDING
from authgate.core.security.passwords import PasswordService
from authgate.core.time import shifted
from authgate.runtime import Runtime
from tests.support.factories import Factory
from tests.support.promql import all_metric_names, exposed_names, metric_names

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "authgate.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
PROMTOOL = "/usr/bin/promtool"


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str) and query:
            exprs.append(query)
    return exprs


def rule_expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_the_extractor_finds_metric_names() -> None:
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{route=~"/x"}[$__rate_interval])))'
    ) == {"a_bucket"}
    assert metric_names("sum(rate(a_total[5m])) / sum(rate(b_total[5m])) > 0.05") == {
        "a_total",
        "b_total",
    }
    # A label name passed to Grafana's label_values() reads as a name too: callers drop it.
    assert metric_names("label_values(authgate_ready, instance)") == {"authgate_ready", "instance"}
    assert metric_names("absent(up) or max by (instance) (x / y) == 0") == {"up", "x", "y"}


def test_the_kit_covers_what_the_issue_names() -> None:
    used = all_metric_names(dashboard_expressions())
    for name in (
        "authgate_request_duration_seconds_count",  # request rate by route
        "authgate_request_duration_seconds_bucket",  # latency by route
        "authgate_logins_total",  # sign-ins and failures
        "authgate_refreshes_total",
        "authgate_refresh_reuse_detected_total",
        "authgate_rate_limited_total",  # throttle and rate-limit refusals
        "authgate_email_outbox_pending",  # outbox depth
        "authgate_email_outbox_oldest_age_seconds",  # and age
        "authgate_password_hash_in_flight",  # hashing pool saturation
        "authgate_password_hash_capacity",
        "authgate_db_pool_connections_in_use",  # DB pool
        "authgate_db_pool_capacity",
    ):
        assert name in used, name
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    assert {
        "AuthgateOutboxStale",
        "AuthgateRefreshReuseSpike",
        "AuthgateHigh5xxRatio",
        "AuthgateNotReady",
    } <= alerts


async def test_every_metric_of_the_dashboard_and_rules_is_exposed(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    # A few requests first, so the labelled series exist too (not only HELP and TYPE lines).
    await factory.account()
    assert (await client.get("/health/ready")).status_code == 200
    await client.post("/api/v1/auth/login", json={"email": "x@example.com", "password": "x" * 20})
    assert (await client.get("/api/v1/no-such-route")).status_code == 404
    session = "/api/v1/sessions/0b3c8f5e-8d43-4b5e-9a50-4d3a2f1e6c7d"
    assert (await client.delete(session)).status_code == 401
    assert (await client.get("/static/docs/swagger-ui.css")).status_code == 200
    exposition = (await client.get("/metrics")).text
    exposed = exposed_names(exposition)

    used = all_metric_names(dashboard_expressions()) | all_metric_names(rule_expressions())
    used.discard("instance")  # the label_values() argument of the dashboard's variable
    missing = sorted(used - exposed)
    assert not missing, f"not on /metrics: {missing}"

    # The latency histogram is observed with the route template, never the raw path.
    assert 'route="/api/v1/auth/login"' in exposition
    assert 'route="/api/v1/sessions/{session_id}"' in exposition
    assert 'route="/static/docs/{path}"' in exposition
    assert 'route="<unmatched>"' in exposition
    assert "/api/v1/no-such-route" not in exposition
    assert "0b3c8f5e" not in exposition
    assert 'authgate_ready{dependency="database"} 1.0' in exposition
    assert "authgate_password_hash_capacity " in exposition


def _promtool() -> str:
    if Path(PROMTOOL).exists():
        return PROMTOOL
    found = shutil.which("promtool")
    if found is None:
        # scripts/install-system-deps.sh installs Debian's `prometheus`, which ships promtool;
        # only a machine where that package cannot be had gets here.
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return found


def test_promtool_checks_and_tests_the_rules() -> None:
    promtool = _promtool()
    for args in (
        ["check", "rules", str(RULES)],
        ["check", "config", str(PROMETHEUS_CONFIG)],
        # The alerts' logic: each fires (or not) on made-up series (deploy/prometheus).
        ["test", "rules", str(RULES.with_name("alerts.test.yml"))],
    ):
        result = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_monitoring_profile_provisions_both() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
    # Nothing else is in a profile: a plain `docker compose up` is unchanged.
    assert all(
        "profiles" not in s for n, s in services.items() if n not in ("prometheus", "grafana")
    )

    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]  # next to the config, so mounted with it
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"][0]["names"] == ["app"]  # every replica of the app service
    assert job["dns_sd_configs"][0]["port"] == 8000

    grafana = services["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro" in grafana["volumes"]
    provisioning = DEPLOY / "grafana" / "provisioning"
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "authgate.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }
    assert uids == {datasource["uid"]}
    # Published on loopback unless the operator says otherwise.
    for name in ("prometheus", "grafana"):
        (port,) = services[name]["ports"]
        assert port.startswith("${MONITORING_BIND:-127.0.0.1}:")


async def test_the_outbox_gauges_measure_depth_and_age(settings: Settings) -> None:
    """``observe_backlog`` (every 15 s in the dispatcher loop) sets depth and the oldest row's
    age from the database, whichever process wrote the rows."""
    runtime = Runtime.build(settings, with_dispatcher=False)
    try:
        dispatcher = EmailDispatcher(
            settings, runtime.sessionmaker, runtime.email, ConsoleBackend()
        )
        await dispatcher.observe_backlog()
        assert (OUTBOX_PENDING._value.get(), OUTBOX_OLDEST_AGE._value.get()) == (0, 0)
        for minutes in (20, 1):
            with shifted(-timedelta(minutes=minutes)):
                async with runtime.sessionmaker() as db, db.begin():
                    await runtime.email.enqueue(
                        db,
                        to="ada@example.com",
                        template=EmailTemplate.welcome,
                        context={"name": None},
                    )
        await dispatcher.observe_backlog()
        assert OUTBOX_PENDING._value.get() == 2
        assert 20 * 60 - 5 < OUTBOX_OLDEST_AGE._value.get() < 20 * 60 + 60
    finally:
        await runtime.close()


async def test_the_hashing_gauges_count_jobs_in_flight(settings: Settings) -> None:
    passwords = PasswordService(settings)
    try:
        assert HASH_CAPACITY._value.get() == settings.hash_workers + settings.hash_queue_limit
        before = HASH_IN_FLIGHT._value.get()
        hashes = [
            asyncio.create_task(passwords.hash("correct horse battery staple")) for _ in range(3)
        ]
        await asyncio.sleep(0)
        assert HASH_IN_FLIGHT._value.get() == before + 3
        await asyncio.gather(*hashes)
        assert HASH_IN_FLIGHT._value.get() == before
    finally:
        await passwords.close()
