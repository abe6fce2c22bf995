//! `mailhaul plan`: the pre-flight check. For every mailbox it tests both logins, maps
//! the folder tree, counts messages and bytes, and (unless `quick`) reads every message
//! to find what targets refuse or mangle (long lines, bare LF, NUL bytes) and what
//! changes identification (no Message-ID), saying what will be done with each. Messages
//! over the target's size limit are findings too: the limit an IMAP target advertises
//! (`APPENDLIMIT`, RFC 7889), or for Exchange (Graph, EWS) the default 36 MB receive
//! limit, assumed because no API tells it (research/exchange-apis.md §4). It writes
//! nothing anywhere: no Redis, no broker, no target folders.

use crate::plan_paths::PathCounts;
use crate::status::human_bytes;
use crate::survey::{self, SurveyedFolder};
use futures_util::StreamExt;
use mailhaul_connectors::body::{Body, READ_PIECE};
use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::imap::ImapSession;
use mailhaul_connectors::target::TargetSession;
use mailhaul_proto::Uid;
use mailhaul_proto::inspect::{Finding, Scan, inspect};
use mailhaul_proto::manifest::{MailboxSpec, Manifest, ServerKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Throughput assumed for the ETA.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    /// Megabytes (10^6) per second, whole deployment.
    pub mb_per_s: f64,
    /// Messages per second, whole deployment.
    pub msgs_per_s: f64,
}

/// The whole pre-flight report.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// Tenant name.
    pub tenant: String,
    /// Migration id.
    pub migration: String,
    /// Whether messages were read and inspected.
    pub inspected: bool,
    /// Per mailbox, in manifest order.
    pub mailboxes: Vec<MailboxReport>,
    /// Messages in all selected folders.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Estimated duration at `rate`, in seconds.
    pub eta_seconds: u64,
    /// The rate the ETA assumes.
    pub rate: Rate,
}

/// One mailbox's pre-flight.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxReport {
    /// The mailbox.
    pub mailbox: String,
    /// `None` if the source login works, else why not.
    pub source_login: Option<String>,
    /// `None` if the target login works, else why not.
    pub target_login: Option<String>,
    /// Other problems (listing, reading).
    pub error: Option<String>,
    /// Selected folders and where they go.
    pub folders: Vec<FolderReport>,
    /// Messages in them.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Findings: key -> count of messages.
    pub findings: BTreeMap<String, u64>,
    /// Messages the filters leave out: reason -> count.
    pub skipped: BTreeMap<String, u64>,
    /// A few messages per finding, to look at.
    pub examples: Vec<Example>,
    /// The largest message the target takes, when known or assumed.
    pub target_limit: Option<TargetLimit>,
    /// Source folders of other namespaces (other users', shared), left out.
    pub other_namespaces: Vec<String>,
    /// Exchange targets, when messages were read: how many go by which upload path.
    pub paths: PathCounts,
}

/// The largest message a target takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetLimit {
    /// The limit in bytes.
    pub bytes: u64,
    /// Where the figure comes from.
    pub origin: String,
    /// What the admin can do about messages over it.
    pub raise: String,
    /// Over this, no setting helps (Exchange takes at most 150 MB).
    pub ceiling: Option<u64>,
}

/// Exchange Online's default MaxReceiveSize (research/exchange-apis.md §4).
const EXCHANGE_DEFAULT_RECEIVE: u64 = 36 << 20;
/// Exchange's highest MaxReceiveSize, and Graph's upload session limit.
const EXCHANGE_CEILING: u64 = 150 << 20;
/// Finding keys: over the target's limit; over what any setting allows.
const OVER_LIMIT: &str = "over_target_limit";
const OVER_CEILING: &str = "over_target_ceiling";
/// Finding key: the source would not give the message.
const UNREADABLE: &str = "unreadable";

impl TargetLimit {
    /// What an IMAP target advertises; Exchange's default, assumed, for Graph and EWS.
    fn of(t: &TargetSession) -> Option<TargetLimit> {
        match t {
            TargetSession::Imap(s) => s.append_limit().map(|bytes| TargetLimit {
                bytes,
                origin: "its APPENDLIMIT".into(),
                raise: "raise the target server's maximum message size".into(),
                ceiling: None,
            }),
            TargetSession::Graph { .. } | TargetSession::Ews(_) => Some(TargetLimit {
                bytes: EXCHANGE_DEFAULT_RECEIVE,
                origin: "assumed: Exchange Online's default".into(),
                raise: "raise MaxReceiveSize (Set-Mailbox -MaxReceiveSize, at most 150 MB)".into(),
                ceiling: Some(EXCHANGE_CEILING),
            }),
        }
    }

    /// The finding key and action for a message of `size` bytes, if it is over.
    fn check(&self, size: u64) -> Option<(&'static str, String)> {
        if let Some(c) = self.ceiling.filter(|c| size > *c) {
            let why = format!(
                "will be reported as failed: over the {} that Exchange takes at most, which no \
                 setting raises; leave it out with max_message_size",
                mb(c)
            );
            return Some((OVER_CEILING, why));
        }
        (size > self.bytes).then(|| {
            let why = format!(
                "will be reported as failed: over the target's limit of {} ({}); {}",
                mb(self.bytes),
                self.origin,
                self.raise
            );
            (OVER_LIMIT, why)
        })
    }
}

/// Whole MiB as "N MB" (as Exchange writes its limits), else exact bytes.
fn mb(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MB", b >> 20),
        b => format!("{b} bytes"),
    }
}

/// One folder: where it goes and what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct FolderReport {
    /// Source path.
    pub source: String,
    /// Target path.
    pub target: String,
    /// Special role, if any.
    pub special: Option<String>,
    /// Why the name changed, if it did.
    pub notes: Vec<String>,
    /// Messages.
    pub messages: u64,
    /// Bytes.
    pub bytes: u64,
    /// The largest message's size.
    pub largest: u64,
}

/// One message with a finding.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// Source folder.
    pub folder: String,
    /// Source UID (POP3: position).
    pub uid: u32,
    /// Finding key.
    pub finding: String,
    /// What mailhaul does about it.
    pub action: String,
}

impl MailboxReport {
    /// Whether the mailbox can be migrated as planned.
    pub fn ok(&self) -> bool {
        self.source_login.is_none() && self.target_login.is_none() && self.error.is_none()
    }
}

/// Examples kept per finding and mailbox.
const EXAMPLES: usize = 5;
/// Bytes read per FETCH while inspecting.
const INSPECT_BATCH_BYTES: u64 = 16 << 20;

/// Runs the pre-flight over every mailbox, `concurrency` at a time.
pub async fn plan(m: &Manifest, quick: bool, rate: Rate) -> PlanReport {
    let concurrency = m.options.discovery_concurrency.get() as usize;
    let mailboxes: Vec<MailboxReport> = futures_util::stream::iter(&m.mailboxes)
        .map(|mbx| check_mailbox(m, mbx, quick))
        .buffered(concurrency)
        .collect()
        .await;
    let messages: u64 = mailboxes.iter().map(|r| r.messages).sum();
    let bytes: u64 = mailboxes.iter().map(|r| r.bytes).sum();
    let eta = (bytes as f64 / (rate.mb_per_s * 1e6)).max(messages as f64 / rate.msgs_per_s);
    PlanReport {
        tenant: m.tenant.clone(),
        migration: m.migration.to_string(),
        inspected: !quick,
        mailboxes,
        messages,
        bytes,
        eta_seconds: eta.ceil() as u64,
        rate,
    }
}

async fn check_mailbox(m: &Manifest, mbx: &MailboxSpec, quick: bool) -> MailboxReport {
    let mut r = MailboxReport {
        mailbox: mbx.id.to_string(),
        source_login: None,
        target_login: None,
        error: None,
        folders: Vec::new(),
        messages: 0,
        bytes: 0,
        findings: BTreeMap::new(),
        skipped: BTreeMap::new(),
        examples: Vec::new(),
        target_limit: None,
        other_namespaces: Vec::new(),
        paths: PathCounts::default(),
    };
    // Both logins are tried whatever happens to the other: the admin fixes them all at once.
    let target = survey::open_target(None, &m.target, &mbx.target_user, &mbx.target_password).await;
    let mut target = match target {
        Ok(t) => {
            r.target_limit = TargetLimit::of(&t.session);
            Some(t)
        }
        Err(e) => {
            r.target_login = Some(e);
            None
        }
    };
    let open_source = || {
        survey::open(
            None,
            &m.source,
            &mbx.source_user,
            &mbx.source_password,
            "source",
        )
    };
    match m.source.kind {
        ServerKind::Pop3 => {
            match survey::open_pop3(None, &m.source, &mbx.source_user, &mbx.source_password).await {
                Ok(mut s) => {
                    let inbox = survey::inbox_name(target.as_ref().map(|t| &t.session));
                    match survey::survey_pop3(m.options_for(mbx), &mut s.session, inbox).await {
                        Ok(f) => {
                            let t = target.as_ref().map(|t| &t.session);
                            if !quick && let Err(e) = inspect_pop3(&mut s.session, t, &mut r).await
                            {
                                r.error = Some(e);
                            }
                            add_folder(&mut r, &f);
                        }
                        Err(e) => r.error = Some(e),
                    }
                    s.close(None).await;
                }
                Err(e) => r.source_login = Some(e),
            }
        }
        _ => match open_source().await {
            Ok(mut s) => {
                if let Some(t) = target.as_mut() {
                    match survey::survey(m.options_for(mbx), &mut s.session, &mut t.session).await {
                        Ok(found) => {
                            r.other_namespaces = found.other_namespaces.clone();
                            // A folder that cannot be read is reported and the others
                            // are still planned, on a new session if that one broke.
                            for f in &found.folders {
                                add_folder(&mut r, f);
                                if quick {
                                    continue;
                                }
                                let Err(e) =
                                    inspect_folder(&mut s.session, &t.session, f, &mut r).await
                                else {
                                    continue;
                                };
                                add_error(&mut r, e);
                                match open_source().await {
                                    Ok(fresh) => std::mem::replace(&mut s, fresh).close(None).await,
                                    Err(e) => {
                                        add_error(&mut r, e);
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) => r.error = Some(e),
                    }
                }
                s.close(None).await;
            }
            Err(e) => r.source_login = Some(e),
        },
    }
    if let Some(t) = target {
        t.close(None).await;
    }
    r
}

/// Adds a problem to the mailbox's, after those found before.
fn add_error(r: &mut MailboxReport, e: String) {
    r.error = Some(match r.error.take() {
        Some(before) => format!("{before}; {e}"),
        None => e,
    });
}

fn add_folder(r: &mut MailboxReport, f: &SurveyedFolder) {
    if let Some(limit) = r.target_limit.clone() {
        // POP3 messages are named by their position, as `inspect_pop3` does.
        let sizes: Vec<(u32, u32)> = match &f.pop3 {
            Some(p) => (1..).zip(p.iter().map(|(_, s)| *s)).collect(),
            None => f.sizes.iter().map(|(u, s)| (u.0, *s)).collect(),
        };
        for (uid, size) in sizes {
            if let Some((key, action)) = limit.check(u64::from(size)) {
                count(r, &f.display, uid, key, action);
            }
        }
    }
    let (messages, bytes, largest) = match &f.pop3 {
        Some(p) => (
            p.len() as u64,
            p.iter().map(|(_, s)| u64::from(*s)).sum(),
            p.iter().map(|(_, s)| u64::from(*s)).max(),
        ),
        None => (
            f.sizes.len() as u64,
            f.sizes.iter().map(|(_, s)| u64::from(*s)).sum(),
            f.sizes.iter().map(|(_, s)| u64::from(*s)).max(),
        ),
    };
    r.messages += messages;
    r.bytes += bytes;
    for (k, n) in &f.skipped {
        *r.skipped.entry(k.clone()).or_insert(0) += n;
    }
    r.folders.push(FolderReport {
        source: f.display.clone(),
        target: f.target_display(),
        special: f.mapping.special.map(|s| s.to_string()),
        notes: f.mapping.notes.clone(),
        messages,
        bytes,
        largest: largest.unwrap_or(0),
    });
}

async fn note(r: &mut MailboxReport, folder: &str, uid: u32, body: &Body) -> std::io::Result<()> {
    let findings = match body.in_memory() {
        Some(bytes) => inspect(bytes),
        None => {
            // A spooled body is scanned a piece at a time.
            let mut scan = Scan::default();
            let mut pieces = std::pin::pin!(body.pieces(READ_PIECE));
            while let Some(piece) = pieces.next().await {
                scan.feed(&piece?);
            }
            scan.findings(&body.head().await?)
        }
    };
    for f in findings {
        count(r, folder, uid, f.key(), f.action().to_owned());
    }
    Ok(())
}

/// Counts a finding, keeping the first few as examples.
fn count(r: &mut MailboxReport, folder: &str, uid: u32, key: &str, action: String) {
    *r.findings.entry(key.to_owned()).or_insert(0) += 1;
    if r.examples.iter().filter(|e| e.finding == key).count() < EXAMPLES {
        r.examples.push(Example {
            folder: folder.to_owned(),
            uid,
            finding: key.to_owned(),
            action,
        });
    }
}

async fn inspect_folder(
    s: &mut ImapSession,
    target: &TargetSession,
    f: &SurveyedFolder,
    r: &mut MailboxReport,
) -> Result<(), String> {
    if f.sizes.is_empty() {
        return Ok(());
    }
    s.examine(&f.raw_name)
        .await
        .map_err(|e| format!("source: examining {:?}: {e}", f.display))?;
    let mut batch: Vec<(Uid, u32)> = Vec::new();
    let mut bytes = 0u64;
    for (i, (uid, size)) in f.sizes.iter().enumerate() {
        batch.push((*uid, *size));
        bytes += u64::from(*size);
        if bytes >= INSPECT_BATCH_BYTES || batch.len() >= 200 || i + 1 == f.sizes.len() {
            let fetched = match s.fetch_messages(&batch).await {
                Ok(fetched) => fetched,
                // The server would not give the batch: each message alone, so that only
                // those it cannot give are reported (a transport failure ends the folder).
                Err(e) if batch.len() > 1 && !matches!(e, ConnectorError::Io(_)) => {
                    let mut one_by_one = Vec::new();
                    for one in &batch {
                        match s.fetch_messages(std::slice::from_ref(one)).await {
                            Ok(got) => one_by_one.extend(got),
                            Err(e @ ConnectorError::Io(_)) => {
                                return Err(format!("source: reading {:?}: {e}", f.display));
                            }
                            Err(e) => unreadable(r, &f.display, one.0, &e),
                        }
                    }
                    one_by_one
                }
                Err(e @ ConnectorError::Io(_)) => {
                    return Err(format!("source: reading {:?}: {e}", f.display));
                }
                Err(e) => {
                    unreadable(r, &f.display, batch[0].0, &e);
                    Vec::new()
                }
            };
            for m in fetched {
                note(r, &f.display, m.uid.0, &m.body)
                    .await
                    .map_err(|e| format!("source: reading {:?}: {e}", f.display))?;
                r.paths
                    .count(target, &m.body, &m.flags)
                    .await
                    .map_err(|e| format!("source: reading {:?}: {e}", f.display))?;
            }
            batch.clear();
            bytes = 0;
        }
    }
    Ok(())
}

/// Counts a message the source would not give, with the server's words.
fn unreadable(r: &mut MailboxReport, folder: &str, uid: Uid, e: &ConnectorError) {
    let action = format!("will be reported as failed; the source says: {e}");
    count(r, folder, uid.0, UNREADABLE, action);
}

async fn inspect_pop3(
    s: &mut mailhaul_connectors::pop3::Pop3Session,
    target: Option<&TargetSession>,
    r: &mut MailboxReport,
) -> Result<(), String> {
    let listing = s.list().await.map_err(|e| format!("source: LIST: {e}"))?;
    for (n, _) in listing {
        let body = s
            .retr(n, 1 << 30)
            .await
            .map_err(|e| format!("source: RETR {n}: {e}"))?;
        note(r, "INBOX", n, &body)
            .await
            .map_err(|e| format!("source: RETR {n}: {e}"))?;
        if let Some(t) = target {
            // POP3 has no flags: every message is a received, unread one.
            r.paths
                .count(t, &body, &[])
                .await
                .map_err(|e| format!("source: RETR {n}: {e}"))?;
        }
    }
    Ok(())
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s.div_ceil(60)),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

/// The readable form of a report.
pub fn render(p: &PlanReport) -> String {
    let mut out = String::new();
    let bad = p.mailboxes.iter().filter(|m| !m.ok()).count();
    let _ = writeln!(
        out,
        "Plan for {} (migration {}): {} mailboxes ({} with problems), {} messages, {}. ETA {} at {} MB/s and {} messages/s.",
        p.tenant,
        p.migration,
        p.mailboxes.len(),
        bad,
        p.messages,
        human_bytes(p.bytes),
        duration(p.eta_seconds),
        p.rate.mb_per_s,
        p.rate.msgs_per_s
    );
    if !p.inspected {
        let _ = writeln!(
            out,
            "(quick: messages were counted, not read; run without --quick to inspect them)"
        );
    }
    let w = p
        .mailboxes
        .iter()
        .map(|m| m.mailbox.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "\n{:w$}  {:>7}  {:>8}  {:>10}  STATUS",
        "MAILBOX", "FOLDERS", "MESSAGES", "SIZE"
    );
    for m in &p.mailboxes {
        let status = match (&m.source_login, &m.target_login, &m.error) {
            (None, None, None) => "ok".to_owned(),
            (s, t, e) => [
                s.as_deref().map(|s| format!("source login: {s}")),
                t.as_deref().map(|t| format!("target login: {t}")),
                e.clone(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; "),
        };
        let _ = writeln!(
            out,
            "{:w$}  {:>7}  {:>8}  {:>10}  {status}",
            m.mailbox,
            m.folders.len(),
            m.messages,
            human_bytes(m.bytes)
        );
    }
    for m in &p.mailboxes {
        let changed: Vec<&FolderReport> = m
            .folders
            .iter()
            .filter(|f| f.source != f.target || !f.notes.is_empty())
            .collect();
        if changed.is_empty()
            && m.findings.is_empty()
            && m.skipped.is_empty()
            && m.other_namespaces.is_empty()
            && m.paths.is_empty()
        {
            continue;
        }
        let _ = writeln!(out, "\n{}:", m.mailbox);
        m.paths.render(&mut out);
        if !m.other_namespaces.is_empty() {
            let names: Vec<String> = m
                .other_namespaces
                .iter()
                .take(10)
                .map(|n| format!("{n:?}"))
                .collect();
            let _ = writeln!(
                out,
                "  {} folder(s) of other users' or shared namespaces left out (not this mailbox's own): {}{}",
                m.other_namespaces.len(),
                names.join(", "),
                if m.other_namespaces.len() > 10 {
                    ", ..."
                } else {
                    ""
                }
            );
        }
        for (why, n) in &m.skipped {
            let _ = writeln!(out, "  {n} message(s) left out by the filters ({why})");
        }
        for f in changed {
            let _ = writeln!(
                out,
                "  folder {:?} -> {:?}: {}",
                f.source,
                f.target,
                f.notes.join("; ")
            );
        }
        let sized = [
            (OVER_LIMIT, "over the target's size limit"),
            (OVER_CEILING, "over the target's size ceiling"),
            (UNREADABLE, "the source would not give"),
        ];
        let findings = Finding::ALL.iter().map(|f| (f.key(), f.to_string()));
        for (key, what) in findings.chain(sized.map(|(k, w)| (k, w.to_owned()))) {
            let Some(n) = m.findings.get(key) else {
                continue;
            };
            let examples: Vec<&Example> = m.examples.iter().filter(|e| e.finding == key).collect();
            let uids: Vec<String> = examples
                .iter()
                .map(|e| format!("{:?} {}", e.folder, e.uid))
                .collect();
            let action = examples.first().map_or("", |e| e.action.as_str());
            let _ = writeln!(
                out,
                "  {n} message(s) {}: {action} (e.g. {})",
                if key.starts_with("over_target") || key == UNREADABLE {
                    what
                } else {
                    format!("with {what}")
                },
                uids.join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_over_the_target_limit_are_found_with_the_fix() {
        let exchange = TargetLimit {
            bytes: EXCHANGE_DEFAULT_RECEIVE,
            origin: "assumed: Exchange Online's default".into(),
            raise: "raise MaxReceiveSize".into(),
            ceiling: Some(EXCHANGE_CEILING),
        };
        let imap = TargetLimit {
            bytes: 10_000,
            origin: "its APPENDLIMIT".into(),
            raise: "raise it".into(),
            ceiling: None,
        };
        for (limit, size, want) in [
            (&exchange, 36 << 20, None),
            (
                &exchange,
                (36 << 20) + 1,
                Some((
                    OVER_LIMIT,
                    "over the target's limit of 36 MB (assumed: Exchange Online's default); raise MaxReceiveSize",
                )),
            ),
            (&exchange, 150 << 20, Some((OVER_LIMIT, "36 MB"))),
            (
                &exchange,
                (150 << 20) + 1,
                Some((OVER_CEILING, "over the 150 MB that Exchange takes at most")),
            ),
            (&imap, 10_000, None),
            (
                &imap,
                10_001,
                Some((
                    OVER_LIMIT,
                    "over the target's limit of 10000 bytes (its APPENDLIMIT); raise it",
                )),
            ),
            (
                &imap,
                u64::from(u32::MAX),
                Some((OVER_LIMIT, "reported as failed")),
            ),
        ] {
            let got = limit.check(size);
            match (got, want) {
                (None, None) => {}
                (Some((key, action)), Some((k, part))) => {
                    assert_eq!(key, k, "{size}");
                    assert!(
                        action.starts_with("will be reported as failed: "),
                        "{action}"
                    );
                    assert!(action.contains(part), "{size}: {action}");
                }
                (got, want) => panic!("{size}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn limits_read_as_exchange_writes_them() {
        assert_eq!(mb(36 << 20), "36 MB");
        assert_eq!(mb(150 << 20), "150 MB");
        assert_eq!(mb(35_882_577), "35882577 bytes");
        assert_eq!(mb(1000), "1000 bytes");
    }
}
