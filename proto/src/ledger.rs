//! The ledger's key layout and record encoding (the storage lives in `mailhaul-ledger`).
//!
//! Every key of one mailbox shares the Redis Cluster hash tag `{<migration>/<mailbox>}`,
//! so the scripts that touch several of them stay on one slot. Keys are compact because
//! the ledger must hold ~100 M messages in a few GB:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<ns>:migs` | set | migration ids |
//! | `<ns>:mig:<mig>` | hash | tenant, ledger epoch, pass counter, per-pass task totals, rebuild mark |
//! | `<ns>:mig:<mig>:done:<pass>` | set | task ids finished (copied or failed) in a pass |
//! | `<ns>:mig:<mig>:failed:<pass>` | hash | task id -> reason, for tasks that gave up |
//! | `<ns>:mig:<mig>:mbx` | list | mailbox ids in manifest order |
//! | `<tag>:st` | hash | per-mailbox counters (cumulative and per pass), the ledger epoch |
//! | `<tag>:d:<pass>` | set | the mailbox's task ids finished in a pass |
//! | `<tag>:f:<fid>` | hash | folder meta: current UIDVALIDITY, voided ones, names, last counts |
//! | `<tag>:fl` | set | the mailbox's folder ids |
//! | `<tag>:r:<fid>:<uv>:<bucket>` | hash | UID -> record, 128 UIDs per bucket (listpack) |
//! | `<tag>:b:<fid>:<uv>` | set | buckets in use, to enumerate a folder's records |
//! | `<tag>:p:<fid>:<uv>` | set | UIDs in flight (about to be appended) |
//! | `<tag>:x:<fid>:<uv>` | hash | UID -> `<pass>|<reason>`, messages that failed |
//! | `<tag>:c:<fid>` | set | target UIDs claimed by recovery or re-matching |
//! | `<tag>:cb:<fid>` | hash | target UID -> the lease token that claimed it |
//! | `<tag>:u:<fid>` | hash | POP3 UIDL -> the numeric id that stands in for a UID |
//! | `<tag>:l:<task>` | string | the slice lease: fencing token, with a TTL |
//! | `<tag>:lo:<task>` | string | the last token that took the lease (outlives it a day) |
//! | `<ns>:fence` | counter | fencing tokens |
//! | `<ns>:{perm/<host>/<user>}` | zset | connection permits: token -> expiry (ms) |

use crate::ids::{FolderId, MailboxId, MigrationId, TaskId, Uid, UidValidity};
use std::fmt;

/// UIDs per record bucket. Redis keeps a hash as a compact listpack up to 128 entries
/// (`hash-max-listpack-entries`), so a bucket of 128 costs ~30 bytes per message instead
/// of ~100 for a hashtable entry.
pub const BUCKET_UIDS: u32 = 128;

/// The bucket that holds a UID's record.
pub fn bucket_of(uid: Uid) -> u32 {
    uid.0 / BUCKET_UIDS
}

/// Builds ledger keys under one namespace (tests use a unique one each).
#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
}

impl Keys {
    /// Keys under namespace `ns` (e.g. `mailhaul`).
    pub fn new(ns: impl Into<String>) -> Self {
        Keys { ns: ns.into() }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Set of all migration ids.
    pub fn migrations(&self) -> String {
        format!("{}:migs", self.ns)
    }

    /// A migration's registry hash.
    pub fn migration(&self, mig: &MigrationId) -> String {
        format!("{}:mig:{mig}", self.ns)
    }

    /// Task ids finished in a pass.
    pub fn done_tasks(&self, mig: &MigrationId, pass: u32) -> String {
        format!("{}:mig:{mig}:done:{pass}", self.ns)
    }

    /// Task id -> reason, for tasks that gave up in a pass.
    pub fn failed_tasks(&self, mig: &MigrationId, pass: u32) -> String {
        format!("{}:mig:{mig}:failed:{pass}", self.ns)
    }

    /// Mailbox ids of a migration, in manifest order.
    pub fn mailboxes(&self, mig: &MigrationId) -> String {
        format!("{}:mig:{mig}:mbx", self.ns)
    }

    /// The fencing-token counter.
    pub fn fence(&self) -> String {
        format!("{}:fence", self.ns)
    }

    /// Connection permits for one login on one server.
    pub fn permits(&self, server: &str, user: &str) -> String {
        format!("{}:{{perm/{server}/{user}}}", self.ns)
    }

    /// Keys of one mailbox (all on one cluster slot).
    pub fn mailbox(&self, mig: &MigrationId, mbx: &MailboxId) -> MailboxKeys {
        MailboxKeys {
            tag: format!("{}:{{{mig}/{mbx}}}", self.ns),
        }
    }
}

/// Keys of one mailbox, sharing its hash tag.
#[derive(Debug, Clone)]
pub struct MailboxKeys {
    tag: String,
}

impl MailboxKeys {
    /// Per-mailbox counters.
    pub fn stats(&self) -> String {
        format!("{}:st", self.tag)
    }
    /// The mailbox's folder ids.
    pub fn folders(&self) -> String {
        format!("{}:fl", self.tag)
    }
    /// Folder meta.
    pub fn folder(&self, fid: &FolderId) -> String {
        format!("{}:f:{fid}", self.tag)
    }
    /// One bucket of message records.
    pub fn records(&self, fid: &FolderId, uv: UidValidity, bucket: u32) -> String {
        format!("{}:r:{fid}:{uv}:{bucket}", self.tag)
    }
    /// The set of buckets in use for a folder epoch.
    pub fn buckets(&self, fid: &FolderId, uv: UidValidity) -> String {
        format!("{}:b:{fid}:{uv}", self.tag)
    }
    /// UIDs in flight.
    pub fn pending(&self, fid: &FolderId, uv: UidValidity) -> String {
        format!("{}:p:{fid}:{uv}", self.tag)
    }
    /// Messages that failed permanently.
    pub fn failures(&self, fid: &FolderId, uv: UidValidity) -> String {
        format!("{}:x:{fid}:{uv}", self.tag)
    }
    /// Target UIDs claimed by recovery or re-matching.
    pub fn claimed(&self, fid: &FolderId) -> String {
        format!("{}:c:{fid}", self.tag)
    }
    /// POP3 UIDLs and the ids assigned to them.
    pub fn uidl_ids(&self, fid: &FolderId) -> String {
        format!("{}:u:{fid}", self.tag)
    }
    /// A slice's lease.
    pub fn lease(&self, task: &TaskId) -> String {
        format!("{}:l:{task}", self.tag)
    }
    /// The last fencing token that took a slice's lease: it tells a lease that merely
    /// expired (nobody took it since) from one a newer worker took.
    pub fn lease_owner(&self, task: &TaskId) -> String {
        format!("{}:lo:{task}", self.tag)
    }
    /// Which lease token claimed which target copy (so a claim retried after a lost
    /// reply is recognised as the caller's own).
    pub fn claimers(&self, fid: &FolderId) -> String {
        format!("{}:cb:{fid}", self.tag)
    }
    /// The mailbox's task ids finished in a pass.
    pub fn done(&self, pass: u32) -> String {
        format!("{}:d:{pass}", self.tag)
    }
}

/// Where a message landed on the target: an IMAP UID (from APPENDUID) or an Exchange
/// item id (Graph id, EWS ItemId).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetRef {
    /// The UID of the copy in the target folder.
    Uid(Uid),
    /// The Graph (immutable) id or EWS ItemId of the copy.
    Item(String),
}

impl TargetRef {
    /// Compact text form: the UID in decimal, or `@` and the item id.
    pub fn encode(&self) -> String {
        match self {
            TargetRef::Uid(u) => u.0.to_string(),
            TargetRef::Item(id) => format!("@{id}"),
        }
    }

    /// Parses [`TargetRef::encode`]'s form.
    pub fn decode(s: &str) -> Option<TargetRef> {
        match s.strip_prefix('@') {
            Some(id) if !id.is_empty() => Some(TargetRef::Item(id.to_owned())),
            Some(_) => None,
            None => Some(TargetRef::Uid(Uid(s.parse().ok()?))),
        }
    }

    /// The UID, for IMAP targets.
    pub fn uid(&self) -> Option<Uid> {
        match self {
            TargetRef::Uid(u) => Some(*u),
            TargetRef::Item(_) => None,
        }
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetRef::Uid(u) => write!(f, "uid {}", u.0),
            TargetRef::Item(id) => write!(f, "item {id}"),
        }
    }
}

/// What the ledger keeps for one migrated message: where it went, what it was, and for
/// Exchange targets how it got there.
///
/// Size: ~20 bytes for an IMAP target; an Exchange item id adds its length (Graph
/// immutable ids are about 150 characters), as DESIGN.md asks the id to be kept, and
/// the [`Delivery`] 2 to 6 more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The copy on the target.
    pub target: TargetRef,
    /// First 8 bytes of the SHA-256 of the message bytes.
    pub hash: u64,
    /// The upload path and what it could not keep (Exchange targets; `None` for IMAP
    /// targets, whose only path is APPEND, and for records of older builds).
    pub delivery: Option<Delivery>,
}

impl Record {
    /// Compact text form `<target>:<hash hex>[:<delivery>]`.
    pub fn encode(&self) -> String {
        match self.delivery {
            Some(d) => format!("{}:{:016x}:{}", self.target.encode(), self.hash, d.encode()),
            None => format!("{}:{:016x}", self.target.encode(), self.hash),
        }
    }

    /// Parses [`Record::encode`]'s form; `None` if it is not one.
    pub fn decode(s: &str) -> Option<Record> {
        // Item ids never hold ':' (base64). The hash is 16 hex digits; a delivery code
        // is never that long, so a last field of another length is one.
        let (rest, last) = s.rsplit_once(':')?;
        let (target, hash, delivery) = if last.len() == 16 {
            (rest, last, None)
        } else {
            let (target, hash) = rest.rsplit_once(':')?;
            (target, hash, Some(Delivery::decode(last)?))
        };
        if hash.len() != 16 {
            return None;
        }
        Some(Record {
            target: TargetRef::decode(target)?,
            hash: u64::from_str_radix(hash, 16).ok()?,
            delivery,
        })
    }
}

/// The way a message was put on an Exchange target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UploadPath {
    /// Graph v1.0 JSON create: the message rebuilt from its MIME.
    GraphJson,
    /// Graph beta `importMime`: the MIME as given.
    GraphImportMime,
    /// EWS `CreateItem` with `MimeContent`: the MIME as given.
    EwsMime,
}

impl UploadPath {
    /// Every path, in report order.
    pub const ALL: [UploadPath; 3] = [
        UploadPath::GraphJson,
        UploadPath::GraphImportMime,
        UploadPath::EwsMime,
    ];

    fn code(self) -> char {
        match self {
            UploadPath::GraphJson => 'j',
            UploadPath::GraphImportMime => 'm',
            UploadPath::EwsMime => 'e',
        }
    }

    /// The name users read (`graph-json`, `graph-import-mime`, `ews-mime`).
    pub fn name(self) -> &'static str {
        match self {
            UploadPath::GraphJson => "graph-json",
            UploadPath::GraphImportMime => "graph-import-mime",
            UploadPath::EwsMime => "ews-mime",
        }
    }

    /// What the path keeps and loses for every message, whatever its shape.
    pub fn keeps(self) -> &'static str {
        match self {
            UploadPath::GraphJson => {
                "received date, read/flag/categories, replied/forwarded, drafts editable,                  every body part, attachments, threading headers; not the raw MIME (other                  headers are kept as text in the transport headers, X- headers only if listed)"
            }
            UploadPath::GraphImportMime => {
                "the MIME as given, read/flag/categories, replied/forwarded; not the received                  date (Exchange sets the import time), and drafts become received items"
            }
            UploadPath::EwsMime => {
                "the MIME as given, received date, read/flag/categories, replied/forwarded,                  drafts editable"
            }
        }
    }
}

impl fmt::Display for UploadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one message lost on its upload path: what its shape or conversion lost beyond
/// what the path keeps ([`UploadPath::keeps`]), and [`Lost::RECEIVED`], which importMime
/// loses for every message; bits, so a record stays a few bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lost(pub u16);

impl Lost {
    /// Nothing.
    pub const NONE: Lost = Lost(0);
    /// An S/MIME or PGP signature that no longer verifies (the content is kept; the
    /// signature rides as an attachment).
    pub const SIGNATURE: Lost = Lost(1 << 0);
    /// Encrypted or opaque-signed content that Outlook cannot open: only the
    /// `smime.p7m` attachment is kept.
    pub const ENCRYPTED: Lost = Lost(1 << 1);
    /// A meeting request, update, reply or cancellation that is a plain message with an
    /// `.ics` attachment: no Accept/Decline, no calendar update.
    pub const MEETING: Lost = Lost(1 << 2);
    /// A TNEF (`winmail.dat`) message whose content stays packed in the attachment.
    pub const TNEF: Lost = Lost(1 << 3);
    /// A delivery or read report that is a plain message, not a report item.
    pub const REPORT: Lost = Lost(1 << 4);
    /// The raw MIME (headers beyond the mapped ones, the part tree): a message too big
    /// for importMime's 4 MB request went by JSON.
    pub const RAW_MIME: Lost = Lost(1 << 5);
    /// Addresses Exchange would refuse (or groups, which have no Exchange form) were
    /// left out; the rest were carried.
    pub const ADDRESSES: Lost = Lost(1 << 6);
    /// A draft that is no longer editable (importMime makes received items).
    pub const DRAFT: Lost = Lost(1 << 7);
    /// The received date: importMime stamps the import time and offers no way to set it
    /// (research/exchange-fidelity.md §3). A loss of the path itself, recorded on every
    /// message it carries so that `report` names each one.
    pub const RECEIVED: Lost = Lost(1 << 8);
    /// Every bit with the words [`Lost::describe`] uses.
    pub const ALL: [(Lost, &'static str); 9] = [
        (
            Lost::SIGNATURE,
            "the S/MIME signature (it no longer verifies)",
        ),
        (
            Lost::ENCRYPTED,
            "the encrypted content (only the smime.p7m attachment is kept)",
        ),
        (
            Lost::MEETING,
            "the meeting request (a plain message with the .ics attached)",
        ),
        (Lost::TNEF, "the TNEF content (winmail.dat stays packed)"),
        (Lost::REPORT, "the delivery report form (a plain message)"),
        (
            Lost::RAW_MIME,
            "the raw MIME (too big for importMime, went by JSON)",
        ),
        (
            Lost::ADDRESSES,
            "addresses Exchange refuses (dropped; the others carried)",
        ),
        (
            Lost::DRAFT,
            "the draft state (importMime makes a received item)",
        ),
        (
            Lost::RECEIVED,
            "the received date (importMime stamps the import time)",
        ),
    ];

    /// Whether nothing was lost.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Lost) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// What was lost, in words, `; `-joined.
    pub fn describe(self) -> String {
        Lost::ALL
            .iter()
            .filter(|(bit, _)| self.contains(*bit))
            .map(|(_, words)| *words)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl std::ops::BitOr for Lost {
    type Output = Lost;
    fn bitor(self, rhs: Lost) -> Lost {
        Lost(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Lost {
    fn bitor_assign(&mut self, rhs: Lost) {
        self.0 |= rhs.0;
    }
}

/// How a message reached an Exchange target: the path and what it lost there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The upload path.
    pub path: UploadPath,
    /// What this message lost on it.
    pub lost: Lost,
}

impl Delivery {
    /// A path letter, then the lost bits in hex when there are any (`j`, `m`, `j4`).
    pub fn encode(self) -> String {
        if self.lost.is_empty() {
            self.path.code().to_string()
        } else {
            format!("{}{:x}", self.path.code(), self.lost.0)
        }
    }

    /// Parses [`Delivery::encode`]'s form.
    pub fn decode(s: &str) -> Option<Delivery> {
        let mut chars = s.chars();
        let code = chars.next()?;
        let path = UploadPath::ALL.into_iter().find(|p| p.code() == code)?;
        let bits = chars.as_str();
        let lost = if bits.is_empty() {
            Lost::NONE
        } else {
            Lost(u16::from_str_radix(bits, 16).ok()?)
        };
        Some(Delivery { path, lost })
    }
}

/// The content hash the ledger keys messages by: first 8 bytes of SHA-256, big-endian.
pub fn content_hash(body: &[u8]) -> u64 {
    let mut h = ContentHasher::default();
    h.update(body);
    h.finish()
}

/// [`content_hash`] over a body that arrives in pieces: the same value as hashing the
/// pieces joined.
#[derive(Debug, Clone, Default)]
pub struct ContentHasher(sha2::Sha256);

impl ContentHasher {
    /// Adds the next piece.
    pub fn update(&mut self, piece: &[u8]) {
        sha2::Digest::update(&mut self.0, piece);
    }

    /// The hash of everything added.
    pub fn finish(self) -> u64 {
        let d = self.digest();
        u64::from_be_bytes(d[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
    }

    /// The whole SHA-256 of everything added.
    pub fn digest(self) -> [u8; 32] {
        sha2::Digest::finalize(self.0).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_in_pieces_equals_hashing_whole() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for piece in [1, 7, 4096, 100_000] {
            let mut h = ContentHasher::default();
            body.chunks(piece).for_each(|c| h.update(c));
            assert_eq!(h.finish(), content_hash(&body), "pieces of {piece}");
        }
    }

    #[test]
    fn records_round_trip() {
        let r = Record {
            target: TargetRef::Uid(Uid(4711)),
            hash: 0xdead_beef_0000_0001,
            delivery: None,
        };
        assert_eq!(r.encode(), "4711:deadbeef00000001");
        assert_eq!(Record::decode(&r.encode()), Some(r));
        let r = Record {
            target: TargetRef::Item("AAMkAD-x_y=".into()),
            hash: 7,
            delivery: None,
        };
        assert_eq!(r.encode(), "@AAMkAD-x_y=:0000000000000007");
        assert_eq!(Record::decode(&r.encode()), Some(r));
        for (delivery, code) in [
            (UploadPath::GraphJson, Lost::NONE, "j"),
            (UploadPath::GraphImportMime, Lost::NONE, "m"),
            (UploadPath::EwsMime, Lost::NONE, "e"),
            (
                UploadPath::GraphJson,
                Lost::MEETING | Lost::ADDRESSES,
                "j44",
            ),
            (UploadPath::GraphJson, Lost::DRAFT, "j80"),
        ]
        .map(|(path, lost, code)| (Delivery { path, lost }, code))
        {
            // EWS ids are standard base64: '/' and '+' in them must not confuse the parse.
            let r = Record {
                target: TargetRef::Item("AAMk/+Q=".into()),
                hash: 0xabc,
                delivery: Some(delivery),
            };
            assert_eq!(r.encode(), format!("@AAMk/+Q=:0000000000000abc:{code}"));
            assert_eq!(Record::decode(&r.encode()), Some(r));
        }
        assert_eq!(Record::decode("@A:0000000000000001:x"), None);
        assert_eq!(Record::decode("@A:0000000000000001:jzz"), None);
        assert_eq!(Record::decode("@A:01:j"), None);
        assert_eq!(Record::decode("@:1"), None);
        assert_eq!(Record::decode("x:1"), None);
        assert_eq!(Record::decode("12"), None);
    }

    #[test]
    fn mailbox_keys_share_one_hash_tag() {
        let k = Keys::new("mh").mailbox(&MigrationId("c".into()), &MailboxId("a@b".into()));
        let f = FolderId("f1".into());
        for key in [
            k.stats(),
            k.folder(&f),
            k.records(&f, UidValidity(3), 0),
            k.pending(&f, UidValidity(3)),
        ] {
            assert!(key.starts_with("mh:{c/a@b}:"), "{key}");
        }
    }

    #[test]
    fn buckets_hold_128_uids() {
        assert_eq!(bucket_of(Uid(0)), 0);
        assert_eq!(bucket_of(Uid(127)), 0);
        assert_eq!(bucket_of(Uid(128)), 1);
    }
}
