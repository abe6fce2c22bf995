//! The target side of a migration as one type, whatever it speaks: an IMAP server,
//! Exchange Online through Microsoft Graph, or Exchange Server through EWS.
//!
//! The coordinator uses it to learn the target's special folders and create the folder
//! tree; the worker to upload messages and to look for copies a failed attempt may have
//! left. Each kind keeps its own strengths: IMAP uploads a batch in one MULTIAPPEND,
//! EWS a batch in one `CreateItem`, Graph one message per request.
//!
//! Invariants: [`TargetSession::upload`] reports, for a prefix of the messages, where
//! each landed or why the target refused it for good, and stops at the first failure
//! that is not permanent (that message may or may not have been committed; the caller
//! looks it up before sending it again). Folder names of IMAP targets are wire names
//! (modified UTF-7 with the server's delimiter); those of Graph and EWS targets are the
//! path's display names as a JSON array, since Exchange names may hold any character.

use crate::body::{Body, Mime};
use crate::error::ConnectorError;
use crate::ews::{EwsAuth, EwsClient, EwsConfig, EwsRole};
use crate::exchange_state::{ExchangeOptions, KeywordCategories};
use crate::folder_map::MapRules;
use crate::gate::RequestGate;
use crate::graph::{GraphClient, GraphConfig, ImportItem, UploadPath};
use crate::imap::{self, AppendItem, ImapSession, RawMessage};
use crate::mapping;
use crate::special::SpecialUse;
use chrono::Utc;
use mailhaul_proto::ErrorClass;
use mailhaul_proto::ledger::{Delivery, Lost, TargetRef, UploadPath as LedgerPath};
use mailhaul_proto::manifest::MimeRoute;
use mailhaul_proto::manifest::{GraphUpload, Login, ServerConfig, ServerKind, TokenSource};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// An open target.
#[derive(Debug)]
pub enum TargetSession {
    /// An IMAP server, logged in.
    Imap(ImapSession),
    /// Exchange Online through Graph, for one mailbox.
    Graph {
        /// The tenant's client, with this mailbox's gate.
        client: GraphClient,
        /// The mailbox (UPN or SMTP address).
        upn: String,
    },
    /// Exchange through EWS, for one mailbox.
    Ews(EwsClient),
}

/// What the mapping needs to know of the target's folders.
#[derive(Debug, Clone, Default)]
pub struct TargetTree {
    /// Path of the target's folder of each special role.
    pub specials: HashMap<SpecialUse, Vec<String>>,
    /// IMAP hierarchy delimiter (`None` for flat servers and for Exchange APIs).
    pub delimiter: Option<char>,
    /// Whether names compare case-insensitively (Exchange).
    pub case_insensitive: bool,
    /// IMAP: the personal namespace the user's folders go under (RFC 2342).
    pub naming: Option<mapping::Naming>,
    /// IMAP: characters the target refuses in names besides its delimiter.
    pub forbidden: Vec<char>,
}

impl TargetTree {
    /// `rules` adjusted to this target: Exchange compares names case-insensitively; an
    /// IMAP target's separator and refused characters cannot be in a name.
    pub fn rules(&self, mut rules: MapRules) -> MapRules {
        rules.case_insensitive = self.case_insensitive;
        rules.separator = self.delimiter;
        rules.forbidden = self.forbidden.clone();
        rules
    }
}

/// Where one message landed and, on Exchange, how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    /// The copy on the target.
    pub target: TargetRef,
    /// Exchange targets: the upload path and what the message lost there.
    pub delivery: Option<Delivery>,
}

impl Landed {
    fn imap(uid: mailhaul_proto::Uid) -> Landed {
        Landed {
            target: TargetRef::Uid(uid),
            delivery: None,
        }
    }
}

/// The result of [`TargetSession::upload`].
#[derive(Debug, Default)]
pub struct Uploaded {
    /// One entry per message, in order, for the first `results.len()` messages: where it
    /// landed, or the target's permanent refusal.
    pub results: Vec<Result<Landed, ConnectorError>>,
    /// The failure that stopped the upload at message `results.len()` (not permanent:
    /// that message may have been committed).
    pub stopped: Option<ConnectorError>,
}

/// The process-wide Graph client of a tenant (one HTTP connection pool, one token).
fn graph_client(server: &ServerConfig) -> Result<GraphClient, ConnectorError> {
    static CLIENTS: LazyLock<Mutex<HashMap<String, GraphClient>>> = LazyLock::new(Default::default);
    let http = server.http.as_ref().ok_or_else(|| {
        ConnectorError::Protocol("a graph target needs `url` in the manifest".into())
    })?;
    let Login::XOAuth2(token @ TokenSource::ClientCredentials { .. }) = &server.login else {
        return Err(ConnectorError::Protocol(
            "a graph target logs in with the app's client credentials (tenant, oauth_client_id, oauth_client_secret)".into(),
        ));
    };
    let key = format!("{} {:?}", http.url, token);
    let mut clients = CLIENTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let client = GraphClient::new(GraphConfig {
        base_url: http.url.clone(),
        token: token.clone(),
        upload: match http.upload {
            GraphUpload::Json => UploadPath::JsonCreate,
            GraphUpload::ImportMime => UploadPath::ImportMime,
        },
        ca_file: server.ca_file.clone(),
        tls_verify: server.tls_verify,
        options: exchange_options(http),
    })?;
    clients.insert(key, client.clone());
    Ok(client)
}

/// The manifest's fidelity options as the clients take them.
fn exchange_options(http: &mailhaul_proto::manifest::HttpTarget) -> ExchangeOptions {
    ExchangeOptions {
        json: crate::graph::JsonOptions {
            x_headers: http.fidelity.x_headers.clone(),
        },
        categories: KeywordCategories::new(http.fidelity.keyword_categories.iter().cloned()),
        mime_route: http.fidelity.mime_route == MimeRoute::ImportMime,
    }
}

impl TargetSession {
    /// Opens the target for mailbox `user` (`password` is used by password logins only).
    /// HTTP targets send every request through `gate`.
    ///
    /// # Errors
    /// Connection, TLS and login failures; a manifest that does not fit the kind.
    pub async fn connect(
        server: &ServerConfig,
        user: &str,
        password: &SecretString,
        gate: Arc<dyn RequestGate>,
    ) -> Result<TargetSession, ConnectorError> {
        match server.kind {
            ServerKind::Graph => Ok(TargetSession::Graph {
                client: graph_client(server)?.with_gate(gate),
                upn: user.to_owned(),
            }),
            ServerKind::Ews => {
                let http = server.http.as_ref().ok_or_else(|| {
                    ConnectorError::Protocol("an ews target needs `url` in the manifest".into())
                })?;
                let cfg = EwsConfig {
                    url: http.url.clone(),
                    server_version: http.server_version.clone(),
                    ca_file: server.ca_file.clone(),
                    tls_verify: server.tls_verify,
                    categories: exchange_options(http).categories,
                };
                let auth = match &server.login {
                    Login::Master { user: service } => EwsAuth::Impersonation {
                        user: service.clone(),
                        password: password.clone(),
                    },
                    Login::XOAuth2(source) => EwsAuth::OAuth(crate::oauth::provider_for(source)),
                    _ => EwsAuth::Basic {
                        user: user.to_owned(),
                        password: password.clone(),
                    },
                };
                Ok(TargetSession::Ews(
                    EwsClient::new(&cfg, auth, user)?.with_gate(gate),
                ))
            }
            _ => Ok(TargetSession::Imap(
                imap::connect(server, user, password).await?,
            )),
        }
    }

    /// `imap`, `graph` or `ews`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetSession::Imap(_) => "imap",
            TargetSession::Graph { .. } => "graph",
            TargetSession::Ews(_) => "ews",
        }
    }

    /// Whether this target keeps its session across a throttle signal (HTTP targets), so
    /// the caller may wait and go on instead of starting over.
    pub fn survives_throttling(&self) -> bool {
        !matches!(self, TargetSession::Imap(_))
    }

    /// The target's special folders and naming rules.
    ///
    /// # Errors
    /// Any failed listing.
    pub async fn tree(&mut self) -> Result<TargetTree, ConnectorError> {
        let mut tree = TargetTree::default();
        match self {
            TargetSession::Imap(s) => {
                let naming = s.naming().await?;
                for f in s.list_folders().await? {
                    let role = f
                        .special_use
                        .as_deref()
                        .and_then(SpecialUse::from_attribute);
                    // Only the user's own folders (another user's Sent is not ours).
                    if let (Some(role), Ok(Some(segments))) =
                        (role, naming.personal_segments(&f.raw_name))
                    {
                        tree.specials.entry(role).or_insert(segments);
                    }
                }
                tree.delimiter = naming.delimiter;
                tree.forbidden = mapping::forbidden_chars(naming.delimiter, s.is_cyrus());
                tree.naming = Some(naming);
            }
            TargetSession::Graph { client, upn } => {
                tree.case_insensitive = true;
                let folders = client.folders(upn).await?;
                for role in SpecialUse::ALL {
                    // A well-known name resolves to the folder's id (Graph §1.3).
                    let id = match client
                        .ensure_folder_under(upn, role.graph_well_known(), &[])
                        .await
                    {
                        Ok(id) => id,
                        // Not every mailbox has every well-known folder (archive).
                        Err(e) if e.class() == ErrorClass::Permanent => continue,
                        Err(e) => return Err(e),
                    };
                    if let Some(f) = folders.iter().find(|f| f.id == id) {
                        tree.specials.insert(role, f.path.clone());
                    }
                }
            }
            TargetSession::Ews(client) => {
                tree.case_insensitive = true;
                for f in client.folders().await? {
                    if let Some(EwsRole::Special(role)) = f.role {
                        tree.specials.entry(role).or_insert(f.path);
                    }
                }
            }
        }
        Ok(tree)
    }

    /// The target name of the folder at `segments` (see the module docs).
    pub fn folder_name(&self, segments: &[String], tree: &TargetTree) -> String {
        match self {
            TargetSession::Imap(_) => match &tree.naming {
                Some(naming) => naming.wire_name(segments),
                None => mapping::target_name(segments, tree.delimiter),
            },
            _ => path_name(segments),
        }
    }

    /// Creates the folder `name` (a [`TargetSession::folder_name`]) if missing, parents
    /// first. Returns its id on targets that have ids.
    ///
    /// # Errors
    /// A failed create (an existing folder is not one).
    pub async fn ensure_folder(&mut self, name: &str) -> Result<Option<String>, ConnectorError> {
        match self {
            TargetSession::Imap(s) => s.create_folder(name).await.map(|()| None),
            TargetSession::Graph { client, upn } => {
                let path = segments_of(name)?;
                client.ensure_folder(upn, &path).await.map(Some)
            }
            TargetSession::Ews(client) => {
                let path = segments_of(name)?;
                client.ensure_folder(&path).await.map(Some)
            }
        }
    }

    /// Makes `name` the folder uploads go to. IMAP: SELECT, creating the folder if it
    /// vanished since planning. Graph/EWS: `id` from the plan, or the path resolved
    /// (and created if missing) when the plan had none. Returns the folder handle.
    ///
    /// # Errors
    /// Any failed request.
    pub async fn open_folder(
        &mut self,
        name: &str,
        id: Option<&str>,
    ) -> Result<String, ConnectorError> {
        match (self, id) {
            (TargetSession::Imap(s), _) => {
                if let Err(e) = s.select(name).await {
                    if !matches!(e, ConnectorError::No { .. }) {
                        return Err(e);
                    }
                    tracing::info!(folder = %name, "Target folder missing; creating it.");
                    s.create_folder(name).await?;
                    s.select(name).await?;
                }
                Ok(name.to_owned())
            }
            (_, Some(id)) => Ok(id.to_owned()),
            (me, None) => me
                .ensure_folder(name)
                .await?
                .ok_or_else(|| ConnectorError::Protocol("no folder id".into())),
        }
    }

    /// Uploads `msgs` into `folder` (from [`TargetSession::open_folder`]). See the module
    /// docs for what the result promises.
    pub async fn upload(&mut self, folder: &str, msgs: &[RawMessage]) -> Uploaded {
        let mut out = Uploaded::default();
        match self {
            TargetSession::Imap(s) => imap_upload(s, folder, msgs, &mut out).await,
            TargetSession::Graph { client, upn } => {
                for m in msgs {
                    let keywords = keywords(&m.flags);
                    let prefix = match message_id_line(&m.body).await {
                        Ok(p) => p,
                        Err(e) => {
                            out.stopped = Some(e.into());
                            break;
                        }
                    };
                    let item = import_item(m, &prefix, &keywords);
                    match client.import(upn, folder, &item).await {
                        Ok(imported) => out.results.push(Ok(Landed {
                            delivery: Some(imported.delivery()),
                            target: TargetRef::Item(imported.id),
                        })),
                        Err(e) if e.class() == ErrorClass::Permanent => out.results.push(Err(e)),
                        Err(e) => {
                            out.stopped = Some(e);
                            break;
                        }
                    }
                }
            }
            TargetSession::Ews(client) => {
                let keywords: Vec<Vec<String>> = msgs.iter().map(|m| keywords(&m.flags)).collect();
                let mut prefixes = Vec::with_capacity(msgs.len());
                for m in msgs {
                    match message_id_line(&m.body).await {
                        Ok(p) => prefixes.push(p),
                        Err(e) => {
                            out.stopped = Some(e.into());
                            return out;
                        }
                    }
                }
                let items: Vec<ImportItem<'_>> = msgs
                    .iter()
                    .zip(&prefixes)
                    .zip(&keywords)
                    .map(|((m, prefix), k)| import_item(m, prefix, k))
                    .collect();
                match client.create_items(folder, &items).await {
                    Ok(results) => {
                        for r in results {
                            match r {
                                Ok(id) => out.results.push(Ok(Landed {
                                    target: TargetRef::Item(id),
                                    delivery: Some(Delivery {
                                        path: LedgerPath::EwsMime,
                                        lost: Lost::NONE,
                                    }),
                                })),
                                Err(e) if e.class() == ErrorClass::Permanent => {
                                    out.results.push(Err(e));
                                }
                                Err(e) => {
                                    out.stopped = Some(e);
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => out.stopped = Some(e),
                }
            }
        }
        out
    }

    /// The message as it will be sent to this target: as it is, except where the target
    /// is known to refuse it and the manifest allows a fix. Today that is bare LF onto
    /// Cyrus ("Message contains bare newlines", seen on 3.6): with `bare_lf = "crlf"`
    /// (the default) every bare LF becomes CRLF. Deterministic, so a retried slice sends
    /// the same bytes and finds its own copies. Returns the message and, when it was
    /// changed, what was done (for the log and the slice's report).
    ///
    /// # Errors
    /// A spooled body cannot be read.
    pub async fn prepare(
        &self,
        m: RawMessage,
    ) -> std::io::Result<(RawMessage, Option<&'static str>)> {
        let TargetSession::Imap(s) = self else {
            return Ok((m, None));
        };
        if !s.is_cyrus() || s.bare_lf_policy() != mailhaul_proto::manifest::BareLf::Crlf {
            return Ok((m, None));
        }
        // Spooled bodies are large; they are read whole only if they hold a bare LF.
        let whole = m.body.whole().await?;
        if !has_bare_lf(&whole) {
            drop(whole);
            return Ok((m, None));
        }
        let fixed = Body::from(crlf(&whole));
        drop(whole);
        Ok((
            RawMessage { body: fixed, ..m },
            Some("bare LF line ends sent as CRLF (the target refuses bare LF)"),
        ))
    }

    /// Copies in `folder` that may be `body` (sent by an attempt that failed or died
    /// before recording it). IMAP: same Message-ID and exact size, confirmed by content
    /// hash. Graph/EWS: same Message-ID (Exchange keeps the MIME it was given only
    /// loosely, so the Message-ID is the identity; messages without one were given a
    /// deterministic one at upload, see [`with_message_id`]). On Graph a copy counts only
    /// when it is a draft exactly when the message is (`draft`: its `\Draft` flag): a
    /// migrated draft stays one, and a draft copy of a sent message is not its copy.
    ///
    /// # Errors
    /// Any failed request.
    pub async fn find_copies(
        &mut self,
        folder: &str,
        body: &Body,
        draft: bool,
    ) -> Result<Vec<TargetRef>, ConnectorError> {
        let head = body.head().await?;
        match self {
            TargetSession::Imap(s) => {
                let id = mailhaul_proto::inspect::message_id(&head);
                let size = u32::try_from(body.len()).unwrap_or(u32::MAX);
                let mut out = Vec::new();
                for c in s.find_candidates(id.as_deref(), size).await? {
                    // Hashed in pieces: a large copy is never held whole.
                    if s.body_hash(c).await? == Some((body.len(), body.hash())) {
                        out.push(TargetRef::Uid(c));
                    }
                }
                Ok(out)
            }
            TargetSession::Graph { client, upn } => {
                let id = message_id_for(&head, body.hash());
                let mut out = Vec::new();
                for f in client.find_by_message_id(upn, folder, &id).await? {
                    if f.complete {
                        if f.is_draft == draft {
                            out.push(TargetRef::Item(f.id));
                        }
                    } else {
                        // A multi-request import that stopped half way (attachments
                        // missing): remove it, the message will be imported whole.
                        tracing::info!(item = %f.id, "Removing a half-imported copy.");
                        client.delete_message(upn, &f.id).await?;
                    }
                }
                Ok(out)
            }
            TargetSession::Ews(client) => {
                let id = message_id_for(&head, body.hash());
                Ok(client
                    .find_by_message_id(folder, &id)
                    .await?
                    .into_iter()
                    .map(|f| TargetRef::Item(f.id))
                    .collect())
            }
        }
    }

    /// Gives `copy`, a copy of `m` found on the target ([`TargetSession::find_copies`])
    /// that no record holds, the state `m` has: on Graph's importMime path the state is a
    /// second request the failed attempt may not have made (a PATCH answered 429, a
    /// crash between the two). Returns how the copy got there, for its record. IMAP
    /// copies and EWS items carry their state from the one request that made them.
    ///
    /// # Errors
    /// The failed request; the copy stays unclaimed, so a retry finds it again.
    pub async fn restore(
        &mut self,
        folder: &str,
        copy: &TargetRef,
        m: &RawMessage,
    ) -> Result<Option<Delivery>, ConnectorError> {
        match (self, copy) {
            (TargetSession::Graph { client, upn }, TargetRef::Item(id)) => {
                let keywords = keywords(&m.flags);
                let prefix = message_id_line(&m.body).await?;
                let item = import_item(m, &prefix, &keywords);
                let restored = client.restore_state(upn, folder, id, &item).await?;
                Ok(Some(restored.delivery()))
            }
            (TargetSession::Ews(_), _) => Ok(Some(Delivery {
                path: LedgerPath::EwsMime,
                lost: Lost::NONE,
            })),
            _ => Ok(None),
        }
    }

    /// How `body` (with IMAP `flags`) will go onto this target and what it will lose, as
    /// the upload will decide it (Graph's router, [`crate::graph`]); `None` for IMAP
    /// targets, whose only path is APPEND. For `mailhaul plan`: no request is sent.
    /// Addresses the conversion would drop are not foreseen here.
    ///
    /// # Errors
    /// A spooled body that cannot be read.
    pub async fn planned_delivery(
        &self,
        body: &Body,
        flags: &[String],
    ) -> std::io::Result<Option<Delivery>> {
        match self {
            TargetSession::Imap(_) => Ok(None),
            TargetSession::Ews(_) => Ok(Some(Delivery {
                path: LedgerPath::EwsMime,
                lost: Lost::NONE,
            })),
            TargetSession::Graph { client, .. } => {
                let whole = body.whole().await?;
                Ok(Some(
                    client.planned_delivery(&whole, has_flag(flags, "\\Draft")),
                ))
            }
        }
    }

    /// Which of `copies` (recorded earlier) still exist with `body`'s identity (a draft
    /// or not per `draft`, as in [`TargetSession::find_copies`]).
    ///
    /// # Errors
    /// Any failed request.
    pub async fn still_there(
        &mut self,
        folder: &str,
        body: &Body,
        draft: bool,
        copies: &[TargetRef],
    ) -> Result<Vec<TargetRef>, ConnectorError> {
        match self {
            TargetSession::Imap(s) => {
                let uids: Vec<_> = copies.iter().filter_map(TargetRef::uid).collect();
                if uids.is_empty() {
                    return Ok(Vec::new());
                }
                let size = u32::try_from(body.len()).unwrap_or(u32::MAX);
                let meta = s.fetch_meta(&uids).await?;
                Ok(copies
                    .iter()
                    .filter(|c| {
                        meta.iter()
                            .any(|(u, _, _, s)| Some(*u) == c.uid() && *s == size)
                    })
                    .cloned()
                    .collect())
            }
            _ => {
                let found = self.find_copies(folder, body, draft).await?;
                Ok(copies
                    .iter()
                    .filter(|c| found.contains(c))
                    .cloned()
                    .collect())
            }
        }
    }

    /// Ends the session (IMAP LOGOUT; nothing for HTTP targets).
    pub async fn logout(self) {
        if let TargetSession::Imap(s) = self {
            let _ = s.logout().await;
        }
    }
}

/// IMAP: messages over the server's APPENDLIMIT (RFC 7889) fail here, unsent (the
/// server would refuse them after the whole upload); the runs between them go up as
/// [`imap_upload_run`] sends them.
async fn imap_upload(s: &mut ImapSession, folder: &str, msgs: &[RawMessage], out: &mut Uploaded) {
    let Some(limit) = s.append_limit() else {
        return imap_upload_run(s, folder, msgs, out).await;
    };
    let mut start = 0;
    for (i, m) in msgs.iter().enumerate() {
        if m.body.len() > limit {
            imap_upload_run(s, folder, &msgs[start..i], out).await;
            if out.stopped.is_some() {
                return;
            }
            out.results.push(Err(ConnectorError::MessageTooLarge {
                message: format!("of {} bytes (UID {})", m.body.len(), m.uid),
                limit,
            }));
            start = i + 1;
        }
    }
    imap_upload_run(s, folder, &msgs[start..], out).await;
}

/// IMAP: one MULTIAPPEND; if the batch is refused for good, one by one to find the
/// culprit (RFC 3502 §6.3.11: MULTIAPPEND is all or nothing); a one-by-one upload
/// (no MULTIAPPEND) that failed part way keeps what it appended.
async fn imap_upload_run(
    s: &mut ImapSession,
    folder: &str,
    msgs: &[RawMessage],
    out: &mut Uploaded,
) {
    let mut rest = msgs;
    while !rest.is_empty() {
        let items: Vec<AppendItem<'_>> = rest
            .iter()
            .map(|m| AppendItem {
                flags: &m.flags,
                internal_date: m.internal_date,
                body: &m.body,
            })
            .collect();
        match s.append_batch(folder, &items).await {
            Ok(uids) if uids.len() == rest.len() => {
                out.results
                    .extend(uids.into_iter().map(|u| Ok(Landed::imap(u))));
                return;
            }
            Ok(uids) => {
                out.stopped = Some(ConnectorError::Protocol(format!(
                    "APPENDUID named {} messages for {} appended",
                    uids.len(),
                    rest.len()
                )));
                return;
            }
            Err(ConnectorError::PartialAppend { appended, source }) => {
                let n = appended.len();
                out.results
                    .extend(appended.into_iter().map(|u| Ok(Landed::imap(u))));
                if source.class() != ErrorClass::Permanent || n >= rest.len() {
                    out.stopped = Some(*source);
                    return;
                }
                out.results.push(Err(*source));
                rest = &rest[n + 1..];
            }
            Err(e) if e.class() == ErrorClass::Permanent && rest.len() > 1 => {
                tracing::debug!(err = %e, "Batch refused; appending one by one.");
                for m in rest {
                    let item = [AppendItem {
                        flags: &m.flags,
                        internal_date: m.internal_date,
                        body: &m.body,
                    }];
                    match s.append_batch(folder, &item).await {
                        Ok(uids) if uids.len() == 1 => out.results.push(Ok(Landed::imap(uids[0]))),
                        Ok(_) => {
                            out.stopped = Some(ConnectorError::Protocol(
                                "APPENDUID named no message for one appended".into(),
                            ));
                            return;
                        }
                        Err(e) if e.class() == ErrorClass::Permanent => out.results.push(Err(e)),
                        Err(e) => {
                            out.stopped = Some(e);
                            return;
                        }
                    }
                }
                return;
            }
            Err(e) if e.class() == ErrorClass::Permanent => {
                out.results.push(Err(e));
                return;
            }
            Err(e) => {
                out.stopped = Some(e);
                return;
            }
        }
    }
}

/// Whether `b` has an LF not preceded by CR.
fn has_bare_lf(b: &[u8]) -> bool {
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'\n' && (i == 0 || b[i - 1] != b'\r'))
}

/// `b` with every bare LF made CRLF (CRLF and lone CR stay as they are).
pub fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 32);
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

/// The flags an [`ImportItem`] reads beyond `\Seen` and `\Flagged`: keywords (which may
/// become categories) and `\Answered`, `\Draft` (see [`crate::exchange_state`]).
fn keywords(flags: &[String]) -> Vec<String> {
    flags
        .iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Seen") && !f.eq_ignore_ascii_case("\\Flagged"))
        .cloned()
        .collect()
}

/// Whether IMAP `flags` hold `flag` (case-insensitive, as IMAP flags are).
pub fn has_flag(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

fn import_item<'a>(m: &'a RawMessage, prefix: &'a [u8], keywords: &'a [String]) -> ImportItem<'a> {
    ImportItem {
        mime: Mime::Body {
            prefix,
            body: &m.body,
        },
        received: m.internal_date.with_timezone(&Utc),
        seen: has_flag(&m.flags, "\\Seen"),
        flagged: has_flag(&m.flags, "\\Flagged"),
        keywords,
    }
}

/// The Message-ID a copy on Exchange carries: the message's own, or for a message
/// without one the id [`with_message_id`] gives it.
pub fn exchange_message_id(body: &[u8]) -> String {
    message_id_for(body, mailhaul_proto::ledger::content_hash(body))
}

/// [`exchange_message_id`] from the leading bytes that hold the header section and the
/// content hash of the whole.
fn message_id_for(head: &[u8], hash: u64) -> String {
    mailhaul_proto::inspect::message_id(head).unwrap_or_else(|| synthetic_message_id(hash))
}

/// A deterministic Message-ID from the content hash, so a copy can be found again after
/// a failed attempt; identical messages share it, and the ledger's claims keep them
/// apart by count.
pub fn synthetic_message_id(hash: u64) -> String {
    format!("<{hash:016x}.mailhaul@migrated.invalid>")
}

/// The MIME sent to Exchange: as given, with a `Message-ID:` header first when the
/// message has none (Exchange would invent a random one, and the copy could then never
/// be found again to rule out a duplicate after a failed attempt).
pub fn with_message_id(body: &[u8]) -> Vec<u8> {
    let mut out = id_line(body, mailhaul_proto::ledger::content_hash(body));
    out.extend_from_slice(body);
    out
}

/// What [`with_message_id`] puts in front of `body`: nothing, or a `Message-ID:` line.
///
/// # Errors
/// A spooled body's file cannot be read.
async fn message_id_line(body: &Body) -> std::io::Result<Vec<u8>> {
    Ok(id_line(&body.head().await?, body.hash()))
}

fn id_line(head: &[u8], hash: u64) -> Vec<u8> {
    if mailhaul_proto::inspect::has_message_id(head) {
        return Vec::new();
    }
    format!("Message-ID: {}\r\n", synthetic_message_id(hash)).into_bytes()
}

/// The name of an Exchange folder path: its display names as a JSON array.
fn path_name(segments: &[String]) -> String {
    serde_json::to_string(segments).unwrap_or_default()
}

/// The path of an Exchange folder name ([`path_name`]'s form).
///
/// # Errors
/// A name that is not a JSON array of strings (a task from another build).
pub fn segments_of(name: &str) -> Result<Vec<String>, ConnectorError> {
    serde_json::from_str(name).map_err(|e| {
        ConnectorError::Protocol(format!(
            "target folder name {name:?} is not an Exchange folder path ({e}); plan the migration again"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lf_becomes_crlf_and_nothing_else_changes() {
        for (input, want) in [
            (&b"a\nb\r\nc\rd\n"[..], &b"a\r\nb\r\nc\rd\r\n"[..]),
            (b"\n", b"\r\n"),
            (b"\r\n\r\n", b"\r\n\r\n"),
            (b"", b""),
        ] {
            assert_eq!(crlf(input), want);
            assert_eq!(has_bare_lf(input), input != want);
        }
    }

    #[test]
    fn exchange_names_round_trip() {
        let path = vec!["Inbox".to_owned(), "a/b \"c\"".to_owned(), "Ü".to_owned()];
        assert_eq!(segments_of(&path_name(&path)).ok(), Some(path));
        assert!(segments_of("INBOX").is_err());
    }

    #[test]
    fn messages_without_id_get_a_stable_one() {
        let body = b"Subject: x\r\n\r\nhi\r\n";
        let sent = with_message_id(body);
        assert!(sent.starts_with(b"Message-ID: <"));
        assert!(sent.ends_with(body));
        assert_eq!(with_message_id(body), sent);
        assert_eq!(
            mailhaul_proto::inspect::message_id(&sent),
            Some(exchange_message_id(body))
        );
        let with = b"Message-ID: <a@b>\r\n\r\nx";
        assert_eq!(with_message_id(with), with.to_vec());
        assert_eq!(exchange_message_id(with), "<a@b>");
    }
}
