//! Opening source and target connections under the mailbox's connection permits.
//!
//! A permit is taken in Redis before each connection and given back after logout, so
//! every worker together respects the server's per-login connection limit.

use crate::gate::MailboxGate;
use crate::metrics::Metrics;
use crate::slice::{SliceError, on};
use mailhaul_connectors::config::resolve_secret;
use mailhaul_connectors::imap::{self, ImapSession};
use mailhaul_connectors::pop3::{self, Pop3Session};
use mailhaul_connectors::target::TargetSession;
use mailhaul_ledger::{Ledger, Permit, PermitSpec};
use mailhaul_proto::manifest::{MailboxSpec, Manifest, SecretRef, ServerConfig, ServerKind};
use secrecy::SecretString;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which end of the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Where mail comes from.
    Source,
    /// Where it goes.
    Target,
}

impl Side {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The servers and logins of one mailbox.
pub(crate) struct Endpoints<'a> {
    pub manifest: &'a Manifest,
    pub mailbox: &'a MailboxSpec,
    pub permit_wait: Duration,
}

impl Endpoints<'_> {
    fn side(&self, side: Side) -> (&ServerConfig, &str, &SecretRef) {
        let (m, b) = (self.manifest, self.mailbox);
        match side {
            Side::Source => (&m.source, &b.source_user, &b.source_password),
            Side::Target => (&m.target, &b.target_user, &b.target_password),
        }
    }

    /// Takes a permit and resolves the login (the caller connects).
    async fn reserve(
        &self,
        side: Side,
        ledger: &Ledger,
        metrics: &Metrics,
    ) -> Result<Login<'_>, SliceError> {
        let (server, user, secret) = self.side(side);
        let password = resolve_secret(secret)
            .map_err(|e| SliceError::Config(format!("{side} password of {user}: {e}")))?;
        let spec = PermitSpec {
            server: format!("{}:{}", server.host, server.port),
            user: user.to_owned(),
            limit: server.max_connections_per_mailbox.get(),
        };
        let started = Instant::now();
        let permit = ledger
            .acquire_permit(&spec, self.permit_wait)
            .await?
            .ok_or(SliceError::PermitTimeout(side))?;
        metrics
            .permit_wait_seconds
            .with_label_values(&[side.label()])
            .observe(started.elapsed().as_secs_f64());
        Ok(Login {
            server,
            user,
            password,
            permit,
        })
    }

    /// Takes a permit, then connects and logs in over IMAP.
    pub(crate) async fn open(
        &self,
        side: Side,
        ledger: &Ledger,
        metrics: &Metrics,
    ) -> Result<(ImapSession, Permit), SliceError> {
        let l = self.reserve(side, ledger, metrics).await?;
        match imap::connect(l.server, l.user, &l.password).await {
            Ok(session) => Ok((session, l.permit)),
            Err(e) => {
                let _ = ledger.release_permit(l.permit).await;
                Err(on(side)(e))
            }
        }
    }

    /// Opens the target: an IMAP target under a connection permit (returned); an HTTP
    /// target (Graph, EWS) holds no connection, its requests take permits one by one
    /// through the mailbox's gate.
    pub(crate) async fn open_target(
        &self,
        ledger: &Ledger,
        metrics: &Metrics,
    ) -> Result<(TargetSession, Option<Permit>), SliceError> {
        let server = &self.manifest.target;
        if !server.kind.is_http() {
            let (session, permit) = self.open(Side::Target, ledger, metrics).await?;
            return Ok((TargetSession::Imap(session), Some(permit)));
        }
        let (_, user, secret) = self.side(Side::Target);
        let password = resolve_secret(secret)
            .map_err(|e| SliceError::Config(format!("target password of {user}: {e}")))?;
        let kind = match server.kind {
            ServerKind::Graph => "graph",
            _ => "ews",
        };
        let gate = Arc::new(MailboxGate::new(
            ledger,
            metrics,
            server,
            user,
            kind,
            self.permit_wait,
        ));
        let session = TargetSession::connect(server, user, &password, gate)
            .await
            .map_err(on(Side::Target))?;
        Ok((session, None))
    }

    /// Takes a permit, then connects and logs in over POP3 (sources only).
    pub(crate) async fn open_pop3(
        &self,
        ledger: &Ledger,
        metrics: &Metrics,
    ) -> Result<(Pop3Session, Permit), SliceError> {
        let l = self.reserve(Side::Source, ledger, metrics).await?;
        match pop3::connect(l.server, l.user, &l.password).await {
            Ok(session) => Ok((session, l.permit)),
            Err(e) => {
                let _ = ledger.release_permit(l.permit).await;
                Err(on(Side::Source)(e))
            }
        }
    }
}

/// A resolved login holding its connection permit.
struct Login<'a> {
    server: &'a ServerConfig,
    user: &'a str,
    password: SecretString,
    permit: Permit,
}
