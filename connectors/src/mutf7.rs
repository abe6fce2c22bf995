//! Modified UTF-7, the encoding of IMAP mailbox names (RFC 3501 §5.1.3).
//!
//! Printable US-ASCII (0x20..=0x7e) except `&` stands for itself; `&` is written `&-`;
//! every other character is UTF-16 (big-endian), base64-encoded with `,` instead of `/`
//! and without `=` padding, between `&` and `-`.
//!
//! Invariants: [`encode`] and [`decode`] never panic, whatever the input (folder names
//! come from servers we do not control; the `utf7-imap` crate panics on `&Jjo!-`), and
//! `decode(&encode(s)) == Ok(s)` for every string `s`.
//!
//! [`decode`] is strict about everything that would make a name ambiguous (bad base64,
//! non-zero pad bits, lone surrogates, a shift that only encodes printable ASCII, raw
//! 8-bit or control bytes) and lenient about one thing: two shift sequences next to each
//! other (`&AOk-&AOk-`, which a canonical encoder writes as one run) decode as if they
//! were one. Rejecting them would list a real folder under a name nobody can read, for no
//! gain in safety.

use thiserror::Error;

/// Why a mailbox name is not valid modified UTF-7. Positions are byte offsets into the
/// name as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Mutf7Error {
    /// A `&` shift sequence has no closing `-`.
    #[error("shift sequence starting at byte {at} has no closing '-'")]
    Unterminated {
        /// Offset of the `&`.
        at: usize,
    },
    /// A byte inside a shift sequence is not in the modified base64 alphabet.
    #[error("byte 0x{byte:02x} at {at} is not modified base64 (A-Z a-z 0-9 + ,)")]
    BadBase64 {
        /// Offset of the byte.
        at: usize,
        /// The byte.
        byte: u8,
    },
    /// A shift sequence's length does not end on a UTF-16 unit, or its pad bits are set.
    #[error("shift sequence starting at byte {at} has trailing bits that are not zero padding")]
    BadPadding {
        /// Offset of the `&`.
        at: usize,
    },
    /// A shift sequence contains a UTF-16 surrogate without its pair.
    #[error("shift sequence starting at byte {at} contains an unpaired UTF-16 surrogate")]
    LoneSurrogate {
        /// Offset of the `&`.
        at: usize,
    },
    /// A shift sequence encodes only printable ASCII, which must stand for itself.
    #[error("shift sequence starting at byte {at} encodes only printable ASCII")]
    EncodedAscii {
        /// Offset of the `&`.
        at: usize,
    },
    /// A byte outside printable US-ASCII appears outside a shift sequence.
    #[error("byte 0x{byte:02x} at {at} must be inside a '&...-' shift sequence")]
    RawByte {
        /// Offset of the byte.
        at: usize,
        /// The byte.
        byte: u8,
    },
}

/// The modified base64 alphabet: RFC 2045 base64 with `,` in place of `/`.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c)
}

/// Encodes a UTF-8 name as modified UTF-7. Total: every string has an encoding.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut pending: Vec<u16> = Vec::new();
    for c in s.chars() {
        if is_direct(c) {
            flush_shift(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_shift(&mut out, &mut pending);
    out
}

/// Writes `&<base64 of the UTF-16BE units>-` and clears `units`; nothing when empty.
fn flush_shift(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for unit in units.drain(..) {
        acc = (acc << 16) | u32::from(unit);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        // Zero pad bits up to the next sextet; no '=' (RFC 3501 §5.1.3).
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out.push('-');
}

fn sextet(byte: u8) -> Option<u32> {
    let v = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes a modified UTF-7 name to UTF-8.
///
/// # Errors
/// [`Mutf7Error`] when the name is not valid modified UTF-7 (see the module docs for
/// what is rejected and what is tolerated).
pub fn decode(s: &str) -> Result<String, Mutf7Error> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'&' {
            let start = i;
            let end = bytes[start + 1..]
                .iter()
                .position(|&c| c == b'-')
                .map(|p| start + 1 + p)
                .ok_or(Mutf7Error::Unterminated { at: start })?;
            if end == start + 1 {
                out.push('&');
            } else {
                decode_shift(&bytes[start + 1..end], start, &mut out)?;
            }
            i = end + 1;
        } else if (0x20..=0x7e).contains(&b) {
            out.push(char::from(b));
            i += 1;
        } else {
            return Err(Mutf7Error::RawByte { at: i, byte: b });
        }
    }
    Ok(out)
}

/// Decodes the base64 between `&` (at offset `at`) and `-` into `out`.
fn decode_shift(b64: &[u8], at: usize, out: &mut String) -> Result<(), Mutf7Error> {
    let mut units = Vec::with_capacity(b64.len() * 6 / 16);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for (k, &c) in b64.iter().enumerate() {
        let v = sextet(c).ok_or(Mutf7Error::BadBase64 {
            at: at + 1 + k,
            byte: c,
        })?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            units.push(((acc >> bits) & 0xffff) as u16);
            acc &= (1 << bits) - 1;
        }
    }
    // What is left must be fewer bits than one sextet could carry, and all zero;
    // otherwise the run is truncated or carries junk.
    if bits >= 6 || acc != 0 || units.is_empty() {
        return Err(Mutf7Error::BadPadding { at });
    }
    if units.iter().all(|&u| (0x20..=0x7e).contains(&u)) {
        return Err(Mutf7Error::EncodedAscii { at });
    }
    for c in char::decode_utf16(units) {
        out.push(c.map_err(|_| Mutf7Error::LoneSurrogate { at })?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips() {
        for (utf8, wire) in [
            ("INBOX", "INBOX"),
            ("", ""),
            ("&", "&-"),
            ("a&b", "a&-b"),
            ("&&", "&-&-"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("Gelöschte Elemente", "Gel&APY-schte Elemente"),
            ("😀", "&2D3eAA-"),
            ("a😀€b", "a&2D3eACCs-b"),
            ("a😀b€", "a&2D3eAA-b&IKw-"),
            ("tab\there", "tab&AAk-here"),
            ("Brouillons-é", "Brouillons-&AOk-"),
        ] {
            assert_eq!(encode(utf8), wire, "encode {utf8:?}");
            assert_eq!(decode(wire).as_deref(), Ok(utf8), "decode {wire:?}");
        }
    }

    #[test]
    fn table_rejects() {
        for (wire, want) in [
            ("&Jjo!-", Mutf7Error::BadBase64 { at: 4, byte: b'!' }),
            ("&Jjo", Mutf7Error::Unterminated { at: 0 }),
            ("abc&", Mutf7Error::Unterminated { at: 3 }),
            ("&U,BTFw/-", Mutf7Error::BadBase64 { at: 7, byte: b'/' }),
            ("&AGE-", Mutf7Error::EncodedAscii { at: 0 }),
            ("&AGEAYg-", Mutf7Error::EncodedAscii { at: 0 }),
            ("&AOl-", Mutf7Error::BadPadding { at: 0 }),
            ("&AO-", Mutf7Error::BadPadding { at: 0 }),
            ("&A-", Mutf7Error::BadPadding { at: 0 }),
            ("&AOkA-", Mutf7Error::BadPadding { at: 0 }),
            ("&2D0-", Mutf7Error::LoneSurrogate { at: 0 }),
            ("&3gA-", Mutf7Error::LoneSurrogate { at: 0 }),
            ("caf\u{e9}", Mutf7Error::RawByte { at: 3, byte: 0xc3 }),
            ("a\tb", Mutf7Error::RawByte { at: 1, byte: 9 }),
        ] {
            assert_eq!(decode(wire), Err(want), "decode {wire:?}");
        }
    }

    #[test]
    fn adjacent_shifts_are_tolerated() {
        // Canonical is one run (&AOkA6Q-); two adjacent runs still mean the same thing.
        assert_eq!(decode("&AOk-&AOk-").as_deref(), Ok("éé"));
        assert_eq!(encode("éé"), "&AOkA6Q-");
    }

    /// Tiny deterministic xorshift so the property loops need no extra crates.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_strings_round_trip() {
        let pool: Vec<char> =
            "aZ09 &-+,/.~\"\\\tÄéßОтпр台北日本語€😀🎉\u{0}\u{7f}\u{fffd}\u{10ffff}"
                .chars()
                .collect();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = rng.below(12);
            let s: String = (0..len).map(|_| pool[rng.below(pool.len())]).collect();
            let wire = encode(&s);
            assert!(
                wire.bytes().all(|b| (0x20..=0x7e).contains(&b)),
                "{wire:?} is not printable ASCII"
            );
            assert_eq!(decode(&wire).as_deref(), Ok(s.as_str()), "via {wire:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let pool = b"&-AZaz09+,/!BOQEgjo \x80\xff\t";
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut decoded = 0;
        for _ in 0..50_000 {
            let len = rng.below(16);
            let bytes: Vec<u8> = (0..len).map(|_| pool[rng.below(pool.len())]).collect();
            let s = String::from_utf8_lossy(&bytes);
            if let Ok(utf8) = decode(&s) {
                decoded += 1;
                // Whatever decodes must survive a canonical round trip.
                assert_eq!(decode(&encode(&utf8)).as_deref(), Ok(utf8.as_str()));
            }
        }
        assert!(decoded > 1000, "the generator should hit valid names too");
    }
}
