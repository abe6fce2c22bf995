//! Newtypes for the ids that flow between processes, so a UID is never mistaken for a
//! UIDVALIDITY and a mailbox key never for a migration id.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// One migration of one tenant; the same manifest always yields the same id, so a
    /// second `mailhaul migrate` is a delta pass over the same ledger.
    MigrationId
);
string_id!(
    /// One mailbox of a migration: the mailbox's e-mail address as the manifest names it.
    MailboxId
);
string_id!(
    /// One task (a folder, or a UID-range slice of one) of one pass.
    TaskId
);
string_id!(
    /// A short stable id for a source folder, derived from its raw (wire) name.
    FolderId
);

impl MigrationId {
    /// Derives a migration id from a tenant name: lowercase ASCII letters, digits and
    /// `-`; anything else becomes `-`. Stable, so re-running a manifest finds its ledger.
    pub fn from_tenant(tenant: &str) -> Self {
        let mut out = String::with_capacity(tenant.len());
        for c in tenant.chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        MigrationId(out.trim_matches('-').to_owned())
    }
}

impl FolderId {
    /// The folder id of a source folder: 12 hex digits of SHA-256 over the raw name.
    /// Short keeps ledger keys compact; 48 bits make a collision among one mailbox's
    /// folders vanishingly unlikely.
    pub fn of_raw_name(raw: &str) -> Self {
        let digest = Sha256::digest(raw.as_bytes());
        FolderId(hex::encode(&digest[..6]))
    }
}

/// An IMAP UID (RFC 3501 §2.3.1.1); never 0 for a real message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Uid(pub u32);

/// An IMAP UIDVALIDITY; a new value voids every UID the folder had before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UidValidity(pub u32);

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An inclusive range of UIDs, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidRange {
    /// Lowest UID in the range.
    pub first: Uid,
    /// Highest UID in the range (inclusive).
    pub last: Uid,
}

impl UidRange {
    /// Whether `uid` lies in the range.
    pub fn contains(&self, uid: Uid) -> bool {
        self.first <= uid && uid <= self.last
    }
}

impl fmt::Display for UidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.first, self.last)
    }
}

/// Renders UIDs as a short IMAP sequence set (`1:5,7,9:12`), as RFC 2683 §3.2.1.5 asks.
/// The input need not be sorted; duplicates are folded.
pub fn uid_set(uids: &[Uid]) -> String {
    let mut sorted: Vec<u32> = uids.iter().map(|u| u.0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// The most UIDs [`parse_uid_set`] expands.
pub const MAX_PARSED_UIDS: usize = 1 << 20;

/// Parses what [`uid_set`] writes (`1:5,7,9:12`; `a:b` in either order); `None` for
/// anything else, and for sets of more than [`MAX_PARSED_UIDS`] UIDs (a slice holds a
/// few thousand). The result is ascending without duplicates.
pub fn parse_uid_set(set: &str) -> Option<Vec<Uid>> {
    let mut out = Vec::new();
    for part in set.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        if (a.max(b) - a.min(b)) as usize >= MAX_PARSED_UIDS - out.len().min(MAX_PARSED_UIDS) {
            return None;
        }
        out.extend((a.min(b)..=a.max(b)).map(Uid));
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_parse_back() {
        let u = |v: &[u32]| v.iter().map(|&x| Uid(x)).collect::<Vec<_>>();
        for v in [&[][..], &[4], &[1, 2, 3, 5, 7, 8, 9], &[9, 10, 4000]] {
            assert_eq!(parse_uid_set(&uid_set(&u(v))), Some(u(v)), "{v:?}");
        }
        assert_eq!(parse_uid_set("5:3,4"), Some(u(&[3, 4, 5])));
        assert_eq!(parse_uid_set("1:x"), None);
        assert_eq!(parse_uid_set("*"), None);
        assert_eq!(parse_uid_set("1:4000000000"), None, "bounded");
    }

    #[test]
    fn migration_id_from_tenant() {
        for (tenant, id) in [
            ("Contoso", "contoso"),
            ("Contoso Ltd.", "contoso-ltd"),
            ("  ACME / EU  ", "acme-eu"),
            ("Müller GmbH", "m-ller-gmbh"),
        ] {
            assert_eq!(MigrationId::from_tenant(tenant).0, id, "{tenant}");
        }
    }

    #[test]
    fn uid_sets_are_short() {
        let u = |v: &[u32]| v.iter().map(|&x| Uid(x)).collect::<Vec<_>>();
        assert_eq!(uid_set(&u(&[1, 2, 3, 5, 7, 8, 9])), "1:3,5,7:9");
        assert_eq!(uid_set(&u(&[9, 1, 1, 2])), "1:2,9");
        assert_eq!(uid_set(&u(&[])), "");
        assert_eq!(uid_set(&u(&[4])), "4");
    }

    #[test]
    fn folder_ids_are_stable_and_short() {
        let a = FolderId::of_raw_name("INBOX");
        assert_eq!(a, FolderId::of_raw_name("INBOX"));
        assert_ne!(a, FolderId::of_raw_name("Inbox"));
        assert_eq!(a.0.len(), 12);
    }
}
