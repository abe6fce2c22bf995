"""The metric contract between the Rust processes and deploy/ (names, types, closed label
sets), and a small PromQL reader that finds the selectors, label matchers and grouping
labels in an expression so they can be checked against it. promtool checks the syntax;
this checks that the expressions ask for metrics and label values that exist."""

from __future__ import annotations

import re
from dataclasses import dataclass

SOURCES = {"imap", "pop3"}
TARGETS = {"imap", "graph", "ews"}
TARGET_LABELS = {"job", "instance"}
# The Prometheus jobs (deploy/prometheus/prometheus.yml; Service names on Kubernetes).
JOBS = {"mailhaul-worker", "mailhaul-coordinator", "rabbitmq", "prometheus"}

# name -> (type, {label: allowed values, or None for any value})
CONTRACT: dict[str, tuple[str, dict[str, set[str] | None]]] = {
    "mailhaul_messages_migrated_total": ("counter", {"source": SOURCES, "target": TARGETS}),
    "mailhaul_migrated_bytes_total": ("counter", {"source": SOURCES, "target": TARGETS}),
    "mailhaul_messages_recovered_total": ("counter", {"target": TARGETS}),
    "mailhaul_errors_total": (
        "counter",
        {
            "stage": {"source", "target", "ledger", "config", "permit", "plan", "shutdown", "task"},
            "class": {"transient", "throttled", "permanent"},
        },
    ),
    "mailhaul_throttle_events_total": ("counter", {"target": TARGETS}),
    "mailhaul_throttle_wait_seconds_total": ("counter", {"target": TARGETS}),
    "mailhaul_task_duration_seconds": ("histogram", {"outcome": {"done", "retried", "busy", "interrupted", "fenced", "failed"}}),
    "mailhaul_upload_duration_seconds": ("histogram", {"target": TARGETS}),
    "mailhaul_permit_wait_seconds": ("histogram", {"side": {"source", "target"}}),
    "mailhaul_tasks_in_flight": ("gauge", {}),
    "mailhaul_migration_messages_planned": ("gauge", {}),
    "mailhaul_migration_messages_done": ("gauge", {}),
    "mailhaul_migration_messages_failed": ("gauge", {}),
    "mailhaul_migration_bytes_planned": ("gauge", {}),
    "mailhaul_migration_bytes_done": ("gauge", {}),
    "mailhaul_migration_mailboxes": ("gauge", {"state": {"planned", "done", "failed"}}),
    "mailhaul_migration_started_timestamp_seconds": ("gauge", {}),
    "mailhaul_queue_messages": ("gauge", {"queue": {"tasks", "retry", "dead"}}),
    # RabbitMQ's rabbitmq_prometheus plugin, /metrics/per-object.
    "rabbitmq_queue_messages": ("gauge", {"vhost": None, "queue": None}),
    "rabbitmq_queue_messages_ready": ("gauge", {"vhost": None, "queue": None}),
    "rabbitmq_queue_messages_unacked": ("gauge", {"vhost": None, "queue": None}),
    "rabbitmq_queue_consumers": ("gauge", {"vhost": None, "queue": None}),
    # Prometheus' own per-target series.
    "up": ("gauge", {}),
}

FUNCTIONS_AND_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan", "start", "end",
}
_STRING = r'"(?:[^"\\]|\\.)*"'
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(' + _STRING + r')\s*,?')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]]  # (label, op, value)


def _unquote(s: str) -> str:
    return bytes(s[1:-1], "utf-8").decode("unicode_escape")


def read(expr: str) -> tuple[list[Selector], set[str]]:
    """The selectors of `expr` and the labels it groups or matches on."""
    grouping: set[str] = set()
    for _, labels in _GROUPING.findall(expr):
        grouping |= {l.strip() for l in labels.split(",") if l.strip()}
    text = _GROUPING.sub(" ", expr)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    selectors = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            end = re.match(_STRING, text[i:])
            i += end.end() if end else 1
            continue
        if c.isdigit() or c == ".":
            num = re.match(r"[0-9.]+(e[+-]?[0-9]+)?[a-z]*", text[i:])
            i += num.end()
            continue
        ident = _IDENT.match(text, i)
        if not ident:
            i += 1
            continue
        name = ident.group(0)
        j = ident.end()
        while j < len(text) and text[j].isspace():
            j += 1
        if j < len(text) and text[j] == "(" or name.lower() in FUNCTIONS_AND_KEYWORDS:
            i = ident.end()
            continue
        matchers = []
        if j < len(text) and text[j] == "{":
            close = j + 1
            while close < len(text) and text[close] != "}":
                m = _MATCHER.match(text, close)
                if not m:
                    raise ValueError(f"cannot read the label matchers at {text[j:j + 40]!r}")
                matchers.append((m.group(1), m.group(2), _unquote(m.group(3))))
                close = m.end()
            j = close + 1
        else:
            j = ident.end()
        selectors.append(Selector(name, matchers))
        i = j
    return selectors, grouping


def _labels_of(metric: str) -> tuple[str, dict[str, set[str] | None]] | None:
    if metric in CONTRACT:
        kind, labels = CONTRACT[metric]
        if kind == "histogram":
            return None  # a histogram is read through its _bucket/_sum/_count series
        return metric, labels
    for suffix in ("_bucket", "_sum", "_count"):
        base = metric.removesuffix(suffix)
        if base != metric and base in CONTRACT and CONTRACT[base][0] == "histogram":
            labels = dict(CONTRACT[base][1])
            if suffix == "_bucket":
                labels["le"] = None
            return base, labels
    return None


ALL_LABELS = set(TARGET_LABELS) | {"le"} | {
    label for _, labels in CONTRACT.values() for label in labels
}


def check(expr: str) -> list[str]:
    """Problems with the metrics and labels `expr` uses."""
    try:
        selectors, grouping = read(expr)
    except ValueError as err:
        return [str(err)]
    problems = []
    for label in sorted(grouping - ALL_LABELS):
        problems.append(f"groups or matches on {label!r}, which no metric has")
    for sel in selectors:
        known = _labels_of(sel.metric)
        if known is None:
            hint = " (read a histogram through _bucket, _sum or _count)" if sel.metric in CONTRACT else ""
            problems.append(f"{sel.metric}: not in the metric contract{hint}")
            continue
        base, labels = known
        allowed = dict(labels)
        allowed["job"] = JOBS
        allowed["instance"] = None
        for label, op, value in sel.matchers:
            if label not in allowed:
                problems.append(f"{sel.metric}{{{label}}}: {base} has no label {label!r}")
                continue
            values = allowed[label]
            if values is None:
                continue
            if op in ("=", "!="):
                ok = value in values
            else:
                try:
                    ok = any(re.fullmatch(value, v) for v in values)
                except re.error as err:
                    problems.append(f"{sel.metric}{{{label}{op}{value!r}}}: bad regex: {err}")
                    continue
            if not ok:
                problems.append(
                    f"{sel.metric}{{{label}{op}{value!r}}}: {label} is one of {sorted(values)}"
                )
    return problems
