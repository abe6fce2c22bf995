//! The read-only look at one mailbox that both `plan` and `migrate` start from: log in on
//! both sides, list the source tree, map it onto the target (special folders, renames,
//! collisions), and count each selected folder's messages and bytes. Writes nothing.

use mailhaul_connectors::config::resolve_secret;
use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::folder_map::{MapRules, Mapping, SourceFolder, map_tree};
use mailhaul_connectors::gate::Open;
use mailhaul_connectors::imap::{self, FolderStatus, ImapSession, MessageMeta};
use mailhaul_connectors::mapping;
use mailhaul_connectors::pop3::{self, Pop3Session};
use mailhaul_connectors::target::{TargetSession, TargetTree};
use mailhaul_ledger::{Ledger, Permit, PermitSpec};
use mailhaul_proto::ErrorClass;
use mailhaul_proto::manifest::{Filters, Options, SecretRef, ServerConfig, Skip};
use mailhaul_proto::{Uid, UidRange, UidValidity};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One selected source folder, where it goes, and what it holds.
#[derive(Debug, Clone)]
pub struct SurveyedFolder {
    /// Source wire name.
    pub raw_name: String,
    /// Human path on the source.
    pub display: String,
    /// Where it goes and why.
    pub mapping: Mapping,
    /// Target wire name.
    pub target_name: String,
    /// Counters from EXAMINE.
    pub status: FolderStatus,
    /// Every message's UID and size, ascending (empty for POP3 until ids are assigned);
    /// messages the filters leave out are not here but counted in `skipped`.
    pub sizes: Vec<(Uid, u32)>,
    /// Messages left out by the mailbox's filters, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// For a POP3 source: every message's identity (UIDL) and size, in server order.
    pub pop3: Option<Vec<(String, u32)>>,
    /// Whether the user subscribed to it on the source (LSUB).
    pub subscribed: bool,
}

impl SurveyedFolder {
    /// Human path on the target.
    pub fn target_display(&self) -> String {
        mapping::display(&self.mapping.target)
    }
}

/// The rules folder names follow for this mailbox's target.
pub fn rules_for(options: &Options) -> MapRules {
    // IMAP targets compare names case-sensitively (Dovecot, Cyrus) and reserve nothing;
    // Exchange targets will set both.
    MapRules {
        renames: options
            .renames
            .iter()
            .filter_map(|(from, to)| regex::Regex::new(from).ok().map(|r| (r, to.clone())))
            .collect(),
        ..MapRules::default()
    }
}

/// A logged-in session and the permit it holds (when permits are in use).
pub struct Opened {
    /// The session.
    pub session: ImapSession,
    permit: Option<Permit>,
}

impl Opened {
    /// Logs out and gives the permit back.
    pub async fn close(self, ledger: Option<&Ledger>) {
        let _ = self.session.logout().await;
        if let (Some(l), Some(p)) = (ledger, self.permit) {
            let _ = l.release_permit(p).await;
        }
    }
}

/// Connects and logs in; with a ledger, under the login's connection permit.
///
/// # Errors
/// A readable reason naming the side, server and user (never a secret).
pub async fn open(
    ledger: Option<&Ledger>,
    server: &ServerConfig,
    user: &str,
    secret: &SecretRef,
    side: &str,
) -> Result<Opened, String> {
    let password =
        resolve_secret(secret).map_err(|e| format!("{side} password for {user}: {e}"))?;
    let permit = match ledger {
        Some(l) => {
            let spec = PermitSpec {
                server: format!("{}:{}", server.host, server.port),
                user: user.to_owned(),
                limit: server.max_connections_per_mailbox.get(),
            };
            Some(
                l.acquire_permit(&spec, Duration::from_secs(300))
                    .await
                    .map_err(|e| format!("ledger: {e}"))?
                    .ok_or_else(|| {
                        format!("{side} {user}: no connection permit came free in 5 minutes")
                    })?,
            )
        }
        None => None,
    };
    match imap::connect(server, user, &password).await {
        Ok(session) => Ok(Opened { session, permit }),
        Err(e) => {
            if let (Some(l), Some(p)) = (ledger, permit) {
                let _ = l.release_permit(p).await;
            }
            Err(format!("{side} {}:{}: {e}", server.host, server.port))
        }
    }
}

/// An open target and the connection permit it holds (IMAP targets, with a ledger).
pub struct OpenedTarget {
    /// The session.
    pub session: TargetSession,
    permit: Option<Permit>,
}

impl OpenedTarget {
    /// Logs out and gives the permit back.
    pub async fn close(self, ledger: Option<&Ledger>) {
        self.session.logout().await;
        if let (Some(l), Some(p)) = (ledger, self.permit) {
            let _ = l.release_permit(p).await;
        }
    }
}

/// Opens the target for `user`: an IMAP target as [`open`] does; Graph and EWS with
/// their own logins (the app's token, the service account), checked by a first request.
///
/// # Errors
/// A readable reason naming the server and user (never a secret).
pub async fn open_target(
    ledger: Option<&Ledger>,
    server: &ServerConfig,
    user: &str,
    secret: &SecretRef,
) -> Result<OpenedTarget, String> {
    if !server.kind.is_http() {
        let o = open(ledger, server, user, secret, "target").await?;
        return Ok(OpenedTarget {
            session: TargetSession::Imap(o.session),
            permit: o.permit,
        });
    }
    let password =
        resolve_secret(secret).map_err(|e| format!("target password for {user}: {e}"))?;
    let fail = |e: ConnectorError| format!("target {} ({user}): {e}", server.kind);
    // The coordinator sends one request at a time per mailbox; budgets are the workers'.
    let mut session = TargetSession::connect(server, user, &password, Arc::new(Open))
        .await
        .map_err(fail)?;
    // HTTP targets have no login step: reading the tree proves the token or account
    // and the mailbox's access.
    tree_patiently(&mut session).await.map_err(fail)?;
    Ok(OpenedTarget {
        session,
        permit: None,
    })
}

/// Attempts at one target request the coordinator makes before it gives a mailbox up.
const TARGET_TRIES: u32 = 6;

/// How long to wait after a failed target request, or `None` to give up: Exchange
/// throttles the coordinator's few requests like any others (429, 503).
fn target_retry(e: &ConnectorError, tries: u32) -> Option<Duration> {
    if tries >= TARGET_TRIES {
        return None;
    }
    let backoff = Duration::from_millis(500) * 2u32.pow(tries);
    match e.class() {
        ErrorClass::Throttled(hint) => Some(hint.max(backoff)),
        ErrorClass::Transient => Some(backoff),
        ErrorClass::Permanent => None,
    }
}

/// Runs a read against an HTTP target, waiting out throttling and brief failures as
/// [`target_retry`] says.
///
/// # Errors
/// The last failure, once it is permanent or the tries are used up.
pub(crate) async fn patiently<T, F, Fut>(mut f: F) -> Result<T, ConnectorError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ConnectorError>>,
{
    let mut tries = 0;
    loop {
        match f().await {
            Err(e) if let Some(wait) = target_retry(&e, tries) => {
                tracing::info!(err = %e, ?wait, "Target busy; trying again.");
                tokio::time::sleep(wait).await;
                tries += 1;
            }
            r => return r,
        }
    }
}

/// [`TargetSession::tree`], waiting out throttling.
async fn tree_patiently(t: &mut TargetSession) -> Result<TargetTree, ConnectorError> {
    let mut tries = 0;
    loop {
        match t.tree().await {
            Err(e) if let Some(wait) = target_retry(&e, tries) => {
                tracing::info!(err = %e, ?wait, "Target busy; trying again.");
                tokio::time::sleep(wait).await;
                tries += 1;
            }
            r => return r,
        }
    }
}

/// [`TargetSession::ensure_folder`], waiting out throttling.
///
/// # Errors
/// The last failure, once it is permanent or the tries are used up.
pub async fn ensure_folder_patiently(
    t: &mut TargetSession,
    name: &str,
) -> Result<Option<String>, ConnectorError> {
    let mut tries = 0;
    loop {
        match t.ensure_folder(name).await {
            Err(e) if let Some(wait) = target_retry(&e, tries) => {
                tracing::info!(err = %e, ?wait, "Target busy; trying again.");
                tokio::time::sleep(wait).await;
                tries += 1;
            }
            r => return r,
        }
    }
}

/// What a survey found: the folders to migrate, and those it leaves out because they
/// are not the user's own.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    /// The selected folders of the user's personal namespace, and where they go.
    pub folders: Vec<SurveyedFolder>,
    /// Folders of other namespaces (other users', shared) the source lists, by raw
    /// name: left out (they are not this mailbox's to move).
    pub other_namespaces: Vec<String>,
}

/// Surveys a mailbox over two open sessions. Folder paths are relative to each side's
/// personal namespace (RFC 2342), so `INBOX.a.b` on a Cyrus source is `a/b`.
///
/// # Errors
/// A readable reason (which side, which folder).
pub async fn survey(
    opts: &Options,
    source: &mut ImapSession,
    target: &mut TargetSession,
) -> Result<Survey, String> {
    let naming = source
        .naming()
        .await
        .map_err(|e| format!("source: reading its namespaces (NAMESPACE): {e}"))?;
    let mut listed = source
        .list_folders()
        .await
        .map_err(|e| format!("source: listing folders: {e}"))?;
    let subscribed = source
        .subscribed()
        .await
        .map_err(|e| format!("source: listing subscriptions (LSUB): {e}"))?;
    let tree = tree_patiently(target)
        .await
        .map_err(|e| format!("target: listing folders: {e}"))?;
    let mut other_namespaces = Vec::new();
    listed.retain_mut(|f| match naming.personal_segments(&f.raw_name) {
        Ok(Some(segments)) => {
            f.segments = segments;
            true
        }
        Ok(None) => {
            if !f.noselect {
                other_namespaces.push(f.raw_name.clone());
            }
            false
        }
        // Not valid modified UTF-7: kept under its raw name (the listing warned).
        Err(_) => true,
    });
    let selected: Vec<_> = listed
        .iter()
        .filter(|f| !f.noselect && opts.folder_selected(&mapping::display(&f.segments)))
        .collect();
    let sources: Vec<SourceFolder> = selected
        .iter()
        .map(|f| SourceFolder {
            segments: f.segments.clone(),
            special_use: f.special_use.clone(),
        })
        .collect();
    let mappings = map_tree(&sources, &tree.specials, &tree.rules(rules_for(opts)));
    let mut out = Vec::with_capacity(selected.len());
    for (f, mapping) in selected.into_iter().zip(mappings) {
        let display = mapping::display(&f.segments);
        let status = source
            .examine(&f.raw_name)
            .await
            .map_err(|e| format!("source: examining {display:?}: {e}"))?;
        let metas = if status.messages == 0 || status.uid_next.0 <= 1 {
            Vec::new()
        } else {
            let range = UidRange {
                first: Uid(1),
                last: Uid(status.uid_next.0 - 1),
            };
            source
                .uid_meta(range)
                .await
                .map_err(|e| format!("source: listing {display:?}: {e}"))?
        };
        let (sizes, skipped) = apply_filters(&opts.filters, &metas);
        out.push(SurveyedFolder {
            raw_name: f.raw_name.clone(),
            display,
            target_name: target.folder_name(&mapping.target, &tree),
            mapping,
            status,
            sizes,
            skipped,
            pop3: None,
            subscribed: subscribed.contains(&f.raw_name),
        });
    }
    Ok(Survey {
        folders: out,
        other_namespaces,
    })
}

/// The wire name a POP3 mailbox is known by in tasks and the ledger.
pub const POP3_FOLDER: &str = "INBOX";

/// The target name of the Inbox, where a POP3 mailbox goes.
pub fn inbox_name(target: Option<&TargetSession>) -> String {
    let inbox = ["INBOX".to_owned()];
    match target {
        Some(t) => t.folder_name(&inbox, &TargetTree::default()),
        None => POP3_FOLDER.to_owned(),
    }
}

/// Surveys a POP3 mailbox: one folder, going to the target's INBOX (`target_name`,
/// from [`inbox_name`]).
///
/// # Errors
/// A readable reason.
pub async fn survey_pop3(
    opts: &Options,
    source: &mut Pop3Session,
    target_name: String,
) -> Result<SurveyedFolder, String> {
    let listing = source
        .listing(1 << 30)
        .await
        .map_err(|e| format!("source: listing the POP3 mailbox: {e}"))?;
    let mut notes = vec!["POP3 mailbox -> INBOX".to_owned()];
    if listing.by_content {
        notes.push("the POP3 server has no UIDL: messages are identified by their content, which costs a download of each per pass".to_owned());
    }
    // POP3 tells sizes only: of the filters, only max_message_size applies.
    let mut skipped = BTreeMap::new();
    let entries: Vec<(String, u32)> = listing
        .entries
        .into_iter()
        .filter(|e| {
            let over = opts
                .filters
                .max_message_size
                .is_some_and(|max| e.size > max);
            if over {
                *skipped.entry(Skip::TooLarge.key().to_owned()).or_insert(0) += 1;
            }
            !over
        })
        .map(|e| (e.id, u32::try_from(e.size).unwrap_or(u32::MAX)))
        .collect();
    Ok(SurveyedFolder {
        raw_name: POP3_FOLDER.to_owned(),
        display: POP3_FOLDER.to_owned(),
        mapping: Mapping {
            target: vec!["INBOX".to_owned()],
            special: None,
            notes,
        },
        target_name,
        status: FolderStatus {
            messages: entries.len() as u32,
            uid_next: Uid(0),
            uid_validity: UidValidity(1),
        },
        sizes: Vec::new(),
        skipped,
        pop3: Some(entries),
        subscribed: true,
    })
}

/// A logged-in POP3 session and its permit.
pub struct OpenedPop3 {
    /// The session.
    pub session: Pop3Session,
    permit: Option<Permit>,
}

impl OpenedPop3 {
    /// Quits (never deleting anything) and gives the permit back.
    pub async fn close(self, ledger: Option<&Ledger>) {
        let _ = self.session.quit().await;
        if let (Some(l), Some(p)) = (ledger, self.permit) {
            let _ = l.release_permit(p).await;
        }
    }
}

/// Connects to a POP3 source; with a ledger, under the login's connection permit.
///
/// # Errors
/// A readable reason naming the server and user (never a secret).
pub async fn open_pop3(
    ledger: Option<&Ledger>,
    server: &ServerConfig,
    user: &str,
    secret: &SecretRef,
) -> Result<OpenedPop3, String> {
    let password =
        resolve_secret(secret).map_err(|e| format!("source password for {user}: {e}"))?;
    let permit = match ledger {
        Some(l) => Some(take_permit(l, server, user, "source").await?),
        None => None,
    };
    match pop3::connect(server, user, &password).await {
        Ok(session) => Ok(OpenedPop3 { session, permit }),
        Err(e) => {
            if let (Some(l), Some(p)) = (ledger, permit) {
                let _ = l.release_permit(p).await;
            }
            Err(format!("source {}:{}: {e}", server.host, server.port))
        }
    }
}

async fn take_permit(
    l: &Ledger,
    server: &ServerConfig,
    user: &str,
    side: &str,
) -> Result<Permit, String> {
    let spec = PermitSpec {
        server: format!("{}:{}", server.host, server.port),
        user: user.to_owned(),
        limit: server.max_connections_per_mailbox.get(),
    };
    l.acquire_permit(&spec, Duration::from_secs(300))
        .await
        .map_err(|e| format!("ledger: {e}"))?
        .ok_or_else(|| format!("{side} {user}: no connection permit came free in 5 minutes"))
}

/// Splits listed messages into those the filters keep (UID, size) and counts of the
/// others by reason.
pub fn apply_filters(
    filters: &Filters,
    metas: &[MessageMeta],
) -> (Vec<(Uid, u32)>, BTreeMap<String, u64>) {
    let mut kept = Vec::with_capacity(metas.len());
    let mut skipped = BTreeMap::new();
    for m in metas {
        match filters.check(u64::from(m.size), &m.flags, m.internal_date) {
            Ok(()) => kept.push((m.uid, m.size)),
            Err(why) => *skipped.entry(why.key().to_owned()).or_insert(0) += 1,
        }
    }
    (kept, skipped)
}
