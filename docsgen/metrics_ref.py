"""The metrics reference: every family authgate registers (``core/metrics.py``), read from the
Prometheus registry, so a new metric is listed without anyone writing it down."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from authgate.core import metrics

SERIES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "summary": ("_count", "_sum"),
}


def label_names() -> dict[str, tuple[str, ...]]:
    """Label names of the metrics declared in ``core/metrics.py``, by family name."""
    names: dict[str, tuple[str, ...]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            names[value._name] = tuple(value._labelnames)
    return names


def render() -> str:
    """The Markdown of ``reference/metrics.md``."""
    labels = label_names()
    families = sorted(
        (m for m in REGISTRY.collect() if m.name.startswith("authgate_")), key=lambda m: m.name
    )
    out = [
        "# Metrics reference",
        "",
        "What `GET /metrics` exposes besides the process and platform metrics of",
        "`prometheus_client`, generated from the registry when this site was built",
        "(`src/authgate/core/metrics.py`). [Monitoring](../guides/monitoring.md) has the",
        "dashboard and alert rules built on them.",
        "",
        f"{len(families)} metrics.",
        "",
        "| metric | type | labels | description |",
        "| --- | --- | --- | --- |",
    ]
    for family in families:
        series = ", ".join(f"`{family.name}{suffix}`" for suffix in SERIES.get(family.type, ("",)))
        names = ", ".join(f"`{name}`" for name in labels.get(family.name, ()))
        description = family.documentation.replace("|", "\\|")
        out.append(f"| {series} | {family.type} | {names} | {description} |")
    out.append("")
    return "\n".join(out)
