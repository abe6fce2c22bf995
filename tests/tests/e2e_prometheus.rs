//! End to end with a real Prometheus: two workers, the coordinator and RabbitMQ's
//! Prometheus plugin are scraped every second during an IMAP -> IMAP migration, then every
//! PromQL expression of deploy/ is evaluated through Prometheus's HTTP API.
//!
//! How each expression is judged:
//! * Dashboards (`expr` anywhere in deploy/grafana/dashboards/*.json, Grafana's interval
//!   variables replaced by `1m`): every query must return data (a non-empty result) at
//!   the moment the coordinator exported its final values. A panel that shows nothing
//!   after a clean migration is a broken panel.
//! * Alerts (deploy/prometheus/alerts.yml, loaded into this Prometheus as a rule file, so
//!   Prometheus itself parses it and hands back each rule's expression): an alert's
//!   expression is its firing condition, which must be empty in a clean run, so
//!   (1) every rule evaluates with health "ok" (it parses and runs without error),
//!   (2) its whole expression returns nothing (no false alarm after a clean migration),
//!   (3) every series selector in it (`metric{matchers}`) returns data: that is the
//!   expression without its thresholds, reduced to what it reads, and it catches a
//!   misspelt metric or label value that would leave the alert unable to ever fire.

use mailhaul_tests::corpus;
use mailhaul_tests::harness::{Env, show};
use mailhaul_tests::kit::prometheus::{Prometheus, Sample, workspace_file};
use mailhaul_tests::kit::{self, RABBITMQ_PROMETHEUS_URL_ENV};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const DASHBOARDS: &str = "deploy/grafana/dashboards";
const ALERTS: &str = "deploy/prometheus/alerts.yml";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_rule_works_on_a_real_migration() -> anyhow::Result<()> {
    let dashboards = dashboard_queries()?;
    let alerts_file = workspace_file(ALERTS);
    assert!(
        alerts_file.is_file(),
        "{} is missing",
        alerts_file.display()
    );

    let shared = kit::shared();
    let rabbit = shared.rabbitmq_prometheus_url.clone().unwrap_or_else(|| {
        panic!(
            "RabbitMQ's Prometheus plugin is needed: set {RABBITMQ_PROMETHEUS_URL_ENV} along with {}",
            kit::AMQP_URL_ENV
        )
    });
    let users = ["alice", "bob"];
    let env = Env::new("prometheus", &users, "slice_messages = 20")?;
    let corpora = [corpus::standard(31, 1), corpus::standard(32, 2)];
    for (u, c) in users.iter().zip(&corpora) {
        env.seed(u, c).await?;
    }
    let total: u64 = corpora.iter().map(|c| c.message_count() as u64).sum();

    let [w1, w2, coord] = [free_addr()?, free_addr()?, free_addr()?];
    let prom = Prometheus::start(
        &scrape_configs(&[&w1, &w2], &coord, &rabbit, &env.namespace),
        &[alerts_file],
    )?;

    // The coordinator first, alone: Prometheus sees the plan with nothing done yet, so
    // the progress series rise during the run (the ETA panels need a slope).
    let mut coordinator = Coordinator::spawn(&env, &coord)?;
    wait_for(
        &prom,
        "mailhaul_migration_messages_planned > 0",
        &mut coordinator,
        "the coordinator's plan",
    )
    .await?;
    wait_for(
        &prom,
        &format!(
            "rabbitmq_queue_messages_ready{{queue=\"{}.tasks\"}}",
            env.namespace
        ),
        &mut coordinator,
        "the task queue in RabbitMQ's plugin metrics",
    )
    .await?;
    for w in [&w1, &w2] {
        env.spawn_worker(&["--concurrency", "2", "--metrics-addr", w], &[]);
    }
    // The moment Prometheus holds the final values, the coordinator's and then the
    // workers' (scraped up to a second apart): every query is evaluated at this time,
    // also after the coordinator has gone (it lingers 10 s).
    wait_for(
        &prom,
        "mailhaul_migration_messages_done == mailhaul_migration_messages_planned \
         and on () mailhaul_migration_mailboxes{state=\"done\"} \
         == ignoring (state) mailhaul_migration_mailboxes{state=\"planned\"}",
        &mut coordinator,
        "the coordinator's final values",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", env.worker_logs()))?;
    // The outcome the metrics must tell: every message, once, in both views.
    let at = wait_for(
        &prom,
        &format!(
            "sum(mailhaul_messages_migrated_total{{source=\"imap\",target=\"imap\"}}) == {total}"
        ),
        &mut coordinator,
        "the workers' final counts",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", env.worker_logs()))?[0]
        .time;
    let done = prom
        .query("mailhaul_migration_messages_done", Some(at))
        .await?;
    assert_eq!(
        done.first().map(|s| s.value),
        Some(total as f64),
        "coordinator: messages done"
    );

    let mut problems = Vec::new();
    for (file, expr) in &dashboards {
        match prom.query(expr, Some(at)).await {
            Ok(r) if r.is_empty() => problems.push(format!("{file}: no data: {expr}")),
            Ok(_) => {}
            Err(err) => problems.push(format!("{file}: {err:#}: {expr}")),
        }
    }
    let alerts = alert_rules(&prom).await?;
    let declared = std::fs::read_to_string(workspace_file(ALERTS))?
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    assert_eq!(alerts.len(), declared, "Prometheus loaded every alert rule");
    for a in &alerts {
        if a.health != "ok" {
            problems.push(format!(
                "{ALERTS} {}: health {} ({})",
                a.name, a.health, a.error
            ));
        }
        match prom.query(&a.query, Some(at)).await {
            Ok(r) if !r.is_empty() => problems.push(format!(
                "{ALERTS} {}: fires after a clean migration: {:?}",
                a.name,
                r.iter().map(|s| &s.labels).collect::<Vec<_>>()
            )),
            Ok(_) => {}
            Err(err) => problems.push(format!("{ALERTS} {}: {err:#}", a.name)),
        }
        for sel in selectors(&a.query) {
            match prom.query(&sel, Some(at)).await {
                Ok(r) if r.is_empty() => problems.push(format!(
                    "{ALERTS} {}: reads {sel}, which has no series",
                    a.name
                )),
                Ok(_) => {}
                Err(err) => problems.push(format!("{ALERTS} {}: {sel}: {err:#}", a.name)),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} dashboard queries and {} alert rules have problems:\n  {}",
        problems.len(),
        dashboards.len(),
        alerts.len(),
        problems.join("\n  ")
    );

    // The coordinator lingers, then ends the pass like any other.
    let out = coordinator.wait(Duration::from_secs(60))?;
    assert!(out.0, "migrate failed:\n{}", out.1);
    assert!(out.1.contains("0 failed"), "{}", out.1);
    Ok(())
}

/// Every `expr` of every dashboard, with Grafana's variables replaced; (file, expr).
fn dashboard_queries() -> anyhow::Result<Vec<(String, String)>> {
    let dir = workspace_file(DASHBOARDS);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in &files {
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f)?)?;
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = format!("{DASHBOARDS}/{}", name.unwrap_or_default());
        let mut exprs = Vec::new();
        collect_exprs(&json, &mut exprs);
        for e in exprs {
            out.push((
                name.clone(),
                grafana_to_promql(&e).map_err(|err| anyhow::anyhow!("{name}: {err}"))?,
            ));
        }
    }
    anyhow::ensure!(!out.is_empty(), "no dashboard queries in {}", dir.display());
    Ok(out)
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) if !s.trim().is_empty() => {
                        out.push(s.clone())
                    }
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// Replaces Grafana's interval variables; any other `$variable` is an error naming it.
fn grafana_to_promql(expr: &str) -> Result<String, String> {
    let mut s = expr.to_owned();
    for (var, value) in [
        ("__rate_interval", "1m"),
        ("__interval_ms", "60000"),
        ("__interval", "1m"),
        ("interval", "1m"),
        ("__range", "5m"),
    ] {
        s = s
            .replace(&format!("${{{var}}}"), value)
            .replace(&format!("${var}"), value);
    }
    let unknown = s.char_indices().find(|&(i, c)| {
        c == '$'
            && s[i + 1..]
                .chars()
                .next()
                .is_some_and(|n| n == '{' || n == '_' || n.is_ascii_alphabetic())
    });
    match unknown {
        Some((i, _)) => Err(format!(
            "unknown Grafana variable at {:?} in {expr}; teach e2e_prometheus what to put there",
            &s[i..]
        )),
        None => Ok(s),
    }
}

/// An alerting rule as Prometheus loaded it.
#[derive(Debug)]
struct AlertRule {
    name: String,
    query: String,
    health: String,
    error: String,
}

/// The alerting rules, once each has been evaluated at least once (at most 30 s).
async fn alert_rules(prom: &Prometheus) -> anyhow::Result<Vec<AlertRule>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let groups = prom.rule_groups().await?;
        let rules: Vec<&serde_json::Value> = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .filter(|r| r["type"] == "alerting")
            .collect();
        let text = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let evaluated = rules
            .iter()
            .all(|r| !text(r, "lastEvaluation").starts_with("0001-"));
        if (evaluated && !rules.is_empty()) || Instant::now() > deadline {
            return Ok(rules
                .iter()
                .map(|r| AlertRule {
                    name: text(r, "name"),
                    query: text(r, "query"),
                    health: text(r, "health"),
                    error: text(r, "lastError"),
                })
                .collect());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The series selectors of a PromQL expression (`metric{matchers}`), without ranges,
/// offsets, functions, aggregations, keywords and grouping label lists.
fn selectors(expr: &str) -> Vec<String> {
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 8] = [
        "and", "or", "unless", "offset", "bool", "atan2", "inf", "nan",
    ];
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let skip_ws = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = after_string(b, i),
            b'[' => i = after_closing(b, i, b'[', b']'),
            b'{' => {
                let end = after_closing(b, i, b'{', b'}');
                out.push(expr[i..end].to_owned());
                i = end;
            }
            c if c.is_ascii_digit() || c == b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if ident(c) => {
                let start = i;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                let name = &expr[start..i];
                let lower = name.to_ascii_lowercase();
                let j = skip_ws(i);
                if GROUPING.contains(&lower.as_str()) {
                    if j < b.len() && b[j] == b'(' {
                        i = after_closing(b, j, b'(', b')');
                    }
                } else if KEYWORDS.contains(&lower.as_str())
                    || AGGREGATIONS.contains(&lower.as_str())
                    || (j < b.len() && b[j] == b'(')
                {
                    // A keyword, an aggregation or a function call: not a selector.
                } else if j < b.len() && b[j] == b'{' {
                    i = after_closing(b, j, b'{', b'}');
                    out.push(format!("{name}{}", &expr[j..i]));
                } else {
                    out.push(name.to_owned());
                }
            }
            _ => i += 1,
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.clone()));
    out
}

/// The index after the string literal starting at `i`.
fn after_string(b: &[u8], i: usize) -> usize {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() && b[j] != quote {
        j += if b[j] == b'\\' && quote != b'`' { 2 } else { 1 };
    }
    (j + 1).min(b.len())
}

/// The index after the bracket closing the one at `i` (strings inside skipped).
fn after_closing(b: &[u8], i: usize, open: u8, close: u8) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'"' | b'\'' | b'`' => {
                j = after_string(b, j);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    b.len()
}

fn free_addr() -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}

/// The scrape jobs of deploy/prometheus/prometheus.yml (same job names, so the
/// dashboards' and alerts' `job` matchers hold), pointed at this test's processes. The
/// RabbitMQ job keeps only this test's queues (and the broker-wide series).
fn scrape_configs(workers: &[&str], coordinator: &str, rabbit: &str, ns: &str) -> String {
    let list = |t: &[&str]| {
        t.iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rabbit = rabbit.trim_start_matches("http://").trim_end_matches('/');
    let ns_re = ns.replace('.', "[.]");
    format!(
        "  - job_name: mailhaul-worker\n    static_configs:\n      - targets: [{}]\n\
         \x20 - job_name: mailhaul-coordinator\n    static_configs:\n      - targets: [{}]\n\
         \x20 - job_name: rabbitmq\n    metrics_path: /metrics/per-object\n    static_configs:\n      - targets: [\"{rabbit}\"]\n\
         \x20   metric_relabel_configs:\n      - source_labels: [queue]\n        regex: \"({ns_re}[.].*)?\"\n        action: keep\n",
        list(workers),
        list(&[coordinator]),
    )
}

/// Polls `expr` until it returns data; fails when the coordinator exits first or after
/// two minutes.
async fn wait_for(
    prom: &Prometheus,
    expr: &str,
    coordinator: &mut Coordinator,
    what: &str,
) -> anyhow::Result<Vec<Sample>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = prom.query(expr, None).await?;
        if !r.is_empty() {
            return Ok(r);
        }
        if let Some((_, output)) = coordinator.exited()? {
            anyhow::bail!(
                "the coordinator exited before Prometheus saw {what} ({expr}):\n{output}\n--- prometheus ---\n{}",
                prom.log()
            );
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "Prometheus did not see {what} ({expr}) within 2 minutes; targets: {:#?}",
                prom.targets().await?
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `mailhaul migrate` running in the background with metrics on; killed on drop.
struct Coordinator {
    child: Child,
    dir: PathBuf,
}

impl Coordinator {
    fn spawn(env: &Env, addr: &str) -> anyhow::Result<Coordinator> {
        let dir = env.dir().to_owned();
        let mut c: Command = env.command("mailhaul");
        c.arg("migrate")
            .arg(&env.manifest)
            .args(["--metrics-addr", addr, "--metrics-linger-secs", "10"])
            .stdout(std::fs::File::create(dir.join("migrate.out"))?)
            .stderr(std::fs::File::create(dir.join("migrate.err"))?);
        Ok(Coordinator {
            child: c.spawn()?,
            dir,
        })
    }

    /// Its output so far, as `show` prints it.
    fn output(&self, status: Option<std::process::ExitStatus>) -> String {
        let read = |f: &str| std::fs::read(self.dir.join(f)).unwrap_or_default();
        show(&std::process::Output {
            status: status.unwrap_or_default(),
            stdout: read("migrate.out"),
            stderr: read("migrate.err"),
        })
    }

    /// `Some((success, output))` once it has exited.
    fn exited(&mut self) -> anyhow::Result<Option<(bool, String)>> {
        Ok(self
            .child
            .try_wait()?
            .map(|s| (s.success(), self.output(Some(s)))))
    }

    fn wait(&mut self, limit: Duration) -> anyhow::Result<(bool, String)> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(done) = self.exited()? {
                return Ok(done);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the coordinator did not exit within {limit:?}:\n{}",
                self.output(None)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn selectors_are_read_from_alert_expressions() {
    let cases: &[(&str, &[&str])] = &[
        (
            "up{job=\"mailhaul-worker\"} == 0",
            &["up{job=\"mailhaul-worker\"}"],
        ),
        (
            "sum by (stage, class) (rate(mailhaul_errors_total{class!=\"throttled\"}[10m])) \
             / ignoring (stage, class) group_left () (sum(rate(x_total[10m])) or vector(0)) > 0.05",
            &["mailhaul_errors_total{class!=\"throttled\"}", "x_total"],
        ),
        (
            "(a - b) > 0 and changes(b[15m]) == 0 and time() - c > 900 \
             and on () count(up{job=\"w\"} == 1) > 0",
            &["a", "b", "c", "up{job=\"w\"}"],
        ),
        (
            "sum by (vhost, queue) (rabbitmq_queue_messages{queue=~\".+[.]dead\"}) > 0 \
             unless on () m{queue=\"a}b\"} offset 5m",
            &[
                "rabbitmq_queue_messages{queue=~\".+[.]dead\"}",
                "m{queue=\"a}b\"}",
            ],
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(selectors(expr), *want, "{expr}");
    }
}

#[test]
fn grafana_variables_become_durations() {
    assert_eq!(
        grafana_to_promql("rate(x[$__rate_interval]) + rate(y[${__interval}])"),
        Ok("rate(x[1m]) + rate(y[1m])".to_owned())
    );
    let err = grafana_to_promql("x{instance=\"$instance\"}").expect_err("unknown variable");
    assert!(err.contains("$instance"), "{err}");
    assert_eq!(
        grafana_to_promql("x{a=~\"b$\"}"),
        Ok("x{a=~\"b$\"}".to_owned())
    );
}
