//! `mailhaul verify <manifest>`: re-reads source and target and compares them, without
//! the ledger. Per mailbox and target folder (source folders that merge into one target
//! folder compare as one), every source message the filters keep must be on the target
//! exactly once.
//!
//! Identity: IMAP targets keep the bytes, so a message is its Message-ID and size;
//! Exchange rewrites the MIME, so there it is the Message-ID alone. A message without a
//! Message-ID is known by the deterministic id mailhaul gives it on Exchange
//! ([`synthetic_message_id`], a content hash), for which its body is read.
//!
//! Speed: per folder and side one `UID FETCH first:last (UID RFC822.SIZE
//! BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)])`; bodies are read only for messages
//! without a Message-ID and for the few whose sizes differ. IMAP servers change some
//! bytes they are given (Dovecot and Courier repair bare LF to CRLF; POP3 and IMAP
//! servers count sizes differently), so a source message not found by its size is
//! compared by content with the target copies of its Message-ID, and accepted when the
//! target's bytes are the source's as a known transformation makes them
//! ([`transformation`]); the check says which one it accepted.
//!
//! Target messages that match no source message are the user's own ("extra"), not
//! errors — unless they carry a source message's Message-ID: then they are duplicates.
//! Where each source folder went is the ledger's record when it has one (the first
//! pass's choice stands, as in `discover`); what is there is read from the servers.
//! Writes nothing anywhere.

use crate::survey::{self, SurveyedFolder};
use mailhaul_connectors::body::Body;
use mailhaul_connectors::error::ConnectorError;
use mailhaul_connectors::graph::ListedItem;
use mailhaul_connectors::imap::{ImapSession, MessageIdentity};
use mailhaul_connectors::pop3::Pop3Session;
use mailhaul_connectors::target::{TargetSession, crlf, segments_of, synthetic_message_id};
use mailhaul_connectors::{mapping, mutf7};
use mailhaul_ledger::Ledger;
use mailhaul_proto::manifest::{MailboxSpec, Manifest, ServerKind};
use mailhaul_proto::{FolderId, Uid, UidRange};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::process::ExitCode;

/// Missing or duplicated messages listed per folder, at most.
const LISTED: usize = 20;

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Migration id.
    pub migration: String,
    /// Per mailbox, in manifest order.
    pub mailboxes: Vec<MailboxCheck>,
}

impl Verification {
    /// Whether every expected message is on the target exactly once, everywhere.
    pub fn ok(&self) -> bool {
        self.mailboxes.iter().all(MailboxCheck::ok)
    }
}

/// One mailbox.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxCheck {
    /// The mailbox.
    pub mailbox: String,
    /// Why it could not be verified.
    pub error: Option<String>,
    /// Per target folder.
    pub folders: Vec<FolderCheck>,
}

impl MailboxCheck {
    /// Whether the mailbox was read and every expected message is there once.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self
                .folders
                .iter()
                .all(|f| f.missing + f.duplicated == 0 && !f.unsubscribed)
    }
}

/// One target folder and the source folders that go there.
#[derive(Debug, Clone, Serialize)]
pub struct FolderCheck {
    /// Target folder (human path).
    pub target: String,
    /// Source folders (human paths).
    pub sources: Vec<String>,
    /// Messages expected (the source's, after filters).
    pub expected: u64,
    /// Messages found in the target folder.
    pub found: u64,
    /// Expected messages not there.
    pub missing: u64,
    /// Copies too many of source messages.
    pub duplicated: u64,
    /// Target messages that are not the source's (the user's own).
    pub extra: u64,
    /// The first missing and duplicated messages.
    pub problems: Vec<Problem>,
    /// Subscribed on the source (IMAP, LSUB) but not on the target.
    pub unsubscribed: bool,
    /// Messages there with other bytes than the source's, changed in a way the target
    /// server is known to change what it is given (counted as found, not missing).
    pub transformed: Vec<Transformed>,
}

/// A message whose target copy differs from the source's by a known transformation.
#[derive(Debug, Clone, Serialize)]
pub struct Transformed {
    /// Its Message-ID.
    pub message_id: String,
    /// Its subject.
    pub subject: Option<String>,
    /// The transformation accepted (see [`transformation`]).
    pub transformation: &'static str,
}

/// A message missing or duplicated on the target.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// `missing` or `duplicated`.
    pub kind: &'static str,
    /// Its Message-ID (or mailhaul's id for a message without one).
    pub message_id: String,
    /// Its subject.
    pub subject: Option<String>,
    /// The source folder it is in, if it is a source message.
    pub source_folder: Option<String>,
}

/// One message on either side: its identity key, what a person reads, and where to
/// read it again.
#[derive(Debug, Clone)]
struct Entry {
    key: Key,
    subject: Option<String>,
    /// The source folder (human path); `None` on the target.
    folder: Option<String>,
    /// The source folder's raw name (IMAP sources); `None` on the target, where the
    /// folder is the one being compared, and for POP3.
    raw_folder: Option<String>,
    /// Its UID (IMAP) or message number (POP3); 0 on Exchange.
    at: u32,
}

/// Message-ID (or mailhaul's id) and, on IMAP targets, the size.
type Key = (String, Option<u32>);

/// `mailhaul verify`: prints the verification as `format` (`table` or `json`); exit 0
/// when every expected message is there exactly once, 1 otherwise.
pub async fn run(m: &Manifest, format: &str, services: &crate::engine::Services) -> ExitCode {
    // The ledger only says where each folder was sent (the first pass's choice stands,
    // even if the target tree has changed since); what is there is read from the servers.
    let ledger = match services.read_ledger().await {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!(
                "warning: cannot read the ledger ({e:#}); target folders are mapped afresh, which can differ from where an earlier pass put them"
            );
            None
        }
    };
    let v = verify(m, ledger.as_ref()).await;
    if format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("a verification always serialises")
        );
    } else {
        print!("{}", table(&v));
    }
    if v.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Verifies every mailbox of the manifest, one at a time.
pub async fn verify(m: &Manifest, ledger: Option<&Ledger>) -> Verification {
    let mut mailboxes = Vec::with_capacity(m.mailboxes.len());
    for mbx in &m.mailboxes {
        let mut check = MailboxCheck {
            mailbox: mbx.id.to_string(),
            error: None,
            folders: Vec::new(),
        };
        match check_mailbox(m, mbx, ledger).await {
            Ok(folders) => check.folders = folders,
            Err(e) => check.error = Some(e),
        }
        mailboxes.push(check);
    }
    Verification {
        migration: m.migration.to_string(),
        mailboxes,
    }
}

/// The source folders going to one target folder, and their messages.
#[derive(Default)]
struct Group {
    display: String,
    sources: Vec<String>,
    expected: Vec<Entry>,
    subscribed: bool,
}

/// One mailbox: the target is opened here, the source by the check of its kind.
async fn check_mailbox(
    m: &Manifest,
    mbx: &MailboxSpec,
    ledger: Option<&Ledger>,
) -> Result<Vec<FolderCheck>, String> {
    let mut target =
        survey::open_target(None, &m.target, &mbx.target_user, &mbx.target_password).await?;
    let result = if m.source.kind == ServerKind::Pop3 {
        check_pop3(m, mbx, &mut target.session).await
    } else {
        check_imap(m, mbx, ledger, &mut target.session).await
    };
    target.close(None).await;
    result
}

async fn check_imap(
    m: &Manifest,
    mbx: &MailboxSpec,
    ledger: Option<&Ledger>,
    target: &mut TargetSession,
) -> Result<Vec<FolderCheck>, String> {
    let mut source = survey::open(
        None,
        &m.source,
        &mbx.source_user,
        &mbx.source_password,
        "source",
    )
    .await?;
    let sized = !m.target.kind.is_http();
    let result = async {
        let surveyed = survey::survey(m.options_for(mbx), &mut source.session, target).await?;
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for f in &surveyed.folders {
            let entries = source_entries(&mut source.session, f, sized)
                .await
                .map_err(|e| format!("source: reading {:?}: {e}", f.display))?;
            let (name, display) = destination(ledger, m, mbx, f).await?;
            let g = groups.entry(name).or_default();
            g.display = display;
            g.sources.push(f.display.clone());
            g.expected.extend(entries);
            g.subscribed |= f.subscribed;
        }
        let target_subscribed = match target {
            TargetSession::Imap(t) => Some(
                t.subscribed()
                    .await
                    .map_err(|e| format!("target: listing subscriptions (LSUB): {e}"))?,
            ),
            _ => None,
        };
        let mut lister = TargetLister::default();
        let mut out = Vec::with_capacity(groups.len());
        for (name, g) in groups {
            let found = lister
                .entries(target, &name, sized)
                .await
                .map_err(|e| format!("target: reading {:?}: {e}", g.display))?;
            let unsubscribed = g.subscribed
                && target_subscribed
                    .as_ref()
                    .is_some_and(|set| !set.contains(&name));
            let mut check =
                settle(&mut Reread::Imap(&mut source.session), target, g, found).await?;
            check.unsubscribed = unsubscribed;
            out.push(check);
        }
        Ok(out)
    }
    .await;
    source.close(None).await;
    result
}

/// A POP3 mailbox against the target's INBOX: Message-IDs (and Subjects) from TOP, the
/// sizes from LIST; a message without Message-ID is downloaded (and kept nowhere) for
/// the content hash its Exchange copy is named by.
async fn check_pop3(
    m: &Manifest,
    mbx: &MailboxSpec,
    target: &mut TargetSession,
) -> Result<Vec<FolderCheck>, String> {
    let mut source =
        survey::open_pop3(None, &m.source, &mbx.source_user, &mbx.source_password).await?;
    let sized = !m.target.kind.is_http();
    let result = async {
        let options = m.options_for(mbx);
        let f = survey::survey_pop3(
            options,
            &mut source.session,
            survey::inbox_name(Some(target)),
        )
        .await?;
        let reading = |e: ConnectorError| format!("source: reading the POP3 mailbox: {e}");
        // The same filter as the survey: POP3 tells sizes only.
        let max = options.filters.max_message_size;
        let wanted: Vec<(u32, u64)> = source
            .session
            .list()
            .await
            .map_err(reading)?
            .into_iter()
            .filter(|(_, size)| max.is_none_or(|max| *size <= max))
            .collect();
        let expected = source
            .session
            .identities(&wanted)
            .await
            .map_err(reading)?
            .into_iter()
            .map(|i| Entry {
                key: (
                    i.message_id
                        .or_else(|| i.content_hash.map(synthetic_message_id))
                        .unwrap_or_default(),
                    sized.then_some(u32::try_from(i.size).unwrap_or(u32::MAX)),
                ),
                subject: i.subject,
                folder: Some(f.display.clone()),
                raw_folder: None,
                at: i.msgno,
            })
            .collect();
        let group = Group {
            display: f.target_display(),
            sources: vec![f.display.clone()],
            expected,
            subscribed: false,
        };
        let found = TargetLister::default()
            .entries(target, &f.target_name, sized)
            .await
            .map_err(|e| format!("target: reading {:?}: {e}", group.display))?;
        Ok(vec![
            settle(&mut Reread::Pop3(&mut source.session), target, group, found).await?,
        ])
    }
    .await;
    source.close(None).await;
    result
}

/// Where a folder's messages went: the target folder the ledger recorded for it (as
/// `discover` keeps it), else where the mapping sends it now. Name and human path.
async fn destination(
    ledger: Option<&Ledger>,
    m: &Manifest,
    mbx: &MailboxSpec,
    f: &SurveyedFolder,
) -> Result<(String, String), String> {
    let recorded = match ledger {
        Some(l) => l
            .folder_meta(&m.migration, &mbx.id, &FolderId::of_raw_name(&f.raw_name))
            .await
            .map_err(|e| format!("ledger: {e}"))?
            .and_then(|meta| meta.target_name),
        None => None,
    };
    match recorded {
        Some(name) if name != f.target_name => {
            let display = match segments_of(&name) {
                Ok(path) if m.target.kind.is_http() => mapping::display(&path),
                _ => mutf7::decode(&name).unwrap_or_else(|_| name.clone()),
            };
            Ok((name, display))
        }
        _ => Ok((f.target_name.clone(), f.target_display())),
    }
}

/// The messages of a source folder the filters keep.
async fn source_entries(
    s: &mut ImapSession,
    f: &SurveyedFolder,
    sized: bool,
) -> Result<Vec<Entry>, ConnectorError> {
    s.examine(&f.raw_name).await?;
    let uids: Vec<Uid> = f.sizes.iter().map(|(u, _)| *u).collect();
    let ids = s.identities(&uids).await?;
    imap_entries(s, ids, sized, Some((&f.display, &f.raw_name))).await
}

/// Keys IMAP messages; those without a Message-ID by their content (bodies read in
/// pieces, never whole).
async fn imap_entries(
    s: &mut ImapSession,
    ids: Vec<MessageIdentity>,
    sized: bool,
    folder: Option<(&str, &str)>,
) -> Result<Vec<Entry>, ConnectorError> {
    let anonymous: Vec<Uid> = ids
        .iter()
        .filter(|m| m.message_id.is_none())
        .map(|m| m.uid)
        .collect();
    let mut synthetic = BTreeMap::new();
    for uid in anonymous {
        // Hashed in pieces: a large message is never held whole.
        if let Some((_, hash)) = s.body_hash(uid).await? {
            synthetic.insert(uid, synthetic_message_id(hash));
        }
    }
    Ok(ids
        .into_iter()
        .map(|m| {
            let id = m
                .message_id
                .or_else(|| synthetic.get(&m.uid).cloned())
                .unwrap_or_default();
            Entry {
                key: (id, sized.then_some(m.size)),
                subject: m.subject,
                folder: folder.map(|(display, _)| display.to_owned()),
                raw_folder: folder.map(|(_, raw)| raw.to_owned()),
                at: m.uid.0,
            }
        })
        .collect())
}

/// Lists target folders; for Graph and EWS the folder tree is read once per mailbox.
#[derive(Default)]
struct TargetLister {
    folders: Option<Vec<(String, Vec<String>)>>,
}

impl TargetLister {
    /// The messages in target folder `name` (empty if the folder does not exist).
    async fn entries(
        &mut self,
        t: &mut TargetSession,
        name: &str,
        sized: bool,
    ) -> Result<Vec<Entry>, ConnectorError> {
        let items = match t {
            TargetSession::Imap(s) => {
                let status = match s.examine(name).await {
                    Ok(st) => st,
                    Err(ConnectorError::No { .. }) => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                if status.messages == 0 || status.uid_next.0 <= 1 {
                    return Ok(Vec::new());
                }
                let range = UidRange {
                    first: Uid(1),
                    last: Uid(status.uid_next.0 - 1),
                };
                let ids = s.identities_in(range).await?;
                return imap_entries(s, ids, sized, None).await;
            }
            TargetSession::Graph { client, upn } => {
                if self.folders.is_none() {
                    let all = survey::patiently(|| client.folders(upn)).await?;
                    self.folders = Some(all.into_iter().map(|f| (f.id, f.path)).collect());
                }
                let Some(id) = self.find(name)? else {
                    return Ok(Vec::new());
                };
                survey::patiently(|| client.list_messages(upn, &id)).await?
            }
            TargetSession::Ews(client) => {
                if self.folders.is_none() {
                    let all = survey::patiently(|| client.folders()).await?;
                    self.folders = Some(all.into_iter().map(|f| (f.id, f.path)).collect());
                }
                let Some(id) = self.find(name)? else {
                    return Ok(Vec::new());
                };
                survey::patiently(|| client.list_messages(&id)).await?
            }
        };
        Ok(items.into_iter().map(exchange_entry).collect())
    }

    /// The id of the Exchange folder called `name`; names compare case-insensitively.
    fn find(&self, name: &str) -> Result<Option<String>, ConnectorError> {
        let path = segments_of(name)?;
        Ok(self.folders.iter().flatten().find_map(|(id, p)| {
            (p.len() == path.len()
                && p.iter()
                    .zip(&path)
                    .all(|(a, b)| a.to_lowercase() == b.to_lowercase()))
            .then(|| id.clone())
        }))
    }
}

fn exchange_entry(i: ListedItem) -> Entry {
    Entry {
        key: (i.message_id.unwrap_or_default(), None),
        subject: i.subject,
        folder: None,
        raw_folder: None,
        at: 0,
    }
}

/// The source a message can be read from again.
enum Reread<'a> {
    Imap(&'a mut ImapSession),
    Pop3(&'a mut Pop3Session),
}

impl Reread<'_> {
    /// The bytes of source message `e`; `None` when it is gone.
    async fn body(&mut self, e: &Entry) -> Result<Option<Body>, ConnectorError> {
        match self {
            Reread::Imap(s) => {
                let Some(folder) = &e.raw_folder else {
                    return Ok(None);
                };
                s.examine(folder).await?;
                s.body(Uid(e.at)).await
            }
            Reread::Pop3(s) => s.retr(e.at, u64::MAX).await.map(Some),
        }
    }
}

/// Compares one target folder with its sources: first by key, then, on IMAP targets,
/// the source messages not found by content with the target copies of their
/// Message-ID that have another size (both read here, these few only), accepting a
/// copy whose bytes are the source's as a known server transformation makes them.
/// The target folder is the one [`TargetLister::entries`] examined last.
async fn settle(
    source: &mut Reread<'_>,
    target: &mut TargetSession,
    mut g: Group,
    mut found: Vec<Entry>,
) -> Result<FolderCheck, String> {
    let mut accepted = Vec::new();
    if let TargetSession::Imap(t) = target {
        let (missing, surplus) = unmatched(&g.expected, &found);
        let mut taken_source = HashSet::new();
        let mut taken_target = HashSet::new();
        for i in missing {
            let e = &g.expected[i];
            let candidates: Vec<usize> = surplus
                .iter()
                .copied()
                .filter(|j| !taken_target.contains(j) && found[*j].key.0 == e.key.0)
                .collect();
            if e.key.0.is_empty() || candidates.is_empty() {
                continue;
            }
            let source_bytes = match source.body(e).await {
                Ok(Some(b)) => b.whole().await.map_err(|e| e.to_string())?.into_vec(),
                Ok(None) => continue,
                Err(err) => return Err(format!("source: reading {}: {err}", e.key.0)),
            };
            for j in candidates {
                let target_bytes = match t.body(Uid(found[j].at)).await {
                    Ok(Some(b)) => b.whole().await.map_err(|e| e.to_string())?.into_vec(),
                    Ok(None) => continue,
                    Err(err) => return Err(format!("target: reading {}: {err}", e.key.0)),
                };
                if let Some(how) = transformation(&source_bytes, &target_bytes) {
                    taken_source.insert(i);
                    taken_target.insert(j);
                    accepted.push(Transformed {
                        message_id: e.key.0.clone(),
                        subject: e.subject.clone(),
                        transformation: how,
                    });
                    break;
                }
            }
        }
        let mut n = 0;
        g.expected.retain(|_| {
            n += 1;
            !taken_source.contains(&(n - 1))
        });
        let mut n = 0;
        found.retain(|_| {
            n += 1;
            !taken_target.contains(&(n - 1))
        });
    }
    let mut check = compare(g, &found);
    let n = accepted.len() as u64;
    check.expected += n;
    check.found += n;
    check.transformed = accepted;
    Ok(check)
}

/// The expected entries no target entry of the same key answers (indices into
/// `expected`), and the target entries beyond the expected of their key (indices into
/// `found`); the others pair up by key, in order.
fn unmatched(expected: &[Entry], found: &[Entry]) -> (Vec<usize>, Vec<usize>) {
    let mut have: BTreeMap<&Key, usize> = BTreeMap::new();
    for e in found {
        *have.entry(&e.key).or_default() += 1;
    }
    let mut want: BTreeMap<&Key, usize> = BTreeMap::new();
    for e in expected {
        *want.entry(&e.key).or_default() += 1;
    }
    let take = |counts: &mut BTreeMap<&Key, usize>, k: &Key| match counts.get_mut(k) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    };
    let missing = (0..expected.len())
        .filter(|&i| !take(&mut have, &expected[i].key))
        .collect();
    let surplus = (0..found.len())
        .filter(|&j| !take(&mut want, &found[j].key))
        .collect();
    (missing, surplus)
}

/// How the target's bytes `stored` came from the source's `given`, if by a change an
/// IMAP server is known to make to what it is given:
/// - none, the bytes are equal (servers count RFC822.SIZE differently: a POP3 LIST
///   size against the IMAP one, or a server counting bare LF as CRLF);
/// - bare LF made CRLF (Dovecot and Courier store a message with bare LF repaired;
///   mailhaul does the same for Cyrus with `bare_lf = "crlf"`);
/// - NUL replaced by another byte (Dovecot sends NUL as 0x80 outside BINARY), alone or
///   after the CRLF repair.
pub fn transformation(given: &[u8], stored: &[u8]) -> Option<&'static str> {
    if given == stored {
        return Some("the same bytes (the servers count the size differently)");
    }
    let repaired = crlf(given);
    if repaired == stored {
        return Some("bare LF made CRLF");
    }
    if nul_replaced(given, stored) {
        return Some("NUL replaced");
    }
    if nul_replaced(&repaired, stored) {
        return Some("bare LF made CRLF, NUL replaced");
    }
    None
}

/// Whether `stored` is `given` with each NUL byte replaced (and nothing else changed).
fn nul_replaced(given: &[u8], stored: &[u8]) -> bool {
    given.len() == stored.len()
        && given.contains(&0)
        && given
            .iter()
            .zip(stored)
            .all(|(a, b)| a == b || (*a == 0 && *b != 0))
}

/// Compares the expected multiset with what the target folder holds.
fn compare(g: Group, found: &[Entry]) -> FolderCheck {
    let mut want: BTreeMap<&Key, Vec<&Entry>> = BTreeMap::new();
    for e in &g.expected {
        want.entry(&e.key).or_default().push(e);
    }
    let mut have: BTreeMap<&Key, Vec<&Entry>> = BTreeMap::new();
    for e in found {
        have.entry(&e.key).or_default().push(e);
    }
    let source_ids: HashSet<&str> = g
        .expected
        .iter()
        .map(|e| e.key.0.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    let mut check = FolderCheck {
        target: g.display,
        sources: g.sources,
        expected: g.expected.len() as u64,
        found: found.len() as u64,
        missing: 0,
        duplicated: 0,
        extra: 0,
        problems: Vec::new(),
        unsubscribed: false,
        transformed: Vec::new(),
    };
    let note = |check: &mut FolderCheck, kind: &'static str, e: &Entry| {
        if check.problems.len() < LISTED * 2 {
            check.problems.push(Problem {
                kind,
                message_id: e.key.0.clone(),
                subject: e.subject.clone(),
                source_folder: e.folder.clone(),
            });
        }
    };
    for (key, wanted) in &want {
        let there = have.get(key).map_or(&[][..], Vec::as_slice);
        if there.len() < wanted.len() {
            check.missing += (wanted.len() - there.len()) as u64;
            for e in &wanted[there.len()..] {
                note(&mut check, "missing", e);
            }
        } else if there.len() > wanted.len() {
            check.duplicated += (there.len() - wanted.len()) as u64;
            note(&mut check, "duplicated", wanted[0]);
        }
    }
    for (key, there) in &have {
        if want.contains_key(key) {
            continue;
        }
        if source_ids.contains(key.0.as_str()) {
            check.duplicated += there.len() as u64;
            note(&mut check, "duplicated", there[0]);
        } else {
            check.extra += there.len() as u64;
        }
    }
    // At most LISTED of each kind.
    let mut seen = BTreeMap::<&str, usize>::new();
    check.problems.retain(|p| {
        let n = seen.entry(p.kind).or_default();
        *n += 1;
        *n <= LISTED
    });
    check
}

/// The readable form.
pub fn table(v: &Verification) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Verification of migration {}:", v.migration);
    for m in &v.mailboxes {
        let sum = |f: fn(&FolderCheck) -> u64| m.folders.iter().map(f).sum::<u64>();
        if let Some(e) = &m.error {
            let _ = writeln!(out, "\n{}: NOT VERIFIED: {e}", m.mailbox);
            continue;
        }
        let _ = writeln!(
            out,
            "\n{}: {} {} expected messages, {} missing, {} duplicated, {} extra, {} changed by the target server",
            m.mailbox,
            if m.ok() { "OK," } else { "PROBLEMS," },
            sum(|f| f.expected),
            sum(|f| f.missing),
            sum(|f| f.duplicated),
            sum(|f| f.extra),
            sum(|f| f.transformed.len() as u64),
        );
        let w = m
            .folders
            .iter()
            .map(|f| f.target.chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            out,
            "  {:w$}  {:>8}  {:>8}  {:>8}  {:>10}  {:>6}  FROM",
            "TARGET", "SOURCE", "FOUND", "MISSING", "DUPLICATED", "EXTRA"
        );
        for f in &m.folders {
            let _ = writeln!(
                out,
                "  {:w$}  {:>8}  {:>8}  {:>8}  {:>10}  {:>6}  {}",
                f.target,
                f.expected,
                f.found,
                f.missing,
                f.duplicated,
                f.extra,
                f.sources.join(", ")
            );
        }
        for f in &m.folders {
            if f.unsubscribed {
                let _ = writeln!(
                    out,
                    "  not subscribed in {:?}: the source has it subscribed (clients that show subscribed folders only will not show it)",
                    f.target
                );
            }
            for t in &f.transformed {
                let _ = writeln!(
                    out,
                    "  changed by the target server in {:?}: {} {:?}: {}",
                    f.target,
                    t.message_id,
                    t.subject.as_deref().unwrap_or(""),
                    t.transformation
                );
            }
            for p in &f.problems {
                let _ = writeln!(
                    out,
                    "  {} in {:?}: {} {:?}{}",
                    p.kind,
                    f.target,
                    p.message_id,
                    p.subject.as_deref().unwrap_or(""),
                    p.source_folder
                        .as_deref()
                        .map(|s| format!(" (source folder {s:?})"))
                        .unwrap_or_default()
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, size: u32, folder: Option<&str>) -> Entry {
        Entry {
            key: (id.to_owned(), Some(size)),
            subject: Some(format!("s {id}")),
            folder: folder.map(str::to_owned),
            raw_folder: None,
            at: 0,
        }
    }

    #[test]
    fn compares_as_multisets() {
        let src = |id, size| entry(id, size, Some("INBOX"));
        let tgt = |id, size| entry(id, size, None);
        type Case<'a> = (Vec<Entry>, Vec<Entry>, (u64, u64, u64), &'a [&'a str]);
        let cases: Vec<Case<'_>> = vec![
            (
                vec![src("<a>", 1), src("<b>", 2)],
                vec![tgt("<b>", 2), tgt("<a>", 1)],
                (0, 0, 0),
                &[],
            ),
            // Two source messages share an id: both must be there.
            (
                vec![src("<a>", 1), src("<a>", 1)],
                vec![tgt("<a>", 1)],
                (1, 0, 0),
                &["missing <a>"],
            ),
            (
                vec![src("<a>", 1)],
                vec![tgt("<a>", 1), tgt("<a>", 1)],
                (0, 1, 0),
                &["duplicated <a>"],
            ),
            // The user's own message is extra; one with a source id but another size is a duplicate.
            (
                vec![src("<a>", 1)],
                vec![tgt("<a>", 1), tgt("<own>", 5)],
                (0, 0, 1),
                &[],
            ),
            (
                vec![src("<a>", 1)],
                vec![tgt("<a>", 1), tgt("<a>", 9)],
                (0, 1, 0),
                &["duplicated <a>"],
            ),
            (vec![src("<a>", 1)], vec![], (1, 0, 0), &["missing <a>"]),
        ];
        for (expected, found, (missing, duplicated, extra), problems) in cases {
            let g = Group {
                display: "INBOX".into(),
                sources: vec!["INBOX".into()],
                expected,
                subscribed: false,
            };
            let c = compare(g, &found);
            assert_eq!(
                (c.missing, c.duplicated, c.extra),
                (missing, duplicated, extra)
            );
            let got: Vec<String> = c
                .problems
                .iter()
                .map(|p| format!("{} {}", p.kind, p.message_id))
                .collect();
            assert_eq!(got, problems.to_vec());
        }
    }

    #[test]
    fn accepts_only_known_server_transformations() {
        let given = b"Subject: x\n\nbefore\0after\n";
        let repaired = b"Subject: x\r\n\r\nbefore\0after\r\n";
        let dovecot = b"Subject: x\r\n\r\nbefore\x80after\r\n";
        assert_eq!(
            transformation(given, given),
            Some("the same bytes (the servers count the size differently)")
        );
        assert_eq!(transformation(given, repaired), Some("bare LF made CRLF"));
        assert_eq!(
            transformation(given, dovecot),
            Some("bare LF made CRLF, NUL replaced")
        );
        assert_eq!(transformation(&repaired[..], dovecot), Some("NUL replaced"));
        // Any other change is not the server's: a byte changed, one missing, CRLF made LF.
        assert_eq!(transformation(b"abc\r\n", b"abd\r\n"), None);
        assert_eq!(transformation(b"abc\r\n", b"ab\r\n"), None);
        assert_eq!(transformation(&repaired[..], given), None);
        assert_eq!(transformation(b"a\0b", b"a\0c"), None);
    }

    #[test]
    fn unmatched_pairs_by_key_in_order() {
        let src = |id, size| entry(id, size, Some("INBOX"));
        let tgt = |id, size| entry(id, size, None);
        let expected = vec![src("<a>", 1), src("<a>", 1), src("<b>", 2), src("<c>", 3)];
        let found = vec![tgt("<b>", 2), tgt("<a>", 1), tgt("<c>", 4), tgt("<d>", 5)];
        assert_eq!(unmatched(&expected, &found), (vec![1, 3], vec![2, 3]));
    }

    #[test]
    fn lists_at_most_twenty_of_each() {
        let expected: Vec<Entry> = (0..30)
            .map(|i| entry(&format!("<{i}>"), 1, Some("INBOX")))
            .collect();
        let g = Group {
            expected,
            ..Group::default()
        };
        let c = compare(g, &[]);
        assert_eq!(c.missing, 30);
        assert_eq!(c.problems.len(), LISTED);
    }
}
