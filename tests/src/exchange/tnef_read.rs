//! The emulator's own TNEF reader ([MS-OXTNEF] §2.1.3), for what Exchange's content
//! conversion does with a `winmail.dat` in an uploaded MIME message: unpack it into the
//! attachments it carries [U: Exchange decodes TNEF on inbound mail; that importMime and
//! EWS `MimeContent` go through the same conversion is inferred, not documented].
//!
//! Own code: no maintained Rust crate reads TNEF (crates.md lists none; the known
//! readers are Python and Node). Only the legacy attributes are read — each
//! `attAttachRendData` starts an attachment, `attAttachTitle` names it, `attAttachData`
//! holds its bytes — which is what Outlook writes for file attachments; MAPI property
//! blocks (`attMAPIProps`, `attAttachment`) are skipped, so a long file name given only
//! there is not seen.

/// TNEF_SIGNATURE, little-endian on the wire.
const SIGNATURE: u32 = 0x223E_9F78;
const LVL_ATTACHMENT: u8 = 0x02;
const ATT_ATTACH_REND_DATA: u32 = 0x0006_9002;
const ATT_ATTACH_TITLE: u32 = 0x0001_8010;
const ATT_ATTACH_DATA: u32 = 0x0006_800F;

/// One file a TNEF stream carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TnefFile {
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// The files in `data`; `None` when it is no well-formed TNEF stream (a bad signature,
/// a truncated attribute or a wrong checksum), which Exchange then keeps as a file.
pub(crate) fn files(data: &[u8]) -> Option<Vec<TnefFile>> {
    if u32_at(data, 0)? != SIGNATURE {
        return None;
    }
    let mut at = 6; // signature, legacy key
    let mut out: Vec<TnefFile> = Vec::new();
    while at < data.len() {
        let level = *data.get(at)?;
        let id = u32_at(data, at + 1)?;
        let len = u32_at(data, at + 5)? as usize;
        let body = data.get(at + 9..(at + 9).checked_add(len)?)?;
        let sum = u16::from_le_bytes(data.get(at + 9 + len..at + 11 + len)?.try_into().ok()?);
        if sum != body.iter().fold(0u16, |s, &b| s.wrapping_add(u16::from(b))) {
            return None;
        }
        if level == LVL_ATTACHMENT {
            match id {
                ATT_ATTACH_REND_DATA => out.push(TnefFile::default()),
                ATT_ATTACH_TITLE => {
                    let name = body.split(|&b| b == 0).next().unwrap_or_default();
                    let file = out.last_mut()?;
                    file.name = super::mime_read::decode_text(name, Some("windows-1252"));
                }
                ATT_ATTACH_DATA => out.last_mut()?.bytes = body.to_vec(),
                _ => {}
            }
        }
        at += 11 + len;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::realworld::tnef::attribute;

    #[test]
    fn files_are_read_and_bad_streams_refused() {
        let mut data = SIGNATURE.to_le_bytes().to_vec();
        data.extend_from_slice(&[0, 0]);
        attribute(&mut data, 1, 0x0001_8004, b"Subject\0");
        for (name, bytes) in [(&b"a.xlsx\0"[..], &[1u8, 2, 3][..]), (b"b.txt\0", b"hi")] {
            attribute(&mut data, LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, &[1, 0]);
            attribute(&mut data, LVL_ATTACHMENT, ATT_ATTACH_TITLE, name);
            attribute(&mut data, LVL_ATTACHMENT, ATT_ATTACH_DATA, bytes);
        }
        let got = files(&data).expect("a TNEF stream");
        let names: Vec<(&str, &[u8])> = got
            .iter()
            .map(|f| (f.name.as_str(), f.bytes.as_slice()))
            .collect();
        assert_eq!(names, [("a.xlsx", &[1u8, 2, 3][..]), ("b.txt", b"hi")]);
        assert_eq!(files(&data[..data.len() - 1]), None, "truncated");
        let mut bad = data.clone();
        let last = bad.len() - 3;
        bad[last] ^= 1;
        assert_eq!(files(&bad), None, "checksum");
        assert_eq!(files(b"not tnef at all"), None);
    }
}
