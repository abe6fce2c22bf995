//! A message body that may be too big to hold in memory.
//!
//! Sources write a body piece by piece into a [`BodySink`] (POP3 RETR lines, IMAP
//! partial FETCHes); it stays in memory up to the spool threshold and moves to an
//! unnamed temporary file beyond it, hashing as it goes. The finished [`Body`] is cheap to
//! clone and is read back in pieces: an APPEND literal, an EWS request's base64, the
//! header section for the Message-ID. So a worker's memory is bounded by its slots times
//! the threshold and the piece sizes, not by the largest message of the tenant.
//!
//! The one exception is a caller that needs the whole message at once (Graph's JSON path
//! parses the MIME; importMime is at most 4 MB): [`Body::whole`] reads it, and at most
//! one spooled body per process is held whole at a time — hold a [`Whole`] only while
//! preparing a request, never across one (other slots wait for it).
//!
//! Invariants: the bytes read back are exactly the bytes written; [`Body::hash`] is
//! [`mailhaul_proto::ledger::content_hash`] of them; the temporary file has no name
//! (`O_TMPFILE` or unlinked at once), so nothing is left behind by a crash.

use base64::engine::general_purpose::STANDARD;
use futures_util::{Stream, StreamExt as _};
use mailhaul_proto::ledger::ContentHasher;
use std::borrow::Cow;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Bodies larger than this go to a temporary file unless configured otherwise.
pub const DEFAULT_SPOOL_THRESHOLD: u64 = 4 << 20;
/// Pieces read back from a spooled body.
pub const READ_PIECE: usize = 1 << 20;
/// Bytes gathered before a write to a spooled body's file.
const WRITE_PIECE: usize = 1 << 20;
/// The header section is looked for in at most this many leading bytes.
pub const HEAD_MAX: usize = 1 << 20;

/// Where and from what size bodies are spooled; set once per process.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Bodies larger than this many bytes go to a file.
    pub threshold: u64,
    /// Directory of the temporary files (`None`: the system's, `$TMPDIR` or `/tmp`).
    pub dir: Option<PathBuf>,
}

static SPOOL: OnceLock<SpoolConfig> = OnceLock::new();

/// Sets the process's spool settings; the first call wins (later ones return `false`).
pub fn configure(config: SpoolConfig) -> bool {
    SPOOL.set(config).is_ok()
}

/// Bodies larger than this many bytes go to a temporary file.
pub fn spool_threshold() -> u64 {
    spool().threshold
}

fn spool() -> &'static SpoolConfig {
    SPOOL.get_or_init(|| SpoolConfig {
        threshold: DEFAULT_SPOOL_THRESHOLD,
        dir: None,
    })
}

/// Spooled bodies held whole at once ([`Body::whole`]).
static WHOLE: Semaphore = Semaphore::const_new(1);

/// A finished message body: in memory or in a temporary file. Clones share it.
#[derive(Clone)]
pub struct Body(Arc<Inner>);

struct Inner {
    len: u64,
    /// Set when the body was written piece by piece; computed on first use for one
    /// made from bytes (`plan` and `verify` never need it).
    hash: OnceLock<u64>,
    store: Store,
}

enum Store {
    Memory(Vec<u8>),
    File(std::fs::File),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("len", &self.0.len)
            .field("hash", &format_args!("{:016x}", self.hash()))
            .field("spooled", &self.is_spooled())
            .finish()
    }
}

/// Equal content (by length and content hash).
impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.0.len == other.0.len && self.hash() == other.hash()
    }
}

impl Eq for Body {}

impl Default for Body {
    fn default() -> Self {
        Body::from(Vec::new())
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body(Arc::new(Inner {
            len: bytes.len() as u64,
            hash: OnceLock::new(),
            store: Store::Memory(bytes),
        }))
    }
}

/// The whole of a body, from [`Body::whole`].
pub struct Whole<'a> {
    bytes: Cow<'a, [u8]>,
    _permit: Option<SemaphorePermit<'static>>,
}

impl Whole<'_> {
    /// The bytes as a vector of their own (no copy when they were read from the file);
    /// the slot for whole spooled bodies is free again.
    pub fn into_vec(self) -> Vec<u8> {
        self.bytes.into_owned()
    }
}

impl std::ops::Deref for Whole<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Body {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.0.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// [`mailhaul_proto::ledger::content_hash`] of its bytes.
    pub fn hash(&self) -> u64 {
        *self.0.hash.get_or_init(|| match &self.0.store {
            Store::Memory(v) => mailhaul_proto::ledger::content_hash(v),
            Store::File(_) => unreachable!("a spooled body's hash is set when it is written"),
        })
    }

    /// Whether it lives in a temporary file.
    pub fn is_spooled(&self) -> bool {
        matches!(self.0.store, Store::File(_))
    }

    /// The bytes, when they are in memory.
    pub fn in_memory(&self) -> Option<&[u8]> {
        match &self.0.store {
            Store::Memory(v) => Some(v),
            Store::File(_) => None,
        }
    }

    /// The leading bytes that hold the header section (at most [`HEAD_MAX`]; the whole
    /// body when it is in memory). What `mailhaul_proto::inspect`'s header readers need.
    ///
    /// # Errors
    /// The temporary file cannot be read.
    pub async fn head(&self) -> io::Result<Cow<'_, [u8]>> {
        match &self.0.store {
            Store::Memory(v) => Ok(Cow::Borrowed(v)),
            Store::File(_) => {
                let len = usize::try_from(self.0.len).unwrap_or(usize::MAX);
                Ok(Cow::Owned(self.read_at(0, len.min(HEAD_MAX)).await?))
            }
        }
    }

    /// The whole body at once. A spooled body waits for the process's one slot for
    /// whole spooled bodies, so that several large messages are never held together.
    ///
    /// # Errors
    /// The temporary file cannot be read.
    pub async fn whole(&self) -> io::Result<Whole<'_>> {
        match &self.0.store {
            Store::Memory(v) => Ok(Whole {
                bytes: Cow::Borrowed(v),
                _permit: None,
            }),
            Store::File(_) => {
                let permit = WHOLE.acquire().await.map_err(io::Error::other)?;
                let len = usize::try_from(self.0.len).map_err(io::Error::other)?;
                Ok(Whole {
                    bytes: Cow::Owned(self.read_at(0, len).await?),
                    _permit: Some(permit),
                })
            }
        }
    }

    /// Up to `max` bytes from `offset` (fewer only at the end).
    async fn read_at(&self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || match &me.0.store {
            Store::Memory(v) => {
                let from = usize::try_from(offset).unwrap_or(usize::MAX).min(v.len());
                let to = from.saturating_add(max).min(v.len());
                Ok(v[from..to].to_vec())
            }
            Store::File(file) => {
                let want = usize::try_from(me.0.len.saturating_sub(offset))
                    .unwrap_or(usize::MAX)
                    .min(max);
                let mut buf = vec![0u8; want];
                file.read_exact_at(&mut buf, offset)?;
                Ok(buf)
            }
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Writes every byte to `w`, a piece at a time for a spooled body (not flushed).
    ///
    /// # Errors
    /// Reading the file or writing to `w` failed.
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, w: &mut W) -> io::Result<()> {
        if let Store::Memory(v) = &self.0.store {
            return w.write_all(v).await;
        }
        let mut offset = 0;
        while offset < self.0.len {
            let piece = self.read_at(offset, READ_PIECE).await?;
            w.write_all(&piece).await?;
            offset += piece.len() as u64;
        }
        Ok(())
    }

    /// The bytes as a stream of pieces of at most `piece` bytes (whole multiples of
    /// `piece` except the last), for request bodies.
    pub fn pieces(&self, piece: usize) -> impl Stream<Item = io::Result<Vec<u8>>> + Send + 'static {
        let piece = piece.max(1);
        let body = self.clone();
        futures_util::stream::try_unfold(0u64, move |offset| {
            let body = body.clone();
            async move {
                if offset >= body.len() {
                    return Ok(None);
                }
                let bytes = body.read_at(offset, piece).await?;
                if bytes.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the spooled body is shorter than recorded",
                    ));
                }
                let next = offset + bytes.len() as u64;
                Ok(Some((bytes, next)))
            }
        })
    }
}

/// The MIME of a message to import into Exchange: in memory, or a line to put first
/// (a `Message-ID:` for a message without one; may be empty) and a body that may be
/// spooled.
#[derive(Debug, Clone, Copy)]
pub enum Mime<'a> {
    /// All of it, in memory.
    Bytes(&'a [u8]),
    /// `prefix` then `body`.
    Body {
        /// Bytes sent before the body.
        prefix: &'a [u8],
        /// The message.
        body: &'a Body,
    },
}

impl<'a> From<&'a [u8]> for Mime<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Mime::Bytes(bytes)
    }
}

/// Raw bytes per base64 piece: a multiple of 3, so pieces encode without padding.
const BASE64_PIECE: usize = 3 * (256 << 10);

impl<'a> Mime<'a> {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Mime::Bytes(b) => b.len() as u64,
            Mime::Body { prefix, body } => prefix.len() as u64 + body.len(),
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The length of its base64 (standard alphabet, padded).
    pub fn base64_len(&self) -> u64 {
        self.len().div_ceil(3) * 4
    }

    /// All of it at once (see [`Body::whole`] for what a spooled body waits for).
    ///
    /// # Errors
    /// The temporary file cannot be read.
    pub async fn whole(&self) -> io::Result<Whole<'a>> {
        match *self {
            Mime::Body { prefix, body } if !prefix.is_empty() => {
                let whole = body.whole().await?;
                let mut bytes = Vec::with_capacity(prefix.len() + whole.len());
                bytes.extend_from_slice(prefix);
                bytes.extend_from_slice(&whole);
                Ok(Whole {
                    bytes: Cow::Owned(bytes),
                    _permit: whole._permit,
                })
            }
            Mime::Body { body, .. } => body.whole().await,
            Mime::Bytes(b) => Ok(Whole {
                bytes: Cow::Borrowed(b),
                _permit: None,
            }),
        }
    }

    /// Its base64 (standard, padded, no line breaks) as a stream of pieces, reading a
    /// spooled body a piece at a time: what an EWS `MimeContent` carries.
    pub fn base64_pieces(&self) -> impl Stream<Item = io::Result<Vec<u8>>> + Send + 'static {
        use base64::Engine as _;
        let prefix = match self {
            Mime::Bytes(b) => b.to_vec(),
            Mime::Body { prefix, .. } => prefix.to_vec(),
        };
        let body = match self {
            Mime::Bytes(_) => None,
            Mime::Body { body, .. } => Some(body.pieces(BASE64_PIECE)),
        };
        let raw = futures_util::stream::once(async move { Ok(prefix) })
            .chain(futures_util::stream::iter(body).flatten());
        // Encode whole groups of 3 and carry the rest over; pad at the very end.
        let carry = Vec::new();
        futures_util::stream::unfold(
            (Box::pin(raw), carry, false),
            |(mut raw, mut carry, done)| async move {
                if done {
                    return None;
                }
                loop {
                    match raw.next().await {
                        Some(Ok(piece)) => {
                            carry.extend_from_slice(&piece);
                            let whole = carry.len() / 3 * 3;
                            if whole == 0 {
                                continue;
                            }
                            let out = STANDARD.encode(&carry[..whole]).into_bytes();
                            carry.drain(..whole);
                            return Some((Ok(out), (raw, carry, false)));
                        }
                        Some(Err(e)) => return Some((Err(e), (raw, carry, true))),
                        None => {
                            let out = STANDARD.encode(&carry).into_bytes();
                            return Some((Ok(out), (raw, Vec::new(), true)));
                        }
                    }
                }
            },
        )
    }
}

/// Collects a body piece by piece: memory first, a temporary file past the threshold.
pub struct BodySink {
    mode: Mode,
    len: u64,
    hasher: ContentHasher,
    threshold: u64,
}

enum Mode {
    Memory(Vec<u8>),
    /// The file, and bytes not yet written to it (up to [`WRITE_PIECE`]: POP3 hands
    /// over one line at a time, and every file write is a trip to a blocking thread).
    File(std::fs::File, Vec<u8>),
    /// Only the length and the hash are kept.
    Discard,
}

impl std::fmt::Debug for BodySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Memory(_) => "memory",
            Mode::File(..) => "file",
            Mode::Discard => "discard",
        };
        f.debug_struct("BodySink")
            .field("len", &self.len)
            .field("mode", &mode)
            .finish()
    }
}

impl Default for BodySink {
    fn default() -> Self {
        BodySink::new()
    }
}

impl BodySink {
    /// A sink with the process's spool threshold.
    pub fn new() -> Self {
        BodySink::with_threshold(spool().threshold)
    }

    /// A sink that spools beyond `threshold` bytes (tests; `u64::MAX`: never).
    pub fn with_threshold(threshold: u64) -> Self {
        BodySink {
            mode: Mode::Memory(Vec::new()),
            len: 0,
            hasher: ContentHasher::default(),
            threshold,
        }
    }

    /// A sink that keeps only the length and the content hash.
    pub fn hash_only() -> Self {
        BodySink {
            mode: Mode::Discard,
            len: 0,
            hasher: ContentHasher::default(),
            threshold: u64::MAX,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `piece`.
    ///
    /// # Errors
    /// The temporary file cannot be created or written (disk full, spool directory
    /// missing); the error names the directory.
    pub async fn write(&mut self, piece: &[u8]) -> io::Result<()> {
        self.hasher.update(piece);
        self.len += piece.len() as u64;
        match &mut self.mode {
            Mode::Discard => Ok(()),
            Mode::File(_, pending) => {
                pending.extend_from_slice(piece);
                if pending.len() >= WRITE_PIECE {
                    let Mode::File(f, buf) = std::mem::replace(&mut self.mode, Mode::Discard)
                    else {
                        unreachable!("in file mode")
                    };
                    let (f, mut buf) = append(f, buf).await?;
                    buf.clear();
                    self.mode = Mode::File(f, buf);
                }
                Ok(())
            }
            Mode::Memory(v) if self.len <= self.threshold => {
                v.extend_from_slice(piece);
                Ok(())
            }
            Mode::Memory(v) => {
                let mut held = std::mem::take(v);
                held.extend_from_slice(piece);
                let (f, mut held) = append(temp_file().await?, held).await?;
                held.clear();
                self.mode = Mode::File(f, held);
                Ok(())
            }
        }
    }

    /// The finished body.
    ///
    /// # Errors
    /// The temporary file cannot be written to its end.
    pub async fn finish(self) -> io::Result<Body> {
        let store = match self.mode {
            Mode::Memory(v) => Store::Memory(v),
            Mode::Discard => Store::Memory(Vec::new()),
            Mode::File(f, pending) => Store::File(append(f, pending).await?.0),
        };
        Ok(Body(Arc::new(Inner {
            len: self.len,
            hash: OnceLock::from(self.hasher.finish()),
            store,
        })))
    }

    /// The SHA-256 of what was written (the content hash is its first 8 bytes).
    pub fn digest(self) -> [u8; 32] {
        self.hasher.digest()
    }

    /// The bytes held in memory: all of them unless the sink spooled or keeps none.
    pub fn in_memory(&self) -> Option<&[u8]> {
        match &self.mode {
            Mode::Memory(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes, for a sink that never spooled (listings); `None` once it spooled.
    pub fn into_vec(self) -> Option<Vec<u8>> {
        match self.mode {
            Mode::Memory(v) => Some(v),
            _ => None,
        }
    }
}

/// Writes `buf` at the end of `file` on a blocking thread (moving the buffer there and
/// back, no copy), and hands both back.
async fn append(file: std::fs::File, buf: Vec<u8>) -> io::Result<(std::fs::File, Vec<u8>)> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut file = file;
        file.write_all(&buf)?;
        Ok((file, buf))
    })
    .await
    .map_err(io::Error::other)?
    .map_err(spool_error)
}

async fn temp_file() -> io::Result<std::fs::File> {
    let dir = spool().dir.clone();
    tokio::task::spawn_blocking(move || match &dir {
        Some(d) => tempfile::tempfile_in(d),
        None => tempfile::tempfile(),
    })
    .await
    .map_err(io::Error::other)?
    .map_err(spool_error)
}

fn spool_error(e: io::Error) -> io::Error {
    let dir = spool()
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .display()
        .to_string();
    io::Error::new(
        e.kind(),
        format!(
            "spooling a large message to {dir} failed ({e}); free disk space there or point \
             the worker's --spool-dir elsewhere"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt as _;
    use mailhaul_proto::ledger::content_hash;

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 256) as u8).collect()
    }

    async fn sink(data: &[u8], threshold: u64, piece: usize) -> Body {
        let mut s = BodySink::with_threshold(threshold);
        for c in data.chunks(piece) {
            s.write(c).await.expect("writes");
        }
        s.finish().await.expect("finishes")
    }

    #[tokio::test]
    async fn small_bodies_stay_in_memory_large_ones_spool() {
        let data = sample(300_000);
        let kept = sink(&data, 1 << 20, 4096).await;
        assert!(!kept.is_spooled());
        assert_eq!(kept.in_memory(), Some(&data[..]));

        let spooled = sink(&data, 10_000, 4096).await;
        assert!(spooled.is_spooled());
        assert_eq!(spooled.in_memory(), None);
        assert_eq!(spooled.len(), data.len() as u64);
        assert_eq!(spooled.hash(), content_hash(&data));
        assert_eq!(spooled, kept);
        assert_eq!(&*spooled.whole().await.expect("reads"), &data[..]);
    }

    #[tokio::test]
    async fn spooled_bodies_read_back_exactly() {
        let data = sample(2 * READ_PIECE + 12_345);
        let b = sink(&data, 0, 65_536).await;
        let mut out = Vec::new();
        b.write_to(&mut out).await.expect("writes");
        assert_eq!(out, data);
        for piece in [1000, READ_PIECE, 3 * READ_PIECE] {
            let pieces: Vec<Vec<u8>> = b.pieces(piece).try_collect().await.expect("streams");
            assert!(pieces.iter().rev().skip(1).all(|p| p.len() == piece));
            assert_eq!(pieces.concat(), data, "pieces of {piece}");
        }
        let head = b.head().await.expect("head");
        assert_eq!(&head[..], &data[..HEAD_MAX]);
    }

    #[tokio::test]
    async fn base64_of_a_spooled_mime_equals_base64_of_its_bytes() {
        use base64::Engine as _;
        use futures_util::TryStreamExt as _;
        for (prefix, n) in [
            (&b""[..], 0),
            (&b"Message-ID: <x@y>\r\n"[..], 1),
            (&b"ab"[..], BASE64_PIECE),
            (&b"Message-ID: <x@y>\r\n"[..], 2 * BASE64_PIECE + 5),
        ] {
            let data = sample(n);
            let body = sink(&data, 0, 4096).await;
            let mime = Mime::Body {
                prefix,
                body: &body,
            };
            let mut all = prefix.to_vec();
            all.extend_from_slice(&data);
            let got: Vec<Vec<u8>> = mime.base64_pieces().try_collect().await.expect("streams");
            let got = got.concat();
            assert_eq!(
                got,
                STANDARD.encode(&all).into_bytes(),
                "prefix {prefix:?}, {n} bytes"
            );
            assert_eq!(mime.base64_len(), got.len() as u64);
            assert_eq!(&*mime.whole().await.expect("whole"), &all[..]);
        }
        let bytes = Mime::Bytes(b"hello");
        let got: Vec<Vec<u8>> = bytes.base64_pieces().try_collect().await.expect("streams");
        assert_eq!(got.concat(), b"aGVsbG8=");
    }

    #[tokio::test]
    async fn hash_only_keeps_no_bytes() {
        let data = sample(50_000);
        let mut s = BodySink::hash_only();
        for c in data.chunks(999) {
            s.write(c).await.expect("writes");
        }
        assert_eq!(s.len(), 50_000);
        assert_eq!(
            u64::from_be_bytes(s.digest()[..8].try_into().expect("8 bytes")),
            content_hash(&data)
        );
        let empty = sink(b"", 0, 1).await;
        assert!(empty.is_empty() && !empty.is_spooled());
    }
}
