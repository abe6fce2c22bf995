//! Which code page an item's `String8` values are in.
//!
//! Order (MS-OXCMSG §2.2.1.56-59, and what Outlook does): the item's
//! PidTagInternetCodepage (0x3FDE), its PidTagMessageCodepage (0x3FFD), then the
//! `ContentCodePage` of the mapping CSV row (Purview's column for ANSI PSTs), then
//! Windows-1252. Numbers map to encodings as Windows does (crate `codepage`).

use super::raw::Props;
use encoding_rs::Encoding;

/// PidTagInternetCodepage.
const INTERNET_CODEPAGE: u16 = 0x3FDE;
/// PidTagMessageCodepage.
const MESSAGE_CODEPAGE: u16 = 0x3FFD;

/// The encoding of Windows code page `cp`, if it is one (1200/1201, UTF-16, is not:
/// `String8` values are 8-bit).
pub fn encoding(cp: u16) -> Option<&'static Encoding> {
    codepage::to_encoding_no_replacement(cp)
        .filter(|e| *e != encoding_rs::UTF_16LE && *e != encoding_rs::UTF_16BE)
}

/// The encoding of the item with `props`, falling back to `default`.
pub fn of_item(props: &Props, default: &'static Encoding) -> &'static Encoding {
    [INTERNET_CODEPAGE, MESSAGE_CODEPAGE]
        .iter()
        .filter_map(|id| props.get(id)?.int())
        .filter_map(|cp| u16::try_from(cp).ok())
        .find_map(encoding)
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pst::value::Value;

    #[test]
    fn item_code_page_wins_over_the_default() {
        let mut p = Props::new();
        assert_eq!(
            of_item(&p, encoding_rs::WINDOWS_1252),
            encoding_rs::WINDOWS_1252
        );
        p.insert(MESSAGE_CODEPAGE, Value::I32(932));
        assert_eq!(
            of_item(&p, encoding_rs::WINDOWS_1252),
            encoding_rs::SHIFT_JIS
        );
        p.insert(INTERNET_CODEPAGE, Value::I32(65001));
        assert_eq!(of_item(&p, encoding_rs::WINDOWS_1252), encoding_rs::UTF_8);
        p.insert(INTERNET_CODEPAGE, Value::I32(1200));
        assert_eq!(
            of_item(&p, encoding_rs::WINDOWS_1252),
            encoding_rs::SHIFT_JIS
        );
        assert_eq!(encoding(1251), Some(encoding_rs::WINDOWS_1251));
        assert_eq!(encoding(4), None);
    }
}
