//! The lists, tables and properties layer of MS-PST (§2.3) over [`super::ndb`]: the heap
//! on a node, the B-tree on a heap, property contexts (an object's properties) and table
//! contexts (hierarchy, contents, recipient and attachment tables).
//!
//! Values come out as [`Value`]s with their bytes as stored; strings are decoded later,
//! when the item's code page is known ([`super::value`]).

use super::PstError;
use super::ndb::{Ndb, Node, le16, le32};
use super::value::Value;
use std::collections::BTreeMap;
use std::io::{Read, Seek};

/// `bClientSig` values (§2.3.1.2).
const SIG_HEAP: u8 = 0xEC;
const CLIENT_TC: u8 = 0x7C;
const CLIENT_BTH: u8 = 0xB5;
const CLIENT_PC: u8 = 0xBC;

/// One record of a B-tree on heap: key and data bytes.
type Record = (Vec<u8>, Vec<u8>);

/// A heap on node: its data blocks, each a heap page.
pub(crate) struct Heap {
    blocks: Vec<Vec<u8>>,
    /// `hidUserRoot`.
    root: u32,
    /// `bClientSig`.
    client: u8,
}

impl Heap {
    /// Reads the heap stored in the data tree `bid`.
    ///
    /// # Errors
    /// Not a heap; I/O.
    pub(crate) fn read<R: Read + Seek>(ndb: &mut Ndb<R>, bid: u64) -> Result<Heap, PstError> {
        let blocks = ndb.data_blocks(bid)?;
        let first = blocks
            .first()
            .ok_or_else(|| PstError::corrupt("empty heap".into()))?;
        if first.get(2) != Some(&SIG_HEAP) {
            return Err(PstError::corrupt("node data is not a heap".into()));
        }
        let client = first[3];
        let root = le32(first, 4)?;
        Ok(Heap {
            blocks,
            root,
            client,
        })
    }

    /// The allocation `hid` (§2.3.1.1); an empty slice for HID 0.
    pub(crate) fn get(&self, hid: u32) -> Result<&[u8], PstError> {
        if hid == 0 {
            return Ok(&[]);
        }
        let index = ((hid >> 5) & 0x7FF) as usize;
        let block = (hid >> 16) as usize;
        let b = self
            .blocks
            .get(block)
            .ok_or_else(|| PstError::corrupt(format!("heap id {hid:#x} names a missing block")))?;
        let map = usize::from(le16(b, 0)?);
        let count = usize::from(le16(b, map)?);
        if index == 0 || index > count {
            return Err(PstError::corrupt(format!(
                "heap id {hid:#x} is out of range"
            )));
        }
        let start = usize::from(le16(b, map + 4 + (index - 1) * 2)?);
        let end = usize::from(le16(b, map + 4 + index * 2)?);
        b.get(start..end)
            .ok_or_else(|| PstError::corrupt(format!("heap id {hid:#x} points outside its block")))
    }

    /// The records of the B-tree on heap whose header is at `hid`: (key, data) pairs.
    pub(crate) fn bth(&self, hid: u32) -> Result<Vec<Record>, PstError> {
        let h = self.get(hid)?;
        if h.len() < 8 || h[0] != CLIENT_BTH {
            return Err(PstError::corrupt("missing b-tree on heap header".into()));
        }
        let (key, data, levels) = (usize::from(h[1]), usize::from(h[2]), h[3]);
        let root = le32(h, 4)?;
        let mut out = Vec::new();
        self.bth_level(root, key, data, levels, &mut out, 0)?;
        Ok(out)
    }

    fn bth_level(
        &self,
        hid: u32,
        key: usize,
        data: usize,
        level: u8,
        out: &mut Vec<Record>,
        depth: usize,
    ) -> Result<(), PstError> {
        if hid == 0 {
            return Ok(());
        }
        if depth > 8 || key == 0 {
            return Err(PstError::corrupt("malformed b-tree on heap".into()));
        }
        let records = self.get(hid)?;
        if level == 0 {
            for r in records.chunks_exact(key + data) {
                out.push((r[..key].to_vec(), r[key..].to_vec()));
            }
        } else {
            for r in records.chunks_exact(key + 4) {
                self.bth_level(le32(r, key)?, key, data, level - 1, out, depth + 1)?;
            }
        }
        Ok(())
    }
}

/// Sub-nodes of an object, by NID, where values too big for the heap live.
pub(crate) type SubNodes = BTreeMap<u32, Node>;

/// Reads the bytes of an HNID: a heap allocation, or a sub-node's data.
fn hnid<R: Read + Seek>(
    ndb: &mut Ndb<R>,
    heap: &Heap,
    subs: &SubNodes,
    id: u32,
) -> Result<Vec<u8>, PstError> {
    if id & 0x1F == 0 {
        return Ok(heap.get(id)?.to_vec());
    }
    let node = subs
        .get(&id)
        .ok_or_else(|| PstError::corrupt(format!("value sub-node {id:#x} is missing")))?;
    ndb.data(node.data)
}

/// Whether a value of `ptype` is stored inline in 4 bytes (PC) or in its column (TC).
fn fixed_size(ptype: u16) -> Option<usize> {
    match ptype {
        0x0002 => Some(2),
        0x0003 | 0x0004 | 0x000A => Some(4),
        0x000B => Some(1),
        0x0005 | 0x0006 | 0x0007 | 0x0014 | 0x0040 => Some(8),
        _ => None,
    }
}

/// A property context's properties (§2.3.3): tag id -> value; with `only`, just those
/// (big values in sub-nodes are then not read).
///
/// # Errors
/// A heap that is not a property context; I/O.
pub(crate) fn properties<R: Read + Seek>(
    ndb: &mut Ndb<R>,
    node: &Node,
    subs: &SubNodes,
    only: Option<&[u16]>,
) -> Result<BTreeMap<u16, Value>, PstError> {
    let heap = Heap::read(ndb, node.data)?;
    if heap.client != CLIENT_PC {
        return Err(PstError::corrupt("node is not a property context".into()));
    }
    let mut out = BTreeMap::new();
    for (k, d) in heap.bth(heap.root)? {
        let id = le16(&k, 0)?;
        if only.is_some_and(|ids| !ids.contains(&id)) {
            continue;
        }
        let ptype = le16(&d, 0)?;
        let raw = le32(&d, 2)?;
        let bytes = match fixed_size(ptype) {
            Some(n) if n <= 4 => raw.to_le_bytes()[..n].to_vec(),
            _ => hnid(ndb, &heap, subs, raw)?,
        };
        out.insert(id, Value::decode(ptype, &bytes)?);
    }
    Ok(out)
}

/// One row of a table: its row id and its values by property id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    /// `dwRowID`: for hierarchy and contents tables the child's NID, for attachment
    /// tables the attachment sub-node's NID.
    pub(crate) id: u32,
    /// The row's values.
    pub(crate) values: BTreeMap<u16, Value>,
}

/// A table context's rows (§2.3.4), in row order; `node` is the table's node (a
/// message's recipient table is a sub-node with sub-nodes of its own).
///
/// # Errors
/// A heap that is not a table context; I/O.
pub(crate) fn table<R: Read + Seek>(ndb: &mut Ndb<R>, node: &Node) -> Result<Vec<Row>, PstError> {
    // Values and the row matrix live in the table node's own sub-nodes.
    let subs = &sub_nodes(ndb, node)?;
    let heap = Heap::read(ndb, node.data)?;
    if heap.client != CLIENT_TC {
        return Err(PstError::corrupt("node is not a table context".into()));
    }
    let info = heap.get(heap.root)?.to_vec();
    if info.len() < 22 {
        return Err(PstError::corrupt("short table header".into()));
    }
    let columns = usize::from(info[1]);
    let bitmap_at = usize::from(le16(&info, 6)?);
    let row_size = usize::from(le16(&info, 8)?);
    let row_index = le32(&info, 10)?;
    let rows_id = le32(&info, 14)?;
    let mut cols = Vec::with_capacity(columns);
    for c in 0..columns {
        let at = 22 + c * 8;
        let tag = le32(&info, at)?;
        cols.push((
            (tag >> 16) as u16,
            tag as u16,
            usize::from(le16(&info, at + 4)?),
            usize::from(*info.get(at + 6).unwrap_or(&0)),
            usize::from(*info.get(at + 7).unwrap_or(&0)),
        ));
    }
    let count = heap.bth(row_index)?.len();
    if count == 0 || row_size == 0 {
        return Ok(Vec::new());
    }
    // The row matrix: in the heap when small, else in a sub-node whose blocks each hold
    // whole rows (§2.3.4.4).
    let blocks: Vec<Vec<u8>> = if rows_id & 0x1F == 0 {
        vec![heap.get(rows_id)?.to_vec()]
    } else {
        let node = subs
            .get(&rows_id)
            .ok_or_else(|| PstError::corrupt(format!("row matrix {rows_id:#x} is missing")))?;
        ndb.data_blocks(node.data)?
    };
    let mut out = Vec::with_capacity(count);
    for b in &blocks {
        for raw in b.chunks_exact(row_size) {
            if out.len() == count {
                break;
            }
            let mut row = Row {
                id: le32(raw, 0)?,
                ..Row::default()
            };
            for &(id, ptype, offset, size, bit) in &cols {
                let present = raw
                    .get(bitmap_at + bit / 8)
                    .is_some_and(|b| b & (0x80 >> (bit % 8)) != 0);
                if !present {
                    continue;
                }
                let cell = raw
                    .get(offset..offset + size)
                    .ok_or_else(|| PstError::corrupt("table cell outside its row".into()))?;
                let bytes = match fixed_size(ptype) {
                    Some(n) if n <= size => cell[..n].to_vec(),
                    _ => match le32(cell, 0)? {
                        0 => Vec::new(),
                        id => hnid(ndb, &heap, subs, id)?,
                    },
                };
                row.values.insert(id, Value::decode(ptype, &bytes)?);
            }
            out.push(row);
        }
    }
    Ok(out)
}

/// The sub-nodes of `node` by NID.
///
/// # Errors
/// As [`Ndb::sub_nodes`].
pub(crate) fn sub_nodes<R: Read + Seek>(
    ndb: &mut Ndb<R>,
    node: &Node,
) -> Result<SubNodes, PstError> {
    Ok(ndb
        .sub_nodes(node.sub)?
        .into_iter()
        .map(|n| (n.nid, n))
        .collect())
}
