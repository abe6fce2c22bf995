//! A minimal but well-formed TNEF stream ([MS-OXTNEF] §2.1.3): signature, legacy key,
//! then attributes, each `level (1) | id (4, LE: type << 16 | tag) | length (4) | data |
//! checksum (2, sum of the data bytes mod 65536)`. It carries what an Outlook
//! `winmail.dat` carries in its legacy attributes: version, code page, message class,
//! subject, plain body, and one file attachment (render data, title, data).

/// TNEF_SIGNATURE.
const SIGNATURE: u32 = 0x223E_9F78;
/// Message-level attribute.
const LVL_MESSAGE: u8 = 0x01;
/// Attachment-level attribute.
const LVL_ATTACHMENT: u8 = 0x02;

// Attribute ids: (atp type << 16) | tag, [MS-OXTNEF] §2.1.3.3.
const ATT_TNEF_VERSION: u32 = 0x0008_9006;
const ATT_OEM_CODEPAGE: u32 = 0x0006_9007;
const ATT_MESSAGE_CLASS: u32 = 0x0007_8008;
const ATT_SUBJECT: u32 = 0x0001_8004;
const ATT_BODY: u32 = 0x0002_800C;
const ATT_ATTACH_REND_DATA: u32 = 0x0006_9002;
const ATT_ATTACH_TITLE: u32 = 0x0001_8010;
const ATT_ATTACH_DATA: u32 = 0x0006_800F;

/// Writes one attribute (also used by the emulator's TNEF reader tests).
pub(crate) fn attribute(out: &mut Vec<u8>, level: u8, id: u32, data: &[u8]) {
    out.push(level);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    let checksum = data.iter().fold(0u16, |s, &b| s.wrapping_add(u16::from(b)));
    out.extend_from_slice(&checksum.to_le_bytes());
}

fn zero_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A `winmail.dat` with `subject`, the plain `body` and one attachment `name` = `bytes`
/// (ASCII `subject`, `body` and `name`: code page 1252 then reads them the same).
pub(crate) fn winmail(subject: &str, body: &str, name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 512);
    out.extend_from_slice(&SIGNATURE.to_le_bytes());
    out.extend_from_slice(&0x1234u16.to_le_bytes()); // legacy key
    attribute(
        &mut out,
        LVL_MESSAGE,
        ATT_TNEF_VERSION,
        &0x0001_0000u32.to_le_bytes(),
    );
    let codepage = [1252u32.to_le_bytes(), 0u32.to_le_bytes()].concat();
    attribute(&mut out, LVL_MESSAGE, ATT_OEM_CODEPAGE, &codepage);
    attribute(
        &mut out,
        LVL_MESSAGE,
        ATT_MESSAGE_CLASS,
        &zero_terminated("IPM.Microsoft Mail.Note"),
    );
    attribute(
        &mut out,
        LVL_MESSAGE,
        ATT_SUBJECT,
        &zero_terminated(subject),
    );
    attribute(&mut out, LVL_MESSAGE, ATT_BODY, body.as_bytes());
    // attAttachRendData: AttachType 1 (file), position, render width/height, flags.
    let mut rend = Vec::new();
    rend.extend_from_slice(&1u16.to_le_bytes());
    rend.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    rend.extend_from_slice(&32u16.to_le_bytes());
    rend.extend_from_slice(&32u16.to_le_bytes());
    rend.extend_from_slice(&0u32.to_le_bytes());
    attribute(&mut out, LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, &rend);
    attribute(
        &mut out,
        LVL_ATTACHMENT,
        ATT_ATTACH_TITLE,
        &zero_terminated(name),
    );
    attribute(&mut out, LVL_ATTACHMENT, ATT_ATTACH_DATA, bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the stream as a reader would: every attribute's length and checksum fit.
    #[test]
    fn attributes_are_well_formed() {
        let data = winmail("Budget", "See the budget.", "budget.xlsx", &[7; 300]);
        assert_eq!(&data[..4], &[0x78, 0x9F, 0x3E, 0x22]);
        let mut at = 6;
        let mut ids = Vec::new();
        while at < data.len() {
            let id = u32::from_le_bytes(data[at + 1..at + 5].try_into().expect("4 bytes"));
            let len =
                u32::from_le_bytes(data[at + 5..at + 9].try_into().expect("4 bytes")) as usize;
            let body = &data[at + 9..at + 9 + len];
            let sum = u16::from_le_bytes(
                data[at + 9 + len..at + 11 + len]
                    .try_into()
                    .expect("2 bytes"),
            );
            assert_eq!(
                sum,
                body.iter().fold(0u16, |s, &b| s.wrapping_add(u16::from(b)))
            );
            ids.push(id);
            at += 11 + len;
        }
        assert_eq!(at, data.len());
        assert_eq!(ids.first(), Some(&ATT_TNEF_VERSION));
        assert_eq!(ids.last(), Some(&ATT_ATTACH_DATA));
    }
}
