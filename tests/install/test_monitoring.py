"""The chart's alerts and dashboard, checked by Prometheus's own ``promtool`` (Debian's
``prometheus`` package, which ``.ci/run`` installs).

* The PrometheusRule the chart renders (each feature choice) passes ``promtool check rules``, and
  ``promtool test rules`` runs ``rules_test.yaml`` on it: each alert fires after its ``for``
  with the labels and texts written there, not before, and not for healthy series. A changed
  threshold makes those unit tests fail (they can fail).
* Every query of the Grafana dashboard parses (``promtool check rules`` on recording rules made
  from them).
* Every metric the rules and the dashboard use is one the controller exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from secretops_controller.metrics import Metrics

from tests.install.chart import CHART, CHOICES, render_chart

HERE = Path(__file__).parent
UNIT_TESTS = HERE / "rules_test.yaml"
DASHBOARD = CHART / "files" / "dashboards" / "secretops.json"
# Metrics the rules or the dashboard use before the controller exports them (none today); a
# name here that the controller exports fails the test, so the list cannot go stale.
PENDING: set[str] = set()


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed: Debian's prometheus package provides it "
                    "(.ci/run installs it with apt-get)")
    return found


def _run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def _rules(values: dict[str, Any]) -> dict[str, Any]:
    merged = {**values, "prometheusRule": {**values.get("prometheusRule", {}), "enabled": True}}
    [rule] = [d for d in render_chart(merged) if d["kind"] == "PrometheusRule"]
    return dict(rule["spec"])


def _write_rules(directory: Path, values: dict[str, Any]) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(_rules(values), sort_keys=False))
    return path


@pytest.mark.parametrize("choice", sorted(CHOICES))
def test_rules_pass_promtool_check(promtool: str, tmp_path: Path, choice: str) -> None:
    _, values = CHOICES[choice]
    _write_rules(tmp_path, values)
    proc = _run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rules_of_a_feature_that_is_off_are_left_out() -> None:
    alerts = {r["alert"] for g in _rules({"features": {"externalSecrets": False}})["groups"]
              for r in g["rules"]}
    assert alerts == {"SecretopsControllerDown", "SecretopsNoLeader",
                      "SecretopsSealedSecretNotSynced", "SecretopsUnsealErrors",
                      "SecretopsSealingKeyTooOld"}
    alerts = {r["alert"] for g in _rules({"features": {"sealedSecrets": False}})["groups"]
              for r in g["rules"]}
    assert alerts == {"SecretopsControllerDown", "SecretopsNoLeader",
                      "SecretopsExternalSecretNotReady", "SecretopsProviderErrors"}


def test_alerts_pass_their_unit_tests(promtool: str, tmp_path: Path) -> None:
    _write_rules(tmp_path, {})
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    proc = _run(promtool, "test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # every alert of the rules is tested
    tested = set(re.findall(r"alertname: (\w+)", UNIT_TESTS.read_text()))
    assert tested == {r["alert"] for g in _rules({})["groups"] for r in g["rules"]}


def test_the_unit_tests_catch_a_changed_threshold(promtool: str, tmp_path: Path) -> None:
    _write_rules(tmp_path, {"prometheusRule": {"externalSecretNotReadyFor": "30m"}})
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    proc = _run(promtool, "test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert proc.returncode != 0
    assert "SecretopsExternalSecretNotReady" in proc.stdout + proc.stderr


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_queries_parse(promtool: str, tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
               for p in dashboard["panels"])
    # Grafana's $__rate_interval is not PromQL: a duration stands in for it
    rules = [{"record": f"dashboard:query_{i}", "expr": q.replace("$__rate_interval", "5m")}
             for i, q in enumerate(_dashboard_queries())]
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = _run(promtool, "check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and a broken query is refused: the check can fail
    rules[0]["expr"] = "sum(rate(secretops_unseals_total[5m])"
    (tmp_path / "broken.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert _run(promtool, "check", "rules", "broken.yaml", cwd=tmp_path).returncode != 0


def _exported() -> set[str]:
    """The sample names the controller's registry exports (a counter's ``_total``, a
    histogram's ``_bucket``/``_sum``/``_count``, an info's ``_info``)."""
    from prometheus_client import generate_latest

    names: set[str] = set()
    text = generate_latest(Metrics().registry).decode()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                    "info": ("_info",)}.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
    return names


def test_rules_and_dashboard_use_the_controllers_metrics() -> None:
    used = set(re.findall(r"\bsecretops_[a-z0-9_]+", json.dumps(_rules({}))))
    used |= {m for q in _dashboard_queries() for m in re.findall(r"\bsecretops_[a-z0-9_]+", q)}
    exported = _exported()
    assert used - exported - PENDING == set(), "metrics the controller does not export"
    assert PENDING & exported == set(), "these landed: empty PENDING in this test"
