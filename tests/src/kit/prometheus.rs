//! A private Prometheus (Debian's `prometheus` package) for one test: a temp dir for its
//! config and TSDB, a free 127.0.0.1 port, scraping and evaluating rules every second,
//! and a small client for its HTTP API (`/api/v1/query`, `/api/v1/rules`).
//!
//! The server runs in the foreground as our child; `Drop` stops it and waits. A missing
//! binary fails loudly and names `scripts/install-deps`.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::ports::{free_port, wait_until};
use super::{find_program, log_tail, reaper};

/// How long Prometheus may take to become ready (it usually needs well under a second).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Prometheus, stopped and deleted on drop.
pub struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    reaper_key: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("pid", &self.child.id())
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// One series of a query result: its labels and its value at the evaluation time.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The labels (`__name__` included when the result keeps it).
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// The evaluation time, Unix seconds.
    pub time: f64,
    /// The value (`NaN` is a value too).
    pub value: f64,
}

impl Prometheus {
    /// Starts Prometheus with a global scrape and evaluation interval of 1 s, the rule
    /// files `rules`, and `scrape_configs` (YAML: the items of the `scrape_configs` list,
    /// indented by two spaces); returns once `/-/ready` answers 200.
    ///
    /// # Errors
    /// `prometheus` is not installed (the message says to run `scripts/install-deps`),
    /// or it does not come up (the message holds its log).
    pub fn start(scrape_configs: &str, rules: &[PathBuf]) -> anyhow::Result<Prometheus> {
        let bin = find_program("prometheus")?;
        let dir = tempfile::Builder::new()
            .prefix("mailhaul-prometheus-")
            .tempdir()?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
        );
        if !rules.is_empty() {
            config.push_str("rule_files:\n");
            for r in rules {
                config.push_str(&format!("  - {:?}\n", r.display().to_string()));
            }
        }
        config.push_str("scrape_configs:\n");
        config.push_str(scrape_configs);
        let conf = dir.path().join("prometheus.yml");
        std::fs::write(&conf, config)?;
        let log = dir.path().join("prometheus.log");
        let port = free_port();
        let out = std::fs::File::create(&log)?;
        let mut child = Command::new(&bin)
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let reaper_key = format!("prometheus-{}", child.id());
        if let Err(err) = reaper::register(&reaper_key, reaper::Target::Pid(child.id()), dir.path())
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err);
        }
        let ready = wait_until(STARTUP_TIMEOUT, || {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("prometheus exited with {status}");
            }
            Ok(is_ready(port))
        });
        let prometheus = Prometheus {
            child,
            dir,
            port,
            reaper_key,
            http: reqwest::Client::new(),
        };
        match ready {
            Ok(true) => Ok(prometheus),
            outcome => {
                let why = outcome
                    .err()
                    .map_or(format!("not ready within {STARTUP_TIMEOUT:?}"), |e| {
                        format!("{e:#}")
                    });
                anyhow::bail!(
                    "prometheus on port {port} did not start: {why}\n--- log ---\n{}",
                    log_tail(&log, 3000)
                )
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's log so far (the last 4 KB), for failure messages.
    pub fn log(&self) -> String {
        log_tail(&self.dir.path().join("prometheus.log"), 4000)
    }

    /// Evaluates `expr` as an instant query at `time` (Unix seconds; now when `None`).
    /// Scalars come back as one sample without labels.
    ///
    /// # Errors
    /// HTTP errors, or Prometheus rejects the query (the message holds its error).
    pub async fn query(&self, expr: &str, time: Option<f64>) -> anyhow::Result<Vec<Sample>> {
        let mut form = vec![("query", expr.to_owned())];
        if let Some(t) = time {
            form.push(("time", format!("{t:.3}")));
        }
        let data = self.api("query", &form).await?;
        let value = |v: &serde_json::Value| -> anyhow::Result<(f64, f64)> {
            let time = v[0].as_f64().context("a sample time")?;
            let value = v[1]
                .as_str()
                .context("a sample value")?
                .parse::<f64>()
                .context("a numeric sample value")?;
            Ok((time, value))
        };
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .context("a vector result")?
                .iter()
                .map(|s| {
                    let (time, value) = value(&s["value"])?;
                    Ok(Sample {
                        labels: s["metric"].as_object().cloned().unwrap_or_default(),
                        time,
                        value,
                    })
                })
                .collect(),
            Some("scalar") => {
                let (time, value) = value(&data["result"])?;
                Ok(vec![Sample {
                    labels: serde_json::Map::new(),
                    time,
                    value,
                }])
            }
            other => anyhow::bail!("query {expr:?}: unexpected result type {other:?}"),
        }
    }

    /// The rule groups as `/api/v1/rules` reports them (`data.groups`).
    ///
    /// # Errors
    /// HTTP errors.
    pub async fn rule_groups(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let data = self.get("rules").await?;
        Ok(data["groups"].as_array().cloned().unwrap_or_default())
    }

    /// The scrape targets as `/api/v1/targets` reports them (`data.activeTargets`).
    ///
    /// # Errors
    /// HTTP errors.
    pub async fn targets(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let data = self.get("targets").await?;
        Ok(data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    async fn get(&self, endpoint: &str) -> anyhow::Result<serde_json::Value> {
        let resp = self
            .http
            .get(format!("{}/api/v1/{endpoint}", self.url()))
            .send()
            .await
            .with_context(|| format!("GET /api/v1/{endpoint}"))?;
        answer(endpoint, resp).await
    }

    async fn api(
        &self,
        endpoint: &str,
        form: &[(&str, String)],
    ) -> anyhow::Result<serde_json::Value> {
        let resp = self
            .http
            .post(format!("{}/api/v1/{endpoint}", self.url()))
            .form(form)
            .send()
            .await
            .with_context(|| format!("POST /api/v1/{endpoint}"))?;
        answer(endpoint, resp).await
    }
}

/// The `data` of an API answer, or its `error` as an error.
async fn answer(endpoint: &str, resp: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = resp.status();
    let body: serde_json::Value = resp
        .json()
        .await
        .with_context(|| format!("/api/v1/{endpoint} answered {status} without JSON"))?;
    if body["status"] != "success" {
        anyhow::bail!(
            "/api/v1/{endpoint} answered {status}: {} {}",
            body["errorType"].as_str().unwrap_or("?"),
            body["error"].as_str().unwrap_or("?")
        );
    }
    Ok(body["data"].clone())
}

/// Whether `GET /-/ready` answers 200 (plain HTTP/1.0 over std, so `start` needs no runtime).
fn is_ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.wait();
        reaper::unregister(&self.reaper_key);
    }
}

/// Where a rule file lives when it is given relative to the workspace root.
pub fn workspace_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .join(relative)
}
