"""Prometheus and Grafana: promtool over the config, the alert rules and their unit tests;
every alert tested firing and quiet and telling the operator what to do; every dashboard
expression parsed by promtool and checked against the metric contract; the Kubernetes
PrometheusRule identical to alerts.yml."""

from __future__ import annotations

import json
import re
import tempfile

import yaml

from . import promql
from .common import (
    ALERTS, DASHBOARD, PROMETHEUS, PROMETHEUS_RULE, CheckFailed, Problems, load_yaml,
    promtool, rel, run,
)


def config() -> str:
    run([promtool(), "check", "config", str(PROMETHEUS / "prometheus.yml")], "promtool check config")
    return "promtool check config"


def rules() -> str:
    run([promtool(), "check", "rules", str(ALERTS)], "promtool check rules")
    return f"{len(alert_rules())} alerts, promtool check rules"


def rule_tests() -> str:
    run([promtool(), "test", "rules", str(PROMETHEUS / "alerts_test.yml")], "promtool test rules")
    return "promtool test rules"


def alert_rules() -> list[dict]:
    groups = load_yaml(ALERTS).get("groups") or []
    return [r for g in groups for r in g.get("rules") or [] if "alert" in r]


def test_coverage() -> str:
    """Every alert has a unit test where it fires and one where it does not."""
    tests = load_yaml(PROMETHEUS / "alerts_test.yml").get("tests") or []
    fires, quiet = set(), set()
    for test in tests:
        for case in test.get("alert_rule_test") or []:
            (fires if case.get("exp_alerts") else quiet).add(case.get("alertname"))
    p = Problems()
    names = [r["alert"] for r in alert_rules()]
    for name in names:
        p.require(name in fires, f"{name}: no test case where it fires (alerts_test.yml)")
        p.require(name in quiet, f"{name}: no test case where it stays quiet (alerts_test.yml)")
    for name in sorted((fires | quiet) - set(names)):
        p.add(f"alerts_test.yml tests {name!r}, which alerts.yml does not define")
    p.raise_if_any()
    return f"{len(names)} alerts tested firing and quiet"


def alert_contents() -> str:
    """Severity, summary and an actionable description on every alert; known metrics."""
    p = Problems()
    for r in alert_rules():
        name = r["alert"]
        p.require(r.get("labels", {}).get("severity") in ("warning", "critical"),
                  f"{name}: labels.severity must be warning or critical")
        ann = r.get("annotations", {})
        p.require(bool(ann.get("summary")), f"{name}: no summary annotation")
        p.require(len(ann.get("description", "")) >= 80,
                  f"{name}: the description must tell the operator what to do")
        for problem in promql.check(r["expr"]):
            p.add(f"{name}: {problem}")
    p.raise_if_any()
    return "severity, summary, description; metrics and labels in the contract"


def dashboard_targets() -> list[tuple[str, str]]:
    """(where, expr) for every query of the dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in _panels(dash):
        for t in panel.get("targets") or []:
            out.append((f"panel {panel.get('id')} {panel.get('title')!r} {t.get('refId')}", t.get("expr", "")))
    return out


def _panels(dash: dict) -> list[dict]:
    panels = []
    for panel in dash.get("panels") or []:
        panels.append(panel)
        panels.extend(panel.get("panels") or [])  # collapsed rows hold their panels
    return panels


def dashboard() -> str:
    """The dashboard's structure, and every expression through promtool and the contract."""
    try:
        dash = json.loads(DASHBOARD.read_text())
    except (OSError, ValueError) as err:
        raise CheckFailed([f"{rel(DASHBOARD)}: {err}"]) from err
    p = Problems()
    p.require(dash.get("uid") == "mailhaul", "uid must be \"mailhaul\" (links and the home dashboard use it)")
    variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list") or []}
    p.require(variables.get("datasource", {}).get("type") == "datasource",
              "needs the \"datasource\" variable (type datasource) its panels use")
    ids, boxes = set(), []
    for panel in _panels(dash):
        pid, title = panel.get("id"), panel.get("title")
        p.require(isinstance(pid, int) and pid not in ids, f"panel {title!r}: id {pid} missing or repeated")
        ids.add(pid)
        g = panel.get("gridPos") or {}
        if p.require(all(isinstance(g.get(k), int) for k in "xywh") and g["x"] + g["w"] <= 24,
                     f"panel {title!r}: gridPos must fit 24 columns"):
            for other_title, o in boxes:
                if g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"] and g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"]:
                    p.add(f"panel {title!r} overlaps {other_title!r}")
            boxes.append((title, g))
        if panel.get("type") == "row":
            continue
        p.require(panel.get("datasource", {}).get("uid") == "${datasource}",
                  f"panel {title!r}: datasource must be ${{datasource}}")
        p.require(bool(panel.get("description")), f"panel {title!r}: no description (what to watch)")
        targets = panel.get("targets") or []
        p.require(bool(targets), f"panel {title!r}: no queries")
        refs = [t.get("refId") for t in targets]
        p.require(len(set(refs)) == len(refs), f"panel {title!r}: refIds repeat")
    exprs = dashboard_targets()
    for where, expr in exprs:
        if "$" in expr:
            p.add(f"{where}: uses a Grafana variable; keep expressions plain PromQL so tests can run them")
        for problem in promql.check(expr):
            p.add(f"{where}: {problem}")
    p.raise_if_any()
    # promtool parses each expression as a recording rule.
    rules = [{"record": f"dashboard:expr_{i}", "expr": e} for i, (_, e) in enumerate(exprs)]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="dashboard-exprs-") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        f.flush()
        try:
            run([promtool(), "check", "rules", f.name], "promtool check rules (dashboard expressions)")
        except CheckFailed as err:
            # Name the panels behind promtool's rule names.
            bad = sorted({int(n) for l in err.lines for n in re.findall(r"dashboard:expr_(\d+)", l)})
            names = [f"  dashboard:expr_{i} is {exprs[i][0]}: {exprs[i][1]}" for i in bad]
            raise CheckFailed(err.lines + names) from err
    return f"{len(exprs)} expressions in {len(ids)} panels parse (promtool), metrics in the contract"


def grafana_provisioning() -> str:
    p = Problems()
    ds = load_yaml(PROMETHEUS.parent / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    sources = ds.get("datasources") or []
    p.require(any(s.get("type") == "prometheus" and s.get("url") == "http://prometheus:9090" for s in sources),
              "datasources: a prometheus datasource at http://prometheus:9090 (the compose service)")
    prov = load_yaml(PROMETHEUS.parent / "grafana" / "provisioning" / "dashboards" / "mailhaul.yml")
    paths = [pr.get("options", {}).get("path") for pr in prov.get("providers") or []]
    p.require(paths == ["/etc/grafana/dashboards"],
              "dashboards provider: path must be /etc/grafana/dashboards (docker-compose.yml mounts the JSON there)")
    p.raise_if_any()
    return "datasource and dashboard provider"


# ---------------------------------------------------------------- PrometheusRule

RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `scripts/check-deploy --sync`; edit that
# file, not this one (scripts/check-deploy fails while they differ). The Prometheus
# Operator picks PrometheusRules by label: if your Prometheus' ruleSelector needs one
# (kube-prometheus-stack: `release: <its release name>`), add it with `labels:` in
# kustomization.yaml rather than here.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: mailhaul
  namespace: mailhaul
  labels:
    app.kubernetes.io/name: mailhaul
    app.kubernetes.io/part-of: mailhaul
spec:
"""


def prometheus_rule_text() -> str:
    text = ALERTS.read_text()
    start = re.search(r"^groups:", text, re.M)
    if not start:
        raise CheckFailed([f"{rel(ALERTS)}: no top-level groups:"])
    body = text[start.start():]
    return RULE_HEADER + "".join("  " + l if l.strip() else l for l in body.splitlines(True))


def sync_prometheus_rule() -> str:
    PROMETHEUS_RULE.write_text(prometheus_rule_text())
    return f"wrote {rel(PROMETHEUS_RULE)} from {rel(ALERTS)}"


def prometheus_rule_in_sync() -> str:
    if not PROMETHEUS_RULE.exists():
        raise CheckFailed([f"{rel(PROMETHEUS_RULE)} missing; run scripts/check-deploy --sync"])
    rule = load_yaml(PROMETHEUS_RULE)
    if (rule.get("spec") or {}).get("groups") != load_yaml(ALERTS).get("groups"):
        raise CheckFailed([f"{rel(PROMETHEUS_RULE)} differs from {rel(ALERTS)}; run scripts/check-deploy --sync"])
    return "same groups as alerts.yml"
