"""deploy/ checked statically: no Docker engine or cluster here, so every file is parsed and
cross-checked against the code it deploys (settings it reads, ports, images, metric names)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from services.common.secrets_policy import SECRET_VARIABLES
from services.common.settings import SettingsError, load_settings, variables
from tests.ops.helpers import DEPLOY, ROOT, promql_metric_names, series_names

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse deploy/ (pip install pyyaml)")

DEFAULTS = load_settings({})
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"presettle:{VERSION}"
# What an operator puts in place of the shipped placeholders (which production refuses:
# tests/test_secrets_policy.py).
REAL_SECRETS = {"PRESETTLE_API_KEYS": "7f3c9a1e5b2d8c4f6a0e9b3d7c1f5a2e:H1",
                "PRESETTLE_ADMIN_KEYS": "c2a9e4f7b1d5a8c3e6f0b9d2a5c8e1f4",
                "PRESETTLE_PSEUDONYM_KEY": "9e1b4d7a2c5f8e3b6d9a1c4f7e2b5d8a"}


SECRET_FILE_VARIABLES = {f"{name}_FILE" for name in SECRET_VARIABLES}


def code_env_names() -> set[str]:
    """Every PRESETTLE_* variable the service reads (one per settings field)."""
    return set(variables())


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def dotenv_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(value: Any, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message}."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if name in env and env[name] != "":
            return env[name]
        if op == ":-":
            return arg
        raise AssertionError(f"${{{name}}} is unset and has no default ({arg})")

    return re.sub(r"\$\{([A-Z0-9_]+)(:-|:\?)?([^}]*)\}", sub, str(value))


def k8s_docs(kustomization: bool = False) -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [d for d in docs if (d["kind"] == "Kustomization") == kustomization]


def k8s(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


# -- docker compose ------------------------------------------------------------------------
def test_compose_parses_and_has_the_expected_services() -> None:
    services = compose()["services"]
    assert {"kafka-1", "kafka-2", "kafka-3", "ingress", "prometheus", "grafana", "topics"} <= set(services)
    workers = [name for name, svc in services.items() if svc.get("command") == ["python", "-m", "services.stream"]]
    assert len(workers) >= 2, "two or more stream workers"


def test_compose_kafka_is_kraft_with_production_replication() -> None:
    services = compose()["services"]
    brokers = {name: svc for name, svc in services.items() if str(svc.get("image", "")).startswith("apache/kafka:")}
    assert len(brokers) == 3
    node_ids = set()
    voters = None
    for name, svc in brokers.items():
        env = {k: str(v) for k, v in svc["environment"].items()}
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft combined mode, no ZooKeeper"
        assert "ZOOKEEPER" not in " ".join(env)
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["CLUSTER_ID"] and len(env["CLUSTER_ID"]) == 22
        node_ids.add(env["KAFKA_NODE_ID"])
        voters = voters or env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert any(str(v).endswith(":/var/lib/kafka/data") for v in svc["volumes"]), "broker data on a volume"
    assert node_ids == {"1", "2", "3"}
    assert voters == ",".join(f"{i}@kafka-{i}:9093" for i in (1, 2, 3))


def test_compose_presettle_env_is_what_the_code_reads_and_loads() -> None:
    known = code_env_names()
    services = compose()["services"]
    dotenv = dotenv_example()
    presettle = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("presettle:")}
    assert set(presettle) >= {"ingress", "topics", "worker-1", "worker-2"}
    for name, svc in presettle.items():
        assert interpolate(svc["image"], dotenv) == IMAGE, f"{name}: image tag follows pyproject's version"
        assert svc["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        env = {k: interpolate(v, dotenv) for k, v in svc["environment"].items()}
        unknown = {k for k in env if k.startswith("PRESETTLE_")} - known - SECRET_FILE_VARIABLES
        assert not unknown, f"{name}: variables no code reads: {sorted(unknown)}"
        # Secrets are mounted files, never plain environment values.
        assert not set(REAL_SECRETS) & set(env), f"{name}: a secret in the environment"
        mounted = set(svc["secrets"])
        for variable in SECRET_FILE_VARIABLES & set(env):
            secret = env.pop(variable).removeprefix("/run/secrets/")
            assert secret in mounted and secret in compose()["secrets"], f"{name}: {variable} is not mounted"
        assert {"PRESETTLE_API_KEYS_FILE", "PRESETTLE_ADMIN_KEYS_FILE", "PRESETTLE_PSEUDONYM_KEY_FILE"} <= (
            set(svc["environment"]))
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"] and "/tmp" in svc["tmpfs"]
        settings = load_settings({**env, **REAL_SECRETS})  # every other value is one the service accepts
        assert settings.env == "production" and not settings.dev_keys
        assert settings.replication_factor == 3
        assert settings.http_host == "0.0.0.0", "listen beyond loopback inside a container"
        assert settings.http_port == DEFAULTS.http_port
        assert settings.worker_metrics_port == DEFAULTS.worker_metrics_port
        brokers = settings.bootstrap.split(",")
        assert {h.split(":")[0] for h in brokers} == {"kafka-1", "kafka-2", "kafka-3"}
        assert all(h.endswith(":9092") for h in brokers)
    workers = {n: s for n, s in presettle.items() if s.get("command") == ["python", "-m", "services.stream"]}
    names = {s["environment"]["PRESETTLE_WORKER_NAME"] for s in workers.values()}
    assert len(names) == len(workers), "each worker has its own name"
    for name, svc in workers.items():
        assert any(str(v).endswith(":/var/lib/presettle/state") for v in svc["volumes"]), f"{name}: state volume"
    assert services["ingress"]["ports"] == [f"{DEFAULTS.http_port}:{DEFAULTS.http_port}"]
    assert "/healthz" in " ".join(services["ingress"]["healthcheck"]["test"])
    assert services["topics"]["command"][:2] == ["python", "deploy/topics.py"]


def test_compose_mounts_exist_and_grafana_is_provisioned() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} is missing"
    grafana = services["grafana"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in grafana["volumes"] if str(v).startswith(".")}
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/presettle.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert mounts[path] == "./grafana/dashboards", "the provider reads the folder the dashboards are mounted at"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / "grafana/dashboards" / Path(home).relative_to(path)).exists()
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_compose_prometheus_scrapes_every_presettle_process() -> None:
    services = compose()["services"]
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
               for job in config["scrape_configs"]}
    assert targets["presettle-ingress"] == [f"ingress:{DEFAULTS.http_port}"]
    workers = sorted(n for n, s in services.items() if s.get("command") == ["python", "-m", "services.stream"])
    assert sorted(targets["presettle-worker"]) == [f"{w}:{DEFAULTS.worker_metrics_port}" for w in workers]
    assert config["rule_files"] == ["alerts.yml"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")
def test_promtool_accepts_config_and_alert_rules() -> None:
    for args in (["check", "config", str(DEPLOY / "prometheus/prometheus.yml")],
                 ["check", "rules", str(DEPLOY / "prometheus/alerts.yml")]):
        proc = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alert_rules_reference_existing_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    known = series_names()
    for group in rules["groups"]:
        for rule in group["rules"]:
            names = promql_metric_names(rule["expr"])
            assert names or "up{" in rule["expr"], rule["alert"]
            assert names <= known, f"{rule['alert']}: unknown metrics {sorted(names - known)}"
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]


# -- Dockerfile ----------------------------------------------------------------------------
def test_dockerfile_builds_the_service_from_this_tree() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^RUN pip install --require-hashes -r requirements\.lock \\\n +&& pip install --no-deps \.", text, re.M)
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for source in ("services", "schemas", "pyproject.toml", "requirements.lock", "deploy/topics.py"):
        assert f"!{source}" in ignore
    assert f"EXPOSE {DEFAULTS.http_port} {DEFAULTS.worker_metrics_port}" in text
    cmd = json.loads(re.search(r"^CMD (\[.+\])$", text, re.M).group(1))  # type: ignore[union-attr]
    assert cmd[:2] == ["uvicorn", "services.ingress.app:app"] and str(DEFAULTS.http_port) in cmd
    env_names = set(re.findall(r"\b(PRESETTLE_[A-Z0-9_]+)=", text))
    assert env_names <= code_env_names()


def test_topics_script_configures_every_service_topic() -> None:
    import importlib.util

    from services.common.broker import service_topics

    spec = importlib.util.spec_from_file_location("deploy_topics", DEPLOY / "topics.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    settings = load_settings({"PRESETTLE_REPLICATION_FACTOR": "3"})
    configs = module.topic_configs(settings, 365)
    assert set(configs) == set(service_topics(settings))
    assert configs[settings.state_changelog_topic]["cleanup.policy"] == "compact"
    assert all(c["min.insync.replicas"] == "2" for c in configs.values())
    assert module.topic_configs(load_settings({}), 30)[settings.decisions_topic].get("min.insync.replicas") is None


# -- Kubernetes ----------------------------------------------------------------------------
def test_k8s_manifests_parse_and_kustomization_lists_them() -> None:
    docs = k8s_docs()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("StatefulSet", "presettle-worker") in kinds
    assert ("Deployment", "presettle-ingress") in kinds
    assert ("Service", "presettle-worker") in kinds and ("Service", "presettle-ingress") in kinds
    assert ("ConfigMap", "presettle-config") in kinds and ("Secret", "presettle-keys") in kinds
    for d in docs:
        assert d.get("apiVersion"), d
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == "presettle", d["metadata"]["name"]
    kustomization = k8s_docs(kustomization=True)[0]
    listed = set(kustomization["resources"])
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files
    assert kustomization["images"][0]["newTag"] == VERSION


def _container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_k8s_worker_statefulset_has_persistent_state() -> None:
    sts = k8s("StatefulSet", "presettle-worker")
    spec = sts["spec"]
    assert spec["serviceName"] == "presettle-worker"
    assert spec["replicas"] >= 2
    claims = spec["volumeClaimTemplates"]
    assert claims and claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    worker = _container(sts, "worker")
    assert worker["image"] == IMAGE
    assert worker["command"] == ["python", "-m", "services.stream"]
    mount = next(m for m in worker["volumeMounts"] if m["name"] == claims[0]["metadata"]["name"])
    config = k8s("ConfigMap", "presettle-config")["data"]
    assert mount["mountPath"] == config["PRESETTLE_DATA_DIR"], "faust's data dir is on the volume"
    assert worker["ports"][0]["containerPort"] == DEFAULTS.worker_metrics_port
    env = {e["name"]: e for e in worker["env"]}
    assert env["PRESETTLE_WORKER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    init = sts["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"][:2] == ["python", "deploy/topics.py"] and init["image"] == IMAGE
    headless = k8s("Service", "presettle-worker")
    assert headless["spec"]["clusterIP"] == "None"
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in headless["spec"]["selector"].items())
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pods = sts["spec"]["template"]["metadata"]["annotations"]
    assert pods["prometheus.io/port"] == str(DEFAULTS.worker_metrics_port)


def test_k8s_ingress_deployment_ready_on_healthz() -> None:
    dep = k8s("Deployment", "presettle-ingress")
    ingress = _container(dep, "ingress")
    assert ingress["image"] == IMAGE
    assert ingress["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert ingress["livenessProbe"]["httpGet"]["path"] != "/healthz", "a worker outage must not restart the ingress"
    port = ingress["ports"][0]
    assert port["containerPort"] == DEFAULTS.http_port
    assert ingress["readinessProbe"]["httpGet"]["port"] == port["name"]
    assert str(DEFAULTS.http_port) in ingress["command"]
    svc = k8s("Service", "presettle-ingress")
    assert svc["spec"]["ports"][0]["targetPort"] == port["name"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    env = {e["name"]: e for e in ingress["env"]}
    assert env["PRESETTLE_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_k8s_config_and_secret_are_settings_the_code_reads() -> None:
    known = code_env_names()
    config = k8s("ConfigMap", "presettle-config")["data"]
    secret = k8s("Secret", "presettle-keys")["stringData"]
    assert {"PRESETTLE_API_KEYS", "PRESETTLE_ADMIN_KEYS", "PRESETTLE_PSEUDONYM_KEY"} <= set(secret)
    assert not set(secret) & set(config), "keys live in the Secret only"
    names = {k for k in {**config, **secret} if k.startswith("PRESETTLE_")}
    for workload in (k8s("Deployment", "presettle-ingress"), k8s("StatefulSet", "presettle-worker")):
        for c in workload["spec"]["template"]["spec"]["containers"]:
            refs = {next(iter(r.values()))["name"] for r in c["envFrom"]}
            assert refs == {"presettle-config", "presettle-keys"}
            names |= {e["name"] for e in c.get("env", []) if e["name"].startswith("PRESETTLE_")}
    assert names <= known, f"variables no code reads: {sorted(names - known)}"
    with pytest.raises(SettingsError, match="PRESETTLE_API_KEYS"):
        load_settings({**config, **secret})  # the shipped placeholders are refused
    settings = load_settings({**config, **secret, **REAL_SECRETS})
    assert settings.env == "production" and settings.replication_factor == 3
    assert settings.http_port == DEFAULTS.http_port and settings.worker_metrics_port == DEFAULTS.worker_metrics_port
    assert settings.partitions >= k8s("StatefulSet", "presettle-worker")["spec"]["replicas"]


# -- Grafana -------------------------------------------------------------------------------
def grafana_panels() -> list[dict[str, Any]]:
    board = json.loads((DEPLOY / "grafana/dashboards/presettle.json").read_text())
    return [p for p in board["panels"] if p["type"] != "row"]


def test_grafana_dashboard_covers_the_operations_questions() -> None:
    board = json.loads((DEPLOY / "grafana/dashboards/presettle.json").read_text())
    assert board["uid"] and board["title"]
    exprs = " ".join(t["expr"] for p in grafana_panels() for t in p["targets"])
    for needle in ("histogram_quantile(0.99, sum by (le) (rate(presettle_decision_latency_seconds_bucket",
                   "presettle_http_requests_total", "presettle_budget_timeouts_total",
                   "sum by (rule_id) (rate(presettle_alerts_total", 'presettle_feedback_total{outcome="overridden"}',
                   "presettle_worker_consumer_lag", "presettle_reply_backlog"):
        assert needle in exprs, needle
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_grafana_promql_references_only_metrics_in_the_code() -> None:
    known = series_names()
    for panel in grafana_panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = promql_metric_names(target["expr"])
            assert names, f"{panel['title']}: no presettle metric in {target['expr']}"
            assert names <= known, f"{panel['title']}: unknown metrics {sorted(names - known)}"
            assert target["datasource"]["uid"] == "${datasource}"


def test_grafana_json_is_what_the_builder_produces() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_dashboard", DEPLOY / "grafana" / "build_dashboard.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    on_disk = (DEPLOY / "grafana/dashboards/presettle.json").read_text(encoding="utf-8")
    assert on_disk == module.render(), "run: python deploy/grafana/build_dashboard.py"


# -- hardening: Pod Security "restricted", the network split ---------------------------------
def _workloads() -> list[dict[str, Any]]:
    return [d for d in k8s_docs() if d["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}]


def test_every_pod_meets_pod_security_restricted() -> None:
    workloads = _workloads()
    assert {w["metadata"]["name"] for w in workloads} >= {"presettle-ingress", "presettle-worker", "presettle-bureau"}
    for w in workloads:
        name = w["metadata"]["name"]
        pod = w["spec"]["template"]["spec"]
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] != 0, name
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("hostNetwork") is not True and pod.get("hostPID") is not True, name
        volumes = {v["name"]: v for v in pod.get("volumes", [])} | {
            c["metadata"]["name"]: c for c in w["spec"].get("volumeClaimTemplates", [])}
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{name}/{c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc.get("privileged") is not True and sc.get("runAsNonRoot", True) is True, where
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: a writable /tmp on a read-only root"
            assert all(v in volumes for v in mounts.values()), where
    worker = _container(k8s("StatefulSet", "presettle-worker"), "worker")
    data_dir = k8s("ConfigMap", "presettle-config")["data"]["PRESETTLE_DATA_DIR"]
    assert data_dir in {m["mountPath"] for m in worker["volumeMounts"]}, "the worker writes its data dir on a volume"


def test_network_policies_keep_the_board_and_admin_endpoints_off_the_hospital_network() -> None:
    policies = [d for d in k8s_docs() if d["kind"] == "NetworkPolicy"]
    deny = next(p for p in policies if p["spec"]["podSelector"] == {})
    assert deny["spec"]["policyTypes"] == ["Ingress"] and not deny["spec"].get("ingress"), "default deny"

    def zones(app: str) -> set[str]:
        allowed: set[str] = set()
        for p in policies:
            if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == app:
                for rule in p["spec"].get("ingress", []):
                    for peer in rule.get("from", []):
                        assert "ipBlock" not in peer and "podSelector" not in peer or "namespaceSelector" in peer
                        allowed.add(peer["namespaceSelector"]["matchLabels"]["presettle.io/zone"])
        return allowed

    assert zones("presettle-ingress") == {"hospital-gateway", "monitoring"}
    assert zones("presettle-bureau") == {"bureau", "monitoring"}
    assert zones("presettle-worker") == {"monitoring"}
    # The hospital-facing instance does not serve the live page (production default); the bureau's does.
    config = k8s("ConfigMap", "presettle-config")["data"]
    ingress_env = {e["name"]: e.get("value") for e in _container(k8s("Deployment", "presettle-ingress"), "ingress")
                   .get("env", [])}
    assert config["PRESETTLE_ENV"] == "production" and "PRESETTLE_DASHBOARD_ENABLED" not in config
    assert "PRESETTLE_DASHBOARD_ENABLED" not in ingress_env
    assert not load_settings({**config, **REAL_SECRETS}).dashboard_on
    bureau_env = {e["name"]: e.get("value") for e in _container(k8s("Deployment", "presettle-bureau"), "ingress")["env"]}
    assert load_settings({**config, **REAL_SECRETS, **{k: v for k, v in bureau_env.items() if v}}).dashboard_on
    # The hospital gateway routes only the HIS paths, and only to the hospital-facing instance.
    hospital = k8s("Ingress", "presettle-hospital")
    paths = [p for rule in hospital["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {p["backend"]["service"]["name"] for p in paths} == {"presettle-ingress"}
    published = {p["path"] for p in paths}
    assert {"/v1/events", "/nhsa", "/cds-services", "/v1/alerts"} <= published
    for private in ("/dashboard", "/v1/patient-status", "/metrics", "/docs", "/openapi.json", "/"):
        assert not any(private == p or (private.startswith(p + "/")) for p in published), private
