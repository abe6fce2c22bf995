//! One open PST: a blocking thread that owns the readers (the `outlook-pst` crate's
//! types are `Rc`-based, not `Send`), and an async handle that sends it requests over a
//! channel. Dropping the last handle ends the thread.
//!
//! Each item is read on its own: an item that cannot be read (or that makes the crate
//! panic) is answered with its reason, and the others go on.

use super::item::{Item, Kind};
use super::krate::KrateStore;
use super::raw::{RawFolder, RawStore};
use super::{PstError, mime};
use encoding_rs::Encoding;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// What one file holds, for planning.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// The store's record key, hex (32 digits).
    pub record_key: String,
    /// Unicode (Outlook 2003+) or ANSI (Outlook 97-2002).
    pub unicode: bool,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the file, hex, when asked for.
    pub sha256: Option<String>,
    /// Folders under the IPM subtree, parents first.
    pub folders: Vec<FolderInfo>,
}

/// One folder and its items.
#[derive(Debug, Clone)]
pub struct FolderInfo {
    /// Display names below the store's root (empty for the root itself).
    pub path: Vec<String>,
    /// PidTagContainerClass.
    pub class: Option<String>,
    /// Its items, by NID ascending.
    pub items: Vec<ItemSummary>,
}

/// One item, for planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSummary {
    /// Its NID.
    pub nid: u32,
    /// Mail or what else.
    pub kind: Kind,
    /// PidTagMessageSize (an estimate of the MIME's size).
    pub size: u32,
    /// Why it cannot be read, if it cannot.
    pub unreadable: Option<String>,
}

/// One item read for migration.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its NID.
    pub nid: u32,
    /// The item, or why it cannot be read.
    pub item: Result<Item, String>,
    /// Which reader read it: `outlook-pst`, or `mailhaul` (our own, where the crate
    /// cannot read the item).
    pub via: &'static str,
}

impl Fetched {
    /// The MIME and IMAP flags of a readable item.
    pub fn mime(&self) -> Option<(Vec<u8>, Vec<String>)> {
        self.item
            .as_ref()
            .ok()
            .map(|i| (mime::build(i), mime::flags(i)))
    }
}

type Reply<T> = oneshot::Sender<Result<T, PstError>>;

enum Request {
    Survey {
        digest: bool,
        reply: Reply<FileInfo>,
    },
    Items {
        nids: Vec<u32>,
        reply: Reply<Vec<Fetched>>,
    },
}

/// A handle on an open PST (cheap to clone; the thread lives while a clone does).
#[derive(Debug, Clone)]
pub struct PstHandle {
    tx: mpsc::Sender<Request>,
}

/// Something the thread can read a PST from, any number of times (the crate and our
/// reader each keep their own).
pub trait Source: Send + 'static {
    /// The reader.
    type Reader: Read + Seek + 'static;
    /// A new reader at the start of the file.
    ///
    /// # Errors
    /// The file cannot be opened.
    fn open(&self) -> std::io::Result<Self::Reader>;
}

/// A PST on a file system.
#[derive(Debug, Clone)]
pub struct FileSource(pub PathBuf);

impl Source for FileSource {
    type Reader = BufReader<File>;
    fn open(&self) -> std::io::Result<BufReader<File>> {
        Ok(BufReader::with_capacity(64 << 10, File::open(&self.0)?))
    }
}

impl PstHandle {
    /// Opens the PST at `path`; `codepage` (the CSV's ContentCodePage) decodes String8
    /// values of items that name no code page.
    ///
    /// # Errors
    /// The file cannot be opened, or is not a readable PST (the error says which).
    pub async fn open(path: &Path, codepage: Option<&'static Encoding>) -> Result<Self, PstError> {
        Self::open_source(FileSource(path.to_owned()), codepage).await
    }

    /// [`PstHandle::open`] over any [`Source`].
    ///
    /// # Errors
    /// As [`PstHandle::open`].
    pub async fn open_source<S: Source>(
        source: S,
        codepage: Option<&'static Encoding>,
    ) -> Result<Self, PstError> {
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), PstError>>();
        std::thread::Builder::new()
            .name("pst-reader".into())
            .spawn(move || {
                let mut reader = match Reader::open(&source, codepage) {
                    Ok(r) => {
                        let _ = ready_tx.send(Ok(()));
                        r
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(req) = rx.recv() {
                    match req {
                        Request::Survey { digest, reply } => {
                            let r = reader.survey(&source, digest);
                            let _ = reply.send(r);
                        }
                        Request::Items { nids, reply } => {
                            let _ = reply.send(Ok(reader.items(&nids)));
                        }
                    }
                }
            })
            .map_err(PstError::Io)?;
        ready_rx
            .await
            .map_err(|_| PstError::Stopped("the reader thread ended while opening".into()))??;
        Ok(PstHandle { tx })
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, PstError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| PstError::Stopped("the reader thread is gone".into()))?;
        rx.await
            .map_err(|_| PstError::Stopped("the reader thread ended mid-request".into()))?
    }

    /// The file's record key, folders and items (and its SHA-256 with `digest`).
    ///
    /// # Errors
    /// The folder tree cannot be read.
    pub async fn survey(&self, digest: bool) -> Result<FileInfo, PstError> {
        self.ask(|reply| Request::Survey { digest, reply }).await
    }

    /// The items `nids`, each read or with the reason it cannot be.
    ///
    /// # Errors
    /// The reader thread is gone.
    pub async fn items(&self, nids: Vec<u32>) -> Result<Vec<Fetched>, PstError> {
        self.ask(|reply| Request::Items { nids, reply }).await
    }
}

/// The thread's state.
struct Reader<R> {
    raw: RawStore<R>,
    krate: Option<KrateStore>,
    codepage: &'static Encoding,
    keywords: Option<u16>,
}

impl<R: Read + Seek + 'static> Reader<R> {
    fn open<S: Source<Reader = R>>(
        source: &S,
        codepage: Option<&'static Encoding>,
    ) -> Result<Self, PstError> {
        let mut raw = RawStore::open(source.open()?)?;
        let krate = match source.open() {
            Ok(r) => match KrateStore::open(raw.ndb.unicode, Box::new(r)) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::info!(err = %e, "outlook-pst cannot open the store; reading it with mailhaul's own reader.");
                    None
                }
            },
            Err(e) => return Err(e.into()),
        };
        let keywords = raw.named_string("Keywords").unwrap_or(None);
        Ok(Reader {
            raw,
            krate,
            codepage: codepage.unwrap_or(encoding_rs::WINDOWS_1252),
            keywords,
        })
    }

    fn survey<S: Source<Reader = R>>(
        &mut self,
        source: &S,
        digest: bool,
    ) -> Result<FileInfo, PstError> {
        let folders: Vec<RawFolder> = self.raw.folders(self.codepage)?;
        let mut out = Vec::with_capacity(folders.len());
        for f in folders {
            let mut items = Vec::with_capacity(f.messages.len());
            for nid in &f.messages {
                items.push(match self.raw.summary(*nid, &[0x001A, 0x0E08]) {
                    Ok(p) => ItemSummary {
                        nid: *nid,
                        kind: Kind::of_class(
                            &p.get(&0x001A)
                                .and_then(|v| v.text(self.codepage))
                                .unwrap_or_default(),
                        ),
                        size: p
                            .get(&0x0E08)
                            .and_then(super::value::Value::int)
                            .and_then(|s| u32::try_from(s).ok())
                            .unwrap_or(0),
                        unreadable: None,
                    },
                    Err(e) => ItemSummary {
                        nid: *nid,
                        kind: Kind::Mail,
                        size: 0,
                        unreadable: Some(e.to_string()),
                    },
                });
            }
            out.push(FolderInfo {
                path: f.path,
                class: f.class,
                items,
            });
        }
        let sha256 = if digest {
            let mut r = source.open()?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            Some(hex::encode(h.finalize()))
        } else {
            None
        };
        Ok(FileInfo {
            record_key: self.raw.record_key().map(hex::encode).unwrap_or_default(),
            unicode: self.raw.ndb.unicode,
            size: self.raw.ndb.len(),
            sha256,
            folders: out,
        })
    }

    fn items(&mut self, nids: &[u32]) -> Vec<Fetched> {
        nids.iter()
            .map(|&nid| {
                let (item, via) = self.item(nid);
                Fetched { nid, item, via }
            })
            .collect()
    }

    fn item(&mut self, nid: u32) -> (Result<Item, String>, &'static str) {
        let from_crate = match &self.krate {
            Some(k) => k.item(nid),
            None => Err(super::krate::Refused::Error("not opened".into())),
        };
        let (raw, via) = match from_crate {
            Ok(raw) => (raw, "outlook-pst"),
            Err(why) => {
                tracing::debug!(nid, %why, "Item read with mailhaul's own PST reader.");
                let r =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.raw.item(nid)));
                match r {
                    Ok(Ok(raw)) => (raw, "mailhaul"),
                    Ok(Err(e)) => {
                        return (
                            Err(format!("unreadable item (NID {nid:#x}): {e}")),
                            "mailhaul",
                        );
                    }
                    Err(_) => {
                        let why = format!("unreadable item (NID {nid:#x}): the reader panicked");
                        return (Err(why), "mailhaul");
                    }
                }
            }
        };
        // Conversion is ours and pure, but a panic in it must not end the thread either.
        let item = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Item::from_raw(&raw, self.codepage, self.keywords)
        }))
        .map_err(|_| format!("item NID {nid:#x} could not be converted (a mailhaul bug)"));
        (item, via)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pst::fixtures;

    #[tokio::test]
    async fn every_fixture_item_is_read_and_becomes_mime() {
        let mut mail = 0;
        let mut via_crate = 0;
        for name in fixtures::all() {
            let h = PstHandle::open(&fixtures::path(&name), None)
                .await
                .expect(&name);
            let info = h.survey(true).await.expect("survey");
            assert_eq!(info.record_key.len(), 32, "{name}");
            assert_eq!(info.sha256.as_ref().map(String::len), Some(64));
            for f in &info.folders {
                let nids: Vec<u32> = f
                    .items
                    .iter()
                    .filter(|i| i.kind == Kind::Mail)
                    .map(|i| i.nid)
                    .collect();
                for fetched in h.items(nids).await.expect("items") {
                    let item = fetched.item.as_ref().expect("readable");
                    let (mime, _) = fetched.mime().expect("mime");
                    let parsed = mail_parser::MessageParser::default()
                        .parse(&mime)
                        .expect("parses");
                    assert_eq!(parsed.subject().unwrap_or(""), item.subject, "{name}");
                    println!(
                        "{name} {:?} {:#x} via {}: {:?} att={}",
                        f.path,
                        fetched.nid,
                        fetched.via,
                        item.subject,
                        item.attachments.len()
                    );
                    mail += 1;
                    via_crate += usize::from(fetched.via == "outlook-pst");
                }
            }
        }
        // readpst's 11 mail items and the three IPM.Post items of the pstsdk test files.
        assert_eq!(mail, 14);
        assert!(via_crate > 0);
    }
}
