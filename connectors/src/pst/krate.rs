//! Items read through the `outlook-pst` crate (Microsoft's reader, MIT), with our own
//! reader ([`super::raw`]) where the crate cannot read them.
//!
//! The crate reads a message's properties, recipient table and attachments. It is
//! known to fail on real files (fixtures README): a message node without a sub-node
//! tree ("Missing Sub-Node Tree on message"), an attachment without PidTagAttachMethod,
//! and the attachments of an embedded message are out of reach of its public API; and
//! `NamedPropertyMapProperties::lookup_guid` panics on ANSI stores (named properties
//! are therefore always read by [`super::raw`]). So: an item with an embedded message
//! is read by our reader; any other item by the crate first, and by our reader when the
//! crate errs or panics — a panic is caught per item and never takes the caller down.

use super::raw::{Props, RawAttachment, RawItem};
use super::value::Value;
use outlook_pst::ltp::prop_context::PropertyValue;
use outlook_pst::ltp::table_context::TableContext;
use outlook_pst::messaging::attachment::{
    AnsiAttachment, Attachment, AttachmentData, UnicodeAttachment,
};
use outlook_pst::messaging::message::{AnsiMessage, Message, UnicodeMessage};
use outlook_pst::messaging::store::{AnsiStore, Store, UnicodeStore};
use outlook_pst::ndb::node_id::NodeId;
use outlook_pst::{AnsiPstFile, PstReader, UnicodePstFile};
use std::rc::Rc;

/// A store opened by the crate.
pub(crate) enum KrateStore {
    /// A Unicode PST.
    Unicode(Rc<UnicodeStore>),
    /// An ANSI PST.
    Ansi(Rc<AnsiStore>),
}

/// Why the crate did not give an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The item has an embedded message, whose attachments the crate cannot reach.
    Embedded,
    /// The crate returned an error.
    Error(String),
    /// The crate panicked.
    Panic(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Embedded => f.write_str("has an embedded message"),
            Refused::Error(e) => write!(f, "outlook-pst: {e}"),
            Refused::Panic(p) => write!(f, "outlook-pst panicked: {p}"),
        }
    }
}

impl KrateStore {
    /// Opens `reader` with the crate (Unicode, else ANSI).
    ///
    /// # Errors
    /// What the crate says about the file.
    pub(crate) fn open(unicode: bool, reader: Box<dyn PstReader>) -> Result<KrateStore, String> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            if unicode {
                let f = UnicodePstFile::read_from(reader).map_err(|e| e.to_string())?;
                UnicodeStore::read(Rc::new(f))
                    .map(KrateStore::Unicode)
                    .map_err(|e| e.to_string())
            } else {
                let f = AnsiPstFile::read_from(reader).map_err(|e| e.to_string())?;
                AnsiStore::read(Rc::new(f))
                    .map(KrateStore::Ansi)
                    .map_err(|e| e.to_string())
            }
        }));
        r.unwrap_or_else(|p| Err(format!("outlook-pst panicked: {}", panic_text(&p))))
    }

    /// Message `nid` through the crate.
    pub(crate) fn item(&self, nid: u32) -> Result<RawItem, Refused> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match self {
            KrateStore::Unicode(s) => {
                let entry = s
                    .properties()
                    .make_entry_id(NodeId::from(nid))
                    .map_err(|e| Refused::Error(e.to_string()))?;
                let m = UnicodeMessage::read(s.clone(), &entry, None)
                    .map_err(|e| Refused::Error(e.to_string()))?;
                let attachments = attachments(m.as_ref(), |id| {
                    UnicodeAttachment::read(m.clone(), id, None).map(|a| a as Rc<dyn Attachment>)
                })?;
                Ok(raw(m.as_ref(), attachments))
            }
            KrateStore::Ansi(s) => {
                let entry = s
                    .properties()
                    .make_entry_id(NodeId::from(nid))
                    .map_err(|e| Refused::Error(e.to_string()))?;
                let m = AnsiMessage::read(s.clone(), &entry, None)
                    .map_err(|e| Refused::Error(e.to_string()))?;
                let attachments = attachments(m.as_ref(), |id| {
                    AnsiAttachment::read(m.clone(), id, None).map(|a| a as Rc<dyn Attachment>)
                })?;
                Ok(raw(m.as_ref(), attachments))
            }
        }));
        r.unwrap_or_else(|p| Err(Refused::Panic(panic_text(&p))))
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

fn raw(m: &dyn Message, attachments: Vec<RawAttachment>) -> RawItem {
    RawItem {
        props: m
            .properties()
            .iter()
            .map(|(id, v)| (*id, value(v)))
            .collect(),
        recipients: m
            .recipient_table()
            .map(|t| rows(t.as_ref()))
            .unwrap_or_default(),
        attachments,
    }
}

/// The attachments of `m`, each opened with `open` (the concrete type's reader).
fn attachments(
    m: &dyn Message,
    open: impl Fn(NodeId) -> std::io::Result<Rc<dyn Attachment>>,
) -> Result<Vec<RawAttachment>, Refused> {
    let Some(table) = m.attachment_table() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in table.rows_matrix() {
        let a =
            open(NodeId::from(u32::from(row.id()))).map_err(|e| Refused::Error(e.to_string()))?;
        if matches!(a.data(), Some(AttachmentData::Message(_))) {
            return Err(Refused::Embedded);
        }
        let mut props: Props = a
            .properties()
            .iter()
            .map(|(id, v)| (*id, value(v)))
            .collect();
        if let Some(AttachmentData::Binary(b)) = a.data() {
            props.insert(0x3701, Value::Binary(b.buffer().to_vec()));
        }
        out.push(RawAttachment {
            props,
            embedded: None,
        });
    }
    Ok(out)
}

/// A table's rows as property maps.
fn rows(t: &dyn TableContext) -> Vec<Props> {
    let ctx = t.context();
    let mut out = Vec::new();
    for row in t.rows_matrix() {
        let Ok(cells) = row.columns(ctx) else {
            continue;
        };
        let mut props = Props::new();
        for (col, cell) in ctx.columns().iter().zip(cells) {
            let Some(cell) = cell else { continue };
            if let Ok(v) = t.read_column(&cell, col.prop_type()) {
                props.insert(col.prop_id(), value(&v));
            }
        }
        out.push(props);
    }
    out
}

fn utf16(units: &[u16]) -> String {
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

/// The crate's value as ours.
fn value(v: &PropertyValue) -> Value {
    match v {
        PropertyValue::Integer16(x) => Value::I16(*x),
        PropertyValue::Integer32(x) => Value::I32(*x),
        PropertyValue::Floating32(x) => Value::F64(f64::from(*x)),
        PropertyValue::Floating64(x) | PropertyValue::FloatingTime(x) => Value::F64(*x),
        PropertyValue::Currency(x) | PropertyValue::Integer64(x) => Value::I64(*x),
        PropertyValue::ErrorCode(x) => Value::Error(*x as u32),
        PropertyValue::Boolean(x) => Value::Bool(*x),
        PropertyValue::String8(s) => {
            let b = s.buffer();
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            Value::String8(b[..end].to_vec())
        }
        PropertyValue::Unicode(s) => Value::Unicode(utf16(s.buffer())),
        PropertyValue::Time(t) => Value::Time(*t),
        PropertyValue::Guid(g) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&g.data1().to_le_bytes());
            b[4..6].copy_from_slice(&g.data2().to_le_bytes());
            b[6..8].copy_from_slice(&g.data3().to_le_bytes());
            b[8..].copy_from_slice(g.data4());
            Value::Guid(b)
        }
        PropertyValue::Binary(b) => Value::Binary(b.buffer().to_vec()),
        PropertyValue::Object(o) => Value::Object(u32::from(o.node()), o.size()),
        PropertyValue::MultipleUnicode(v) => {
            Value::MultiUnicode(v.iter().map(|s| utf16(s.buffer())).collect())
        }
        PropertyValue::MultipleString8(v) => {
            Value::MultiString8(v.iter().map(|s| s.buffer().to_vec()).collect())
        }
        PropertyValue::MultipleBinary(v) => {
            Value::MultiBinary(v.iter().map(|b| b.buffer().to_vec()).collect())
        }
        other => Value::Other(0, format!("{other:?}").into_bytes()),
    }
}
