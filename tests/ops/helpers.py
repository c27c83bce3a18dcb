"""What the ops tests share: the metric catalogue read from the code, PromQL names, stack helpers."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from prometheus_client.metrics import MetricWrapperBase

from tests.factories import drug, dx, event, uid

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
METRIC_RE = re.compile(r"\bpresettle_[a-z0-9_]+\b")


def metric_objects() -> dict[str, tuple[str, MetricWrapperBase, str]]:
    """name → (type, metric, module) for every metric the ingress and worker modules define."""
    from services.decisionlog import metrics as sink_metrics
    from services.ingress import metrics as ingress_metrics
    from services.stream import metrics as stream_metrics

    out: dict[str, tuple[str, MetricWrapperBase, str]] = {}
    modules: list[tuple[str, ModuleType]] = [("ingress", ingress_metrics), ("worker", stream_metrics),
                                             ("sink", sink_metrics)]
    for where, module in modules:
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                family = value.describe()[0]
                out[family.name] = (family.type, value, where)
    return out


def series_names() -> set[str]:
    """Every sample name the code exposes (counter ``_total``, histogram ``_bucket`` …)."""
    names: set[str] = set()
    for name, (kind, _, _) in metric_objects().items():
        if kind == "counter":
            names |= {f"{name}_total", f"{name}_created"}
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        else:
            names.add(name)
    return names


def exposed_name(name: str, kind: str) -> str:
    return f"{name}_total" if kind == "counter" else name


def promql_metric_names(expr: str) -> set[str]:
    return set(METRIC_RE.findall(expr))


# Two products of one ingredient from the knowledge base (services/data/kb/drugs.json), for R19.
ATORVASTATIN = "XC10AAA067A001010101234"


def post_ok(client: httpx.Client, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = client.post("/v1/events", json=body, headers=headers)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["engine_status"] == "evaluated", answer
    return answer


def r03_event(patient: str | None = None, institution: str = "H1") -> dict[str, Any]:
    """A prostate diagnosis for a female patient: raises R03 (诊断与性别不符)."""
    return event(patient=patient or uid("P"), gender="F", diagnoses=[dx("N40", name="前列腺增生")],
                 institution=institution)


def r19_events(patient: str | None = None) -> list[dict[str, Any]]:
    """The same ingredient again after 10 of 30 days: the second raises R19 (重复开药)."""
    patient = patient or uid("P")
    return [
        event(patient=patient, occurred_at="2026-03-01T09:00:00+08:00", diagnoses=[dx("I10")],
              items=[drug(ATORVASTATIN, 30, 30)]),
        event(patient=patient, occurred_at="2026-03-11T09:00:00+08:00", diagnoses=[dx("I10")],
              items=[drug(ATORVASTATIN, 30, 30)]),
    ]


def wait_for(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.2, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or check}: last {last!r}")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 10 s: a helper program must not outlive its test."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
