"""Runs every check of deploy/ and prints one line per check; exits 1 if any failed.

    python deploy/check           # all checks
    python deploy/check --sync    # rewrite deploy/kubernetes/prometheusrule.yaml first
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    # `python deploy/check`: import this directory as the package `check`.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "check"

from check import compose, images, kube, prom  # noqa: E402
from check.common import CheckFailed  # noqa: E402

CHECKS = [
    ("prometheus config", prom.config),
    ("alert rules", prom.rules),
    ("alert rule unit tests", prom.rule_tests),
    ("alert test coverage", prom.test_coverage),
    ("alert contents", prom.alert_contents),
    ("grafana dashboard", prom.dashboard),
    ("grafana provisioning", prom.grafana_provisioning),
    ("compose schema", compose.schema),
    ("compose services", compose.services),
    ("compose prometheus targets", compose.prometheus_targets),
    ("compose secrets", compose.secrets),
    ("dockerfile", images.dockerfile),
    ("demo dovecot", images.dovecot),
    ("shell scripts", images.shell_scripts),
    ("kubernetes schemas", kube.schemas),
    ("kubernetes references", kube.references),
    ("kubernetes manifest", kube.manifest),
    ("kubernetes prometheusrule", prom.prometheus_rule_in_sync),
]


def main(argv: list[str]) -> int:
    if "--sync" in argv:
        print(f"sync  {prom.sync_prometheus_rule()}")
    failed = 0
    started = time.monotonic()
    for name, check in CHECKS:
        try:
            detail = check()
        except CheckFailed as err:
            failed += 1
            print(f"FAIL  {name}: {err.lines[0]}")
            for line in err.lines[1:]:
                print(f"        {line}")
        except Exception as err:  # a bug in a check must not hide the others' results
            failed += 1
            print(f"FAIL  {name}: {type(err).__name__}: {err}")
        else:
            print(f"ok    {name}: {detail}")
        sys.stdout.flush()
    took = time.monotonic() - started
    print(f"check-deploy: {len(CHECKS) - failed} of {len(CHECKS)} checks passed in {took:.1f} s")
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
