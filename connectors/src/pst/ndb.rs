//! The node database layer of MS-PST (§2.2): the header, the node and block B-trees,
//! blocks (decoded), data trees (XBLOCK/XXBLOCK) and sub-node trees (SLBLOCK/SIBLOCK),
//! for Unicode and ANSI files, over any `Read + Seek`.
//!
//! This is our own reading of the specification, used for what the `outlook-pst` crate
//! cannot read (a message node without a sub-node tree, attachments without
//! PidTagAttachMethod, attachments of embedded messages) and for walking the node
//! B-tree, which the crate does not expose. It reads; it never writes.
//!
//! Invariants: every offset and count read from the file is checked against what was
//! read, so a truncated or corrupt file gives an error, never a panic; recursion through
//! B-tree pages and data trees is bounded.

use super::PstError;
use super::crypt::Crypt;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

/// `NID_TYPE` values (§2.2.2.1) that matter here.
pub(crate) mod nid_type {
    /// A folder.
    pub(crate) const NORMAL_FOLDER: u32 = 0x02;
    /// A message in a folder's contents.
    pub(crate) const NORMAL_MESSAGE: u32 = 0x04;
}

/// Well-known NIDs (§2.4.1).
pub(crate) mod nid {
    /// The message store's property context.
    pub(crate) const MESSAGE_STORE: u32 = 0x21;
    /// The named property map.
    pub(crate) const NAME_TO_ID_MAP: u32 = 0x61;
    /// The root folder.
    pub(crate) const ROOT_FOLDER: u32 = 0x122;
    /// A message's recipient table (a sub-node).
    pub(crate) const RECIPIENT_TABLE: u32 = 0x692;
    /// A message's attachment table (a sub-node).
    pub(crate) const ATTACHMENT_TABLE: u32 = 0x671;
}

/// The size of a B-tree page.
const PAGE: usize = 512;
/// Bounds on nesting, against loops in corrupt files.
const MAX_DEPTH: usize = 16;
/// B-tree pages kept in memory (512 bytes each).
const PAGE_CACHE: usize = 4096;
/// `wMagicClient` of a PST (`SM`) and of an OST (`SO`), §2.2.2.6.
const MAGIC_PST: u16 = 0x4D53;
const MAGIC_OST: u16 = 0x4F53;

/// A node of the node B-tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    /// The node id.
    pub(crate) nid: u32,
    /// The data block (or data tree).
    pub(crate) data: u64,
    /// The sub-node tree, 0 when there is none.
    pub(crate) sub: u64,
    /// The parent (a message's folder).
    pub(crate) parent: u32,
}

/// The node database of one file.
pub(crate) struct Ndb<R> {
    r: R,
    /// Unicode (64-bit) or ANSI (32-bit) layout.
    pub(crate) unicode: bool,
    crypt: Crypt,
    nbt: u64,
    bbt: u64,
    len: u64,
    pages: HashMap<u64, Box<[u8; PAGE]>>,
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Result<u16, PstError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| PstError::corrupt(format!("read past a structure at offset {at}")))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Result<u32, PstError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| PstError::corrupt(format!("read past a structure at offset {at}")))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Result<u64, PstError> {
    b.get(at..at + 8)
        .map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
        .ok_or_else(|| PstError::corrupt(format!("read past a structure at offset {at}")))
}

pub(crate) use {u16_at as le16, u32_at as le32};

impl<R: Read + Seek> Ndb<R> {
    /// Reads the header of `r` and checks it is a PST.
    ///
    /// # Errors
    /// Not a PST (an OST is named as such), an unknown version or encoding, a file
    /// shorter than its header.
    pub(crate) fn open(mut r: R) -> Result<Self, PstError> {
        let len = r.seek(SeekFrom::End(0))?;
        if len == 0 {
            return Err(PstError::Empty);
        }
        let mut h = vec![0u8; 564];
        r.seek(SeekFrom::Start(0))?;
        let n = read_up_to(&mut r, &mut h)?;
        if n < 4 || &h[..4] != b"!BDN" {
            return Err(PstError::NotPst);
        }
        if n < 514 {
            return Err(PstError::Truncated { len });
        }
        let client = u16_at(&h, 8)?;
        if client == MAGIC_OST {
            return Err(PstError::Ost);
        }
        if client != MAGIC_PST {
            return Err(PstError::NotPst);
        }
        let version = u16_at(&h, 10)?;
        let unicode = match version {
            14 | 15 => false,
            23 => true,
            v => {
                return Err(PstError::corrupt(format!(
                    "unknown file format version {v}"
                )));
            }
        };
        // Header layouts: §2.2.2.6 (Unicode: ROOT at 180, bCryptMethod at 513; ANSI:
        // ROOT at 164, bCryptMethod at 461).
        let (nbt, bbt, crypt) = if unicode {
            (u64_at(&h, 224)?, u64_at(&h, 240)?, h[513])
        } else {
            (
                u64::from(u32_at(&h, 188)?),
                u64::from(u32_at(&h, 196)?),
                h[461],
            )
        };
        let crypt = Crypt::from_byte(crypt)
            .ok_or_else(|| PstError::corrupt(format!("unknown encoding {crypt}")))?;
        Ok(Ndb {
            r,
            unicode,
            crypt,
            nbt,
            bbt,
            len,
            pages: HashMap::new(),
        })
    }

    /// The file's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, at: u64, n: usize) -> Result<Vec<u8>, PstError> {
        if at.checked_add(n as u64).is_none_or(|end| end > self.len) {
            return Err(PstError::Truncated { len: self.len });
        }
        self.r.seek(SeekFrom::Start(at))?;
        let mut buf = vec![0u8; n];
        self.r.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn page(&mut self, at: u64) -> Result<&[u8; PAGE], PstError> {
        if !self.pages.contains_key(&at) {
            if self.pages.len() >= PAGE_CACHE {
                self.pages.clear();
            }
            let bytes = self.read_at(at, PAGE)?;
            let mut page = Box::new([0u8; PAGE]);
            page.copy_from_slice(&bytes);
            self.pages.insert(at, page);
        }
        Ok(self.pages.get(&at).expect("inserted above"))
    }

    /// (cEnt, cbEnt, cLevel) of a B-tree page.
    fn page_shape(&self, p: &[u8; PAGE]) -> (usize, usize, u8) {
        let at = if self.unicode { 488 } else { 496 };
        (usize::from(p[at]), usize::from(p[at + 2]), p[at + 3])
    }

    /// The leaf entry of the B-tree at `root` whose key is `key`.
    fn search(&mut self, root: u64, key: u64, mask: u64) -> Result<Option<Vec<u8>>, PstError> {
        let mut at = root;
        for _ in 0..MAX_DEPTH {
            let unicode = self.unicode;
            let page = *self.page(at)?;
            let (count, size, level) = self.page_shape(&page);
            let key_len = if unicode { 8 } else { 4 };
            if size == 0 || count * size > if unicode { 488 } else { 496 } {
                return Err(PstError::corrupt(format!(
                    "b-tree page at {at} is malformed"
                )));
            }
            let key_of = |i: usize| -> Result<u64, PstError> {
                if unicode {
                    u64_at(&page, i * size)
                } else {
                    u32_at(&page, i * size).map(u64::from)
                }
            };
            if level == 0 {
                for i in 0..count {
                    if key_of(i)? & mask == key & mask {
                        return Ok(Some(page[i * size..(i + 1) * size].to_vec()));
                    }
                }
                return Ok(None);
            }
            let mut next = None;
            for i in 0..count {
                if key_of(i)? & mask <= key & mask {
                    // BTENTRY: btkey, then BREF (bid, ib).
                    next = Some(if unicode {
                        u64_at(&page, i * size + key_len + 8)?
                    } else {
                        u64::from(u32_at(&page, i * size + key_len + 4)?)
                    });
                } else {
                    break;
                }
            }
            match next {
                Some(n) => at = n,
                None => return Ok(None),
            }
        }
        Err(PstError::corrupt("b-tree deeper than any real file".into()))
    }

    fn node_of(&self, e: &[u8]) -> Result<Node, PstError> {
        Ok(if self.unicode {
            Node {
                nid: u64_at(e, 0)? as u32,
                data: u64_at(e, 8)?,
                sub: u64_at(e, 16)?,
                parent: u32_at(e, 24)?,
            }
        } else {
            Node {
                nid: u32_at(e, 0)?,
                data: u64::from(u32_at(e, 4)?),
                sub: u64::from(u32_at(e, 8)?),
                parent: u32_at(e, 12)?,
            }
        })
    }

    /// The node `nid`, if the file has it.
    ///
    /// # Errors
    /// I/O, truncation, corrupt pages.
    pub(crate) fn node(&mut self, nid: u32) -> Result<Option<Node>, PstError> {
        let root = self.nbt;
        match self.search(root, u64::from(nid), u64::from(u32::MAX))? {
            Some(e) => self.node_of(&e).map(Some),
            None => Ok(None),
        }
    }

    /// Every node of the node B-tree, in NID order.
    ///
    /// # Errors
    /// I/O, truncation, corrupt pages.
    pub(crate) fn nodes(&mut self) -> Result<Vec<Node>, PstError> {
        let mut out = Vec::new();
        let mut stack = vec![(self.nbt, 0usize)];
        while let Some((at, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(PstError::corrupt(
                    "node b-tree deeper than any real file".into(),
                ));
            }
            let page = *self.page(at)?;
            let (count, size, level) = self.page_shape(&page);
            if size == 0 || count * size > PAGE - 24 {
                return Err(PstError::corrupt(format!(
                    "b-tree page at {at} is malformed"
                )));
            }
            if level == 0 {
                for i in 0..count {
                    out.push(self.node_of(&page[i * size..(i + 1) * size])?);
                }
            } else {
                // Children pushed in reverse so they are visited in key order.
                for i in (0..count).rev() {
                    let child = if self.unicode {
                        u64_at(&page, i * size + 16)?
                    } else {
                        u64::from(u32_at(&page, i * size + 8)?)
                    };
                    stack.push((child, depth + 1));
                }
            }
        }
        Ok(out)
    }

    /// The bytes of block `bid`, decoded when it is an external block.
    ///
    /// # Errors
    /// A block the block B-tree does not know; I/O, truncation.
    pub(crate) fn block(&mut self, bid: u64) -> Result<Vec<u8>, PstError> {
        let root = self.bbt;
        // The lowest bit of a BID is reserved and ignored in lookups (§2.2.2.2).
        let e = self
            .search(root, bid, !1)?
            .ok_or_else(|| PstError::corrupt(format!("block {bid:#x} is missing")))?;
        let (ib, cb) = if self.unicode {
            (u64_at(&e, 8)?, u16_at(&e, 16)?)
        } else {
            (u64::from(u32_at(&e, 4)?), u16_at(&e, 8)?)
        };
        let mut data = self.read_at(ib, usize::from(cb))?;
        if bid & 2 == 0 {
            self.crypt.decode(bid, &mut data);
        }
        Ok(data)
    }

    /// The data blocks of the data tree at `bid`, in order (one entry for a plain
    /// block). Heaps need them apart: each is a heap page.
    ///
    /// # Errors
    /// As [`Ndb::block`]; a malformed XBLOCK.
    pub(crate) fn data_blocks(&mut self, bid: u64) -> Result<Vec<Vec<u8>>, PstError> {
        let mut out = Vec::new();
        self.collect_data(bid, 0, &mut out)?;
        Ok(out)
    }

    fn collect_data(
        &mut self,
        bid: u64,
        depth: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), PstError> {
        if depth > 2 {
            return Err(PstError::corrupt("data tree deeper than XXBLOCK".into()));
        }
        let block = self.block(bid)?;
        if bid & 2 == 0 {
            out.push(block);
            return Ok(());
        }
        if block.first() != Some(&1) {
            return Err(PstError::corrupt(format!(
                "block {bid:#x} is not a data tree (XBLOCK)"
            )));
        }
        let count = usize::from(u16_at(&block, 2)?);
        for i in 0..count {
            let child = if self.unicode {
                u64_at(&block, 8 + i * 8)?
            } else {
                u64::from(u32_at(&block, 8 + i * 4)?)
            };
            self.collect_data(child, depth + 1, out)?;
        }
        Ok(())
    }

    /// The whole data of the data tree at `bid`.
    ///
    /// # Errors
    /// As [`Ndb::data_blocks`].
    pub(crate) fn data(&mut self, bid: u64) -> Result<Vec<u8>, PstError> {
        Ok(self.data_blocks(bid)?.concat())
    }

    /// The entries of the sub-node tree at `bid` (empty for 0), as nodes whose parent
    /// is 0.
    ///
    /// # Errors
    /// As [`Ndb::block`]; a malformed SLBLOCK/SIBLOCK.
    pub(crate) fn sub_nodes(&mut self, bid: u64) -> Result<Vec<Node>, PstError> {
        let mut out = Vec::new();
        if bid != 0 {
            self.collect_sub(bid, 0, &mut out)?;
        }
        Ok(out)
    }

    fn collect_sub(&mut self, bid: u64, depth: usize, out: &mut Vec<Node>) -> Result<(), PstError> {
        if depth > MAX_DEPTH {
            return Err(PstError::corrupt(
                "sub-node tree deeper than any real file".into(),
            ));
        }
        let block = self.block(bid)?;
        if block.first() != Some(&2) {
            return Err(PstError::corrupt(format!(
                "block {bid:#x} is not a sub-node tree"
            )));
        }
        let level = block[1];
        let count = usize::from(u16_at(&block, 2)?);
        let (start, word) = if self.unicode { (8, 8) } else { (4, 4) };
        let read = |at: usize| -> Result<u64, PstError> {
            if word == 8 {
                u64_at(&block, at)
            } else {
                u32_at(&block, at).map(u64::from)
            }
        };
        for i in 0..count {
            if level == 0 {
                let at = start + i * 3 * word;
                out.push(Node {
                    nid: read(at)? as u32,
                    data: read(at + word)?,
                    sub: read(at + 2 * word)?,
                    parent: 0,
                });
            } else {
                let at = start + i * 2 * word;
                let child = read(at + word)?;
                self.collect_sub(child, depth + 1, out)?;
            }
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the reader ends; returns how much was read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
