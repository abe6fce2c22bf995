//! Property values as a PST stores them (MS-OXCDATA §2.11.1), and the few conversions
//! the converters need: strings in the item's code page, FILETIME dates.
//!
//! `String8` values are kept as bytes: their code page is the item's
//! (PidTagInternetCodepage 0x3FDE, else PidTagMessageCodepage 0x3FFD), the store's, or
//! the one the mapping CSV gives (`ContentCodePage`), so they are decoded only once that
//! is known ([`Value::text`]).

use super::PstError;
use chrono::{DateTime, Utc};
use encoding_rs::Encoding;

/// One property value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// PtypInteger16.
    I16(i16),
    /// PtypInteger32.
    I32(i32),
    /// PtypBoolean.
    Bool(bool),
    /// PtypInteger64, PtypCurrency.
    I64(i64),
    /// PtypFloating32/64, PtypFloatingTime.
    F64(f64),
    /// PtypErrorCode.
    Error(u32),
    /// PtypTime: 100 ns intervals since 1601-01-01 UTC (FILETIME).
    Time(i64),
    /// PtypString8: bytes in the item's code page, without the terminating NUL.
    String8(Vec<u8>),
    /// PtypString (UTF-16LE), decoded, without the terminating NUL.
    Unicode(String),
    /// PtypGuid.
    Guid([u8; 16]),
    /// PtypBinary.
    Binary(Vec<u8>),
    /// PtypObject: the sub-node (NID) holding the object, and its size (§2.3.3.5).
    Object(u32, u32),
    /// PtypMultipleString (and PtypMultipleString8 once decoded as UTF-8 lossily is
    /// not wanted: kept as bytes in [`Value::MultiString8`]).
    MultiUnicode(Vec<String>),
    /// PtypMultipleString8.
    MultiString8(Vec<Vec<u8>>),
    /// PtypMultipleBinary.
    MultiBinary(Vec<Vec<u8>>),
    /// Any other type, raw: (type, bytes).
    Other(u16, Vec<u8>),
}

fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

fn until_nul(bytes: &[u8]) -> Vec<u8> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    bytes[..end].to_vec()
}

/// The items of a variable-size multi-valued property (§2.3.3.4.2).
fn multi(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PstError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let word = |at: usize| -> Result<usize, PstError> {
        bytes
            .get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
            .ok_or_else(|| PstError::corrupt("short multi-valued property".into()))
    };
    let count = word(0)?;
    if count > bytes.len() / 4 {
        return Err(PstError::corrupt(
            "multi-valued property count too large".into(),
        ));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let start = word(4 + i * 4)?;
        let end = if i + 1 < count {
            word(8 + i * 4)?
        } else {
            bytes.len()
        };
        out.push(
            bytes
                .get(start..end)
                .ok_or_else(|| PstError::corrupt("multi-valued item out of range".into()))?
                .to_vec(),
        );
    }
    Ok(out)
}

impl Value {
    /// A value of type `ptype` from its stored bytes.
    ///
    /// # Errors
    /// Bytes too short for the type.
    pub(crate) fn decode(ptype: u16, b: &[u8]) -> Result<Value, PstError> {
        let short = || PstError::corrupt(format!("value of type {ptype:#06x} is too short"));
        let arr8 = || -> Result<[u8; 8], PstError> {
            let s = b.get(..8).ok_or_else(short)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Ok(a)
        };
        let arr4 = || -> Result<[u8; 4], PstError> {
            let s = b.get(..4).ok_or_else(short)?;
            Ok([s[0], s[1], s[2], s[3]])
        };
        Ok(match ptype {
            0x0002 => Value::I16(i16::from_le_bytes([
                *b.first().ok_or_else(short)?,
                *b.get(1).ok_or_else(short)?,
            ])),
            0x0003 => Value::I32(i32::from_le_bytes(arr4()?)),
            0x0004 => Value::F64(f64::from(f32::from_le_bytes(arr4()?))),
            0x0005 | 0x0007 => Value::F64(f64::from_le_bytes(arr8()?)),
            0x0006 | 0x0014 => Value::I64(i64::from_le_bytes(arr8()?)),
            0x000A => Value::Error(u32::from_le_bytes(arr4()?)),
            0x000B => Value::Bool(*b.first().ok_or_else(short)? != 0),
            0x0040 => Value::Time(i64::from_le_bytes(arr8()?)),
            0x001E => Value::String8(until_nul(b)),
            0x001F => Value::Unicode(utf16(b)),
            0x0048 => {
                let s = b.get(..16).ok_or_else(short)?;
                let mut g = [0u8; 16];
                g.copy_from_slice(s);
                Value::Guid(g)
            }
            0x0102 => Value::Binary(b.to_vec()),
            0x000D => {
                let nid = u32::from_le_bytes(arr4()?);
                let size = b
                    .get(4..8)
                    .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
                Value::Object(nid, size)
            }
            0x101F => Value::MultiUnicode(multi(b)?.iter().map(|s| utf16(s)).collect()),
            0x101E => Value::MultiString8(multi(b)?.iter().map(|s| until_nul(s)).collect()),
            0x1102 => Value::MultiBinary(multi(b)?),
            other => Value::Other(other, b.to_vec()),
        })
    }

    /// The value as text: Unicode as it is, String8 decoded with `codepage`.
    pub fn text(&self, codepage: &'static Encoding) -> Option<String> {
        match self {
            Value::Unicode(s) => Some(s.clone()),
            Value::String8(b) => Some(codepage.decode_without_bom_handling(b).0.into_owned()),
            _ => None,
        }
    }

    /// The value as an integer (I16, I32, I64, Bool).
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::I16(v) => Some(i64::from(*v)),
            Value::I32(v) => Some(i64::from(*v)),
            Value::I64(v) => Some(*v),
            Value::Bool(v) => Some(i64::from(*v)),
            _ => None,
        }
    }

    /// The value as a date (PtypTime).
    pub fn time(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::Time(ft) => filetime(*ft),
            _ => None,
        }
    }

    /// The value's bytes (Binary, String8).
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Binary(b) | Value::String8(b) => Some(b),
            _ => None,
        }
    }

    /// The value as a list of strings (multi-valued strings, or one string).
    pub fn texts(&self, codepage: &'static Encoding) -> Vec<String> {
        match self {
            Value::MultiUnicode(v) => v.clone(),
            Value::MultiString8(v) => v
                .iter()
                .map(|b| codepage.decode_without_bom_handling(b).0.into_owned())
                .collect(),
            other => other.text(codepage).into_iter().collect(),
        }
    }
}

/// A FILETIME as a UTC date; `None` for 0 and values out of chrono's range.
pub fn filetime(ft: i64) -> Option<DateTime<Utc>> {
    if ft <= 0 {
        return None;
    }
    // 1601-01-01 to 1970-01-01 in 100 ns intervals.
    const EPOCH_DIFF: i64 = 116_444_736_000_000_000;
    let since_unix = ft - EPOCH_DIFF;
    let secs = since_unix.div_euclid(10_000_000);
    let nanos = (since_unix.rem_euclid(10_000_000) * 100) as u32;
    DateTime::from_timestamp(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_by_type() {
        assert_eq!(
            Value::decode(0x0003, &7i32.to_le_bytes()).ok(),
            Some(Value::I32(7))
        );
        assert_eq!(Value::decode(0x000B, &[1]).ok(), Some(Value::Bool(true)));
        let s: Vec<u8> = "Hé\0".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(
            Value::decode(0x001F, &s).ok(),
            Some(Value::Unicode("Hé".into()))
        );
        assert_eq!(
            Value::decode(0x001E, b"abc\0").ok(),
            Some(Value::String8(b"abc".to_vec()))
        );
        assert!(Value::decode(0x0003, &[1, 2]).is_err());
        // Two strings: count, two offsets, then the data.
        let mut mv = Vec::new();
        mv.extend(2u32.to_le_bytes());
        mv.extend(12u32.to_le_bytes());
        mv.extend(16u32.to_le_bytes());
        mv.extend("ab".encode_utf16().flat_map(u16::to_le_bytes));
        mv.extend("c".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(
            Value::decode(0x101F, &mv).ok(),
            Some(Value::MultiUnicode(vec!["ab".into(), "c".into()]))
        );
    }

    #[test]
    fn string8_uses_the_code_page() {
        let sjis = encoding_rs::SHIFT_JIS;
        let v = Value::String8(vec![0x93, 0xfa, 0x96, 0x7b]);
        assert_eq!(v.text(sjis).as_deref(), Some("日本"));
    }

    #[test]
    fn filetimes_become_dates() {
        // 2009-02-13 23:31:30 UTC = unix 1234567890.
        let ft = 116_444_736_000_000_000 + 1_234_567_890 * 10_000_000;
        assert_eq!(filetime(ft).map(|d| d.timestamp()), Some(1_234_567_890));
        assert_eq!(filetime(0), None);
    }
}
