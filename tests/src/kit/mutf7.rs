//! Modified UTF-7 for IMAP mailbox names (RFC 3501 §5.1.3), private to the kit.
//!
//! The kit must not depend on the code under test for the facts it checks, and
//! `mailhaul_connectors::mutf7` was not there yet when the kit was written; this is a
//! small, independent implementation. Invariants: printable ASCII other than `&`
//! passes through; `&` becomes `&-`; every other run of characters becomes UTF-16BE in
//! base64 with `,` for `/` and no padding, between `&` and `-`. `decode` rejects
//! malformed input instead of panicking (server data is untrusted).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a UTF-8 mailbox name for the wire.
pub(crate) fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn flush(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out.push('-');
    units.clear();
}

/// Decodes a wire mailbox name to UTF-8.
///
/// # Errors
/// On a character outside the base64 alphabet, an unterminated `&` run, leftover bits,
/// or invalid UTF-16 (the error names the input).
pub(crate) fn decode(wire: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after
            .find('-')
            .ok_or_else(|| anyhow::anyhow!("unterminated `&` in mailbox name {wire:?}"))?;
        let run = &after[..end];
        if run.is_empty() {
            out.push('&');
        } else {
            out.push_str(
                &decode_run(run)
                    .map_err(|why| anyhow::anyhow!("bad mailbox name {wire:?}: {why}"))?,
            );
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn decode_run(run: &str) -> Result<String, &'static str> {
    let mut bits = 0u32;
    let mut nbits = 0u32;
    let mut bytes = Vec::new();
    for b in run.bytes() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == b)
            .ok_or("character outside modified base64")?;
        bits = bits << 6 | v as u32;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    if nbits >= 6 || bits != 0 || bytes.len() % 2 != 0 {
        return Err("leftover bits in a modified base64 run");
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| "invalid UTF-16")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_round_trip() {
        let table = [
            ("INBOX", "INBOX"),
            ("R&D", "R&-D"),
            ("Tom & Jerry", "Tom &- Jerry"),
            ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"), // RFC 3501 §5.1.3
            ("Entwürfe/Ärger", "Entw&APw-rfe/&AMQ-rger"),
            ("😀", "&2D3eAA-"),
        ];
        for (utf8, wire) in table {
            assert_eq!(encode(utf8), wire, "encode {utf8}");
            assert_eq!(decode(wire).expect("valid"), utf8, "decode {wire}");
        }
    }

    #[test]
    fn malformed_names_are_errors() {
        for bad in ["&Jjo!-", "&AMQ", "&A-", "&2D0-"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
