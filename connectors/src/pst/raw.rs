//! Our own reading of a PST's messaging layer (MS-PST §2.4) over [`super::ndb`] and
//! [`super::ltp`]: the store, the folder tree under the IPM subtree, each folder's
//! messages, and whole items (properties, recipients, attachments, embedded messages,
//! recursively).
//!
//! Folders and their messages are found through the node B-tree (a message's parent is
//! its folder), as libpst's `readpst` does, so an item missing from a stale contents
//! table is still found. Items are read here when the `outlook-pst` crate fails on them
//! ([`super::krate`]): a message node without a sub-node tree (no recipient or
//! attachment table), an attachment without PidTagAttachMethod, the attachments of an
//! embedded message.

use super::PstError;
use super::ltp::{self, Row, SubNodes};
use super::ndb::{Ndb, Node, le16, le32, nid, nid_type};
use super::value::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek};

/// An object's properties by id.
pub type Props = BTreeMap<u16, Value>;

/// A message as stored: its properties, its recipient rows, its attachments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawItem {
    /// The message's properties.
    pub props: Props,
    /// One entry per recipient (a row of the recipient table).
    pub recipients: Vec<Props>,
    /// The attachments, in the attachment table's order.
    pub attachments: Vec<RawAttachment>,
}

/// One attachment: its properties and, for an embedded message, the message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawAttachment {
    /// The attachment object's properties.
    pub props: Props,
    /// The embedded message (PidTagAttachMethod 5, or a PidTagAttachDataObject).
    pub embedded: Option<Box<RawItem>>,
}

/// A folder under the IPM subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFolder {
    /// The folder's NID.
    pub nid: u32,
    /// Display names from below the IPM subtree root down to this folder (empty for the
    /// root itself).
    pub path: Vec<String>,
    /// PidTagContainerClass (`IPF.Note`, `IPF.Contact`, ...), when set.
    pub class: Option<String>,
    /// NIDs of its messages, ascending.
    pub messages: Vec<u32>,
}

/// Embedded messages nest; deeper than this is a corrupt file.
const MAX_NESTING: usize = 8;

/// PS_PUBLIC_STRINGS, {00020329-0000-0000-C000-000000000046}, as stored.
const PS_PUBLIC_STRINGS: [u8; 16] = [
    0x29, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46,
];

/// A PST opened with our own reader.
pub(crate) struct RawStore<R> {
    pub(crate) ndb: Ndb<R>,
    /// The message store's properties.
    pub(crate) store: Props,
    /// Message nodes by parent folder.
    children: HashMap<u32, Vec<Node>>,
    /// Folder nodes by NID.
    folders: BTreeMap<u32, Node>,
}

impl<R: Read + Seek> RawStore<R> {
    /// Opens the file and reads the store and the node B-tree.
    ///
    /// # Errors
    /// Not a PST, an OST, a truncated or corrupt file.
    pub(crate) fn open(r: R) -> Result<Self, PstError> {
        let mut ndb = Ndb::open(r)?;
        let node = ndb
            .node(nid::MESSAGE_STORE)?
            .ok_or_else(|| PstError::corrupt("no message store node".into()))?;
        let subs = ltp::sub_nodes(&mut ndb, &node)?;
        let store = ltp::properties(&mut ndb, &node, &subs, None)?;
        let mut children: HashMap<u32, Vec<Node>> = HashMap::new();
        let mut folders = BTreeMap::new();
        for n in ndb.nodes()? {
            match n.nid & 0x1F {
                nid_type::NORMAL_FOLDER => {
                    folders.insert(n.nid, n);
                }
                nid_type::NORMAL_MESSAGE => children.entry(n.parent).or_default().push(n),
                _ => {}
            }
        }
        for v in children.values_mut() {
            v.sort_by_key(|n| n.nid);
        }
        Ok(RawStore {
            ndb,
            store,
            children,
            folders,
        })
    }

    /// The store's record key (PidTagRecordKey): 16 bytes that identify the file.
    pub(crate) fn record_key(&self) -> Option<[u8; 16]> {
        let b = self.store.get(&0x0FF9)?.bytes()?;
        b.get(..16).and_then(|s| s.try_into().ok())
    }

    /// The NID of the IPM subtree root (from PidTagIpmSubTreeEntryId), else the root
    /// folder's.
    fn ipm_root(&self) -> u32 {
        self.store
            .get(&0x35E0)
            .and_then(Value::bytes)
            .and_then(|b| le32(b, 20).ok())
            .filter(|n| self.folders.contains_key(n))
            .unwrap_or(nid::ROOT_FOLDER)
    }

    /// Every folder below (and including) the IPM subtree root, parents first, each
    /// level in name order; a folder's own name comes from its property context.
    ///
    /// # Errors
    /// A folder whose properties cannot be read.
    pub(crate) fn folders(
        &mut self,
        cp: &'static encoding_rs::Encoding,
    ) -> Result<Vec<RawFolder>, PstError> {
        let root = self.ipm_root();
        let mut by_parent: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for n in self.folders.values() {
            if n.nid != n.parent {
                by_parent.entry(n.parent).or_default().push(n.nid);
            }
        }
        let mut out = Vec::new();
        let mut queue = vec![(root, Vec::<String>::new(), 0usize)];
        while let Some((folder, path, depth)) = queue.pop() {
            let Some(node) = self.folders.get(&folder).copied() else {
                continue;
            };
            let subs = ltp::sub_nodes(&mut self.ndb, &node)?;
            let props = ltp::properties(&mut self.ndb, &node, &subs, Some(&[0x3001, 0x3613]))?;
            let class = props.get(&0x3613).and_then(|v| v.text(cp));
            out.push(RawFolder {
                nid: folder,
                path: path.clone(),
                class,
                messages: self
                    .children
                    .get(&folder)
                    .map(|v| v.iter().map(|n| n.nid).collect())
                    .unwrap_or_default(),
            });
            if depth >= 64 {
                continue;
            }
            let mut kids = Vec::new();
            for child in by_parent.get(&folder).cloned().unwrap_or_default() {
                let Some(node) = self.folders.get(&child).copied() else {
                    continue;
                };
                let subs = ltp::sub_nodes(&mut self.ndb, &node)?;
                let props = ltp::properties(&mut self.ndb, &node, &subs, Some(&[0x3001]))?;
                let name = props
                    .get(&0x3001)
                    .and_then(|v| v.text(cp))
                    .unwrap_or_else(|| format!("Folder {child:#x}"));
                kids.push((name, child));
            }
            kids.sort();
            for (name, child) in kids.into_iter().rev() {
                let mut p = path.clone();
                p.push(name);
                queue.push((child, p, depth + 1));
            }
        }
        Ok(out)
    }

    /// The node of message `nid`.
    fn message_node(&mut self, nid: u32) -> Result<Node, PstError> {
        self.ndb
            .node(nid)?
            .ok_or_else(|| PstError::corrupt(format!("message {nid:#x} is not in the file")))
    }

    /// Some properties of message `nid` (class, size, ...), without its big values.
    ///
    /// # Errors
    /// An unreadable message.
    pub(crate) fn summary(&mut self, nid: u32, ids: &[u16]) -> Result<Props, PstError> {
        let node = self.message_node(nid)?;
        let subs = ltp::sub_nodes(&mut self.ndb, &node)?;
        ltp::properties(&mut self.ndb, &node, &subs, Some(ids))
    }

    /// Message `nid`, whole.
    ///
    /// # Errors
    /// An unreadable message.
    pub(crate) fn item(&mut self, nid: u32) -> Result<RawItem, PstError> {
        let node = self.message_node(nid)?;
        read_item(&mut self.ndb, &node, 0)
    }

    /// The property id that the named property (PS_PUBLIC_STRINGS, `name`) has in this
    /// file (§2.4.7), if any item uses it.
    ///
    /// # Errors
    /// An unreadable name-to-id map.
    pub(crate) fn named_string(&mut self, name: &str) -> Result<Option<u16>, PstError> {
        let Some(node) = self.ndb.node(nid::NAME_TO_ID_MAP)? else {
            return Ok(None);
        };
        let subs = ltp::sub_nodes(&mut self.ndb, &node)?;
        let map = ltp::properties(&mut self.ndb, &node, &subs, Some(&[0x0002, 0x0003, 0x0004]))?;
        let bytes = |id: u16| map.get(&id).and_then(Value::bytes).unwrap_or(&[]).to_vec();
        let (guids, entries, strings) = (bytes(0x0002), bytes(0x0003), bytes(0x0004));
        for e in entries.chunks_exact(8) {
            let key = le32(e, 0)?;
            let guid_n = le16(e, 4)?;
            let index = le16(e, 6)?;
            if guid_n & 1 == 0 {
                continue; // a numeric name
            }
            // wGuid 2 is PS_PUBLIC_STRINGS; from 3 on, an index into the GUID stream
            // (wGuid - 3): the crate's `lookup_guid` forgets the 3 and panics on ANSI
            // stores, so this is read here.
            let guid = match guid_n >> 1 {
                2 => PS_PUBLIC_STRINGS,
                g @ 3.. => {
                    let at = usize::from(g - 3) * 16;
                    match guids.get(at..at + 16).and_then(|s| s.try_into().ok()) {
                        Some(g) => g,
                        None => continue,
                    }
                }
                _ => continue,
            };
            if guid != PS_PUBLIC_STRINGS {
                continue;
            }
            let at = key as usize;
            let Some(len) = strings.get(at..at + 4).map(|s| le32(s, 0)) else {
                continue;
            };
            let len = len? as usize;
            let Some(s) = strings.get(at + 4..at + 4 + len) else {
                continue;
            };
            let units: Vec<u16> = s
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            if String::from_utf16_lossy(&units).eq_ignore_ascii_case(name) {
                return Ok(Some(0x8000 + index));
            }
        }
        Ok(None)
    }
}

/// Reads the message at `node` (a folder's message, or an embedded one).
pub(crate) fn read_item<R: Read + Seek>(
    ndb: &mut Ndb<R>,
    node: &Node,
    depth: usize,
) -> Result<RawItem, PstError> {
    if depth > MAX_NESTING {
        return Err(PstError::corrupt("embedded messages nest too deep".into()));
    }
    // A message without a sub-node tree simply has no recipient or attachment table.
    let subs = ltp::sub_nodes(ndb, node)?;
    let props = ltp::properties(ndb, node, &subs, None)?;
    let recipients = match subs.get(&nid::RECIPIENT_TABLE) {
        Some(t) => ltp::table(ndb, t)?.into_iter().map(|r| r.values).collect(),
        None => Vec::new(),
    };
    let mut attachments = Vec::new();
    if let Some(t) = subs.get(&nid::ATTACHMENT_TABLE) {
        for row in ltp::table(ndb, t)? {
            attachments.push(read_attachment(ndb, &subs, &row, depth)?);
        }
    }
    Ok(RawItem {
        props,
        recipients,
        attachments,
    })
}

fn read_attachment<R: Read + Seek>(
    ndb: &mut Ndb<R>,
    subs: &SubNodes,
    row: &Row,
    depth: usize,
) -> Result<RawAttachment, PstError> {
    let Some(node) = subs.get(&row.id) else {
        // No attachment object: what the table row says is all there is.
        return Ok(RawAttachment {
            props: row.values.clone(),
            embedded: None,
        });
    };
    let att_subs = ltp::sub_nodes(ndb, node)?;
    let mut props = ltp::properties(ndb, node, &att_subs, None)?;
    // The row may carry what the object lacks (e.g. PidTagAttachMethod).
    for (id, v) in &row.values {
        props.entry(*id).or_insert_with(|| v.clone());
    }
    let embedded = match props.get(&0x3701) {
        Some(Value::Object(nid, _)) => match att_subs.get(nid) {
            Some(n) => Some(Box::new(read_item(ndb, n, depth + 1)?)),
            None => None,
        },
        _ => None,
    };
    Ok(RawAttachment { props, embedded })
}
