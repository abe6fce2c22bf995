//! The per-mailbox request gate of HTTP targets (Graph, EWS), shared by every worker
//! through Redis.
//!
//! Before each request: the mailbox's request and upload budgets (token buckets that
//! can never pass Graph's 10,000 requests per 10 minutes and 150 MB per 5 minutes), then
//! a request permit from the mailbox's semaphore, so no more than
//! `max_connections_per_mailbox` (at most 4 on Graph) requests are in flight for one
//! mailbox across all workers. After each request: the permit goes back, and the
//! semaphore's limit adapts (AIMD): halved on a throttle signal, grown back slowly on
//! success.
//!
//! Microsoft's current throttling text says the 4 concurrent requests apply per app
//! across mailboxes; with `concurrency_scope = "app"` the permits (and their adaptive
//! limit) are shared by every mailbox of the app instead, while the budgets stay per
//! app and mailbox as documented.

use crate::metrics::Metrics;
use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::gate::{Admit, Outcome, RequestGate};
use mailhaul_ledger::{Budget, Ledger, Permit, PermitSpec, Rate};
use mailhaul_proto::ErrorClass;
use mailhaul_proto::manifest::{ConcurrencyScope, Login, ServerConfig, TokenSource};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How much one success grows the adaptive limit, over the limit (so ~10 successes per
/// step at limit 1, ~40 at limit 4: slow, as throttling research recommends).
const GROWTH: f64 = 0.1;

/// One target mailbox's gate.
pub(crate) struct MailboxGate {
    ledger: Ledger,
    metrics: Metrics,
    /// The mailbox: whose budgets are spent.
    spec: PermitSpec,
    /// Whose request permits are taken: the mailbox's, or the app's.
    permits: PermitSpec,
    budget: Option<Budget>,
    target: &'static str,
    max_wait: Duration,
    held: Mutex<Vec<Permit>>,
}

impl std::fmt::Debug for MailboxGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxGate")
            .field("server", &self.spec.server)
            .field("limit", &self.spec.limit)
            .finish_non_exhaustive()
    }
}

impl MailboxGate {
    /// The gate of mailbox `user` on `server`.
    pub(crate) fn new(
        ledger: &Ledger,
        metrics: &Metrics,
        server: &ServerConfig,
        user: &str,
        target: &'static str,
        max_wait: Duration,
    ) -> Self {
        let budget = server.http.as_ref().and_then(|h| {
            // EWS leaves budgets to the server's own throttling (u32::MAX / u64::MAX).
            (h.max_requests_per_10min != u32::MAX).then(|| Budget {
                requests: Rate {
                    amount: u64::from(h.max_requests_per_10min),
                    window: Duration::from_secs(600),
                },
                bytes: Rate {
                    amount: h.max_upload_bytes_per_5min,
                    window: Duration::from_secs(300),
                },
            })
        });
        let spec = PermitSpec {
            server: format!("{}:{}", server.host, server.port),
            user: user.to_owned(),
            limit: server.max_connections_per_mailbox.get(),
        };
        let app = match (&server.http, &server.login) {
            (Some(h), Login::XOAuth2(TokenSource::ClientCredentials { client_id, .. }))
                if h.fidelity.concurrency_scope == ConcurrencyScope::App =>
            {
                Some(client_id.clone())
            }
            _ => None,
        };
        let permits = match app {
            // One semaphore for every mailbox the app writes to on this server.
            Some(client_id) => PermitSpec {
                user: format!("app/{client_id}"),
                ..spec.clone()
            },
            None => spec.clone(),
        };
        MailboxGate {
            ledger: ledger.clone(),
            metrics: metrics.clone(),
            spec,
            permits,
            budget,
            target,
            max_wait,
            held: Mutex::new(Vec::new()),
        }
    }

    async fn admit_inner(&self, bytes: u64) -> Result<(), ConnectorError> {
        let ledger_err = |e: mailhaul_ledger::LedgerError| ConnectorError::Service {
            service: "ledger",
            op: "request budget".into(),
            text: e.to_string(),
            class: ErrorClass::Transient,
        };
        if let Some(budget) = &self.budget {
            loop {
                let wait = self
                    .ledger
                    .spend_budget(&self.spec, budget, bytes)
                    .await
                    .map_err(ledger_err)?;
                if wait.is_zero() {
                    break;
                }
                tracing::debug!(mailbox = %self.spec.user, ?wait, "Request budget spent; waiting.");
                self.metrics
                    .throttle_wait_seconds
                    .with_label_values(&[self.target])
                    .inc_by(wait.as_secs_f64());
                tokio::time::sleep(wait).await;
            }
        }
        let started = Instant::now();
        let permit = self
            .ledger
            .acquire_permit(&self.permits, self.max_wait)
            .await
            .map_err(ledger_err)?
            .ok_or_else(|| ConnectorError::Service {
                service: "worker",
                op: "request permit".into(),
                text: format!(
                    "no request slot of mailbox {} came free within {:?} (the mailbox is at its concurrency limit)",
                    self.spec.user, self.max_wait
                ),
                class: ErrorClass::Transient,
            })?;
        self.metrics
            .permit_wait_seconds
            .with_label_values(&["target"])
            .observe(started.elapsed().as_secs_f64());
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(permit);
        Ok(())
    }
}

impl RequestGate for MailboxGate {
    fn admit(&self, upload_bytes: u64) -> Admit<'_> {
        Box::pin(self.admit_inner(upload_bytes))
    }

    fn done(&self, outcome: Outcome) {
        let permit = self.held.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let throttled = matches!(outcome, Outcome::Throttled(_));
        if throttled {
            self.metrics
                .throttle_events
                .with_label_values(&[self.target])
                .inc();
        }
        let ledger = self.ledger.clone();
        let spec = self.permits.clone();
        tokio::spawn(async move {
            if let Some(p) = permit {
                let _ = ledger.release_permit(p).await;
            }
            if throttled || outcome == Outcome::Ok {
                match ledger.adapt_limit(&spec, throttled, GROWTH).await {
                    Ok(limit) if throttled => {
                        tracing::info!(mailbox = %spec.user, limit, "Target throttled; fewer requests at once for this mailbox.");
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(%err, "Could not adapt the request limit."),
                }
            }
        });
    }
}
