//! RTF bodies: decompression (MS-OXRTFCP, crate `compressed-rtf`) and de-encapsulation
//! (MS-OXRTFEX): Outlook often stores an HTML mail only as RTF that encapsulates the
//! HTML (`\fromhtml1`), and a plain-text one as `\fromtext`.
//!
//! De-encapsulation (MS-OXRTFEX §2.1.3): the HTML is the content of every
//! `{\*\htmltag<N> ...}` group plus the document text outside them, except what lies
//! between `\htmlrtf` and `\htmlrtf0` (RTF-only rendering) and in other destinations
//! (font and colour tables, `{\* ...}` groups). `\par` is a line break, `\tab` a tab,
//! `\'hh` a byte in the document's code page (`\ansicpgN`), `\uN` a Unicode character
//! (followed by `\ucN` fallback characters, skipped). No crate does this; it is written
//! here against the specification.

use encoding_rs::Encoding;

/// Decompresses PidTagRtfCompressed (0x1009): the RTF as bytes (each a Latin-1 char).
///
/// # Errors
/// A header that is not MS-OXRTFCP's, a CRC mismatch, a bad dictionary reference.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>, String> {
    if data.len() < 16 {
        return Err(format!(
            "compressed RTF of {} bytes is too short",
            data.len()
        ));
    }
    let raw = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
    let kind = &data[8..12];
    if kind == b"MELA" {
        // Uncompressed (0x414C454D): the crate slices without checking the size.
        return data
            .get(16..16 + raw)
            .or_else(|| data.get(16..))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "uncompressed RTF shorter than its header says".to_owned());
    }
    let text = compressed_rtf::decompress_rtf(data).map_err(|e| e.to_string())?;
    // The crate returns each byte as one char (U+0000..U+00FF).
    Ok(text.chars().map(|c| c as u32 as u8).collect())
}

/// What the RTF encapsulates, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `\fromhtml1`: HTML.
    Html,
    /// `\fromtext`: plain text.
    Text,
    /// Native RTF.
    Rtf,
}

/// The origin an RTF document declares in its header (the first few control words).
pub fn origin(rtf: &[u8]) -> Origin {
    let head = &rtf[..rtf.len().min(512)];
    let has = |w: &[u8]| head.windows(w.len()).any(|x| x == w);
    if has(b"\\fromhtml1") {
        Origin::Html
    } else if has(b"\\fromtext") {
        Origin::Text
    } else {
        Origin::Rtf
    }
}

/// The HTML an `\fromhtml1` document encapsulates.
pub fn html(rtf: &[u8]) -> String {
    walk(rtf, true)
}

/// The text of a document (for `\fromtext` and native RTF): what it shows, without
/// formatting.
pub fn text(rtf: &[u8]) -> String {
    walk(rtf, false)
}

/// Where a group's content goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// Document text.
    Body,
    /// `{\*\htmltag}`: HTML verbatim.
    HtmlTag,
    /// A destination whose content is not output.
    Skip,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    dest: Dest,
    /// Inside `\htmlrtf` ... `\htmlrtf0`.
    suppressed: bool,
    /// `\ucN`: fallback characters after `\uN`.
    uc: usize,
}

/// Output with bytes (`\'hh`, text) decoded in the document's code page.
struct Out {
    text: String,
    bytes: Vec<u8>,
    cp: &'static Encoding,
}

impl Out {
    fn flush(&mut self) {
        if !self.bytes.is_empty() {
            self.text
                .push_str(&self.cp.decode_without_bom_handling(&self.bytes).0);
            self.bytes.clear();
        }
    }
    fn byte(&mut self, b: u8) {
        self.bytes.push(b);
    }
    fn str(&mut self, s: &str) {
        self.flush();
        self.text.push_str(s);
    }
}

fn walk(rtf: &[u8], html_mode: bool) -> String {
    let mut out = Out {
        text: String::new(),
        bytes: Vec::new(),
        cp: encoding_rs::WINDOWS_1252,
    };
    let mut stack: Vec<Group> = Vec::new();
    let mut cur = Group {
        dest: Dest::Body,
        suppressed: false,
        uc: 1,
    };
    // After `{`: whether the next control word starts a destination (`\*` seen).
    let mut group_start = false;
    let mut starred = false;
    let mut skip_chars = 0usize;
    let mut i = 0;
    let emit = |cur: &Group| match cur.dest {
        Dest::HtmlTag => html_mode,
        Dest::Body => !cur.suppressed,
        Dest::Skip => false,
    };
    while i < rtf.len() {
        let c = rtf[i];
        match c {
            b'{' => {
                stack.push(cur);
                group_start = true;
                starred = false;
                skip_chars = 0;
                i += 1;
                continue;
            }
            b'}' => {
                cur = stack.pop().unwrap_or(cur);
                group_start = false;
                i += 1;
                continue;
            }
            b'\\' => {
                let (word, param, next) = control(rtf, i + 1);
                i = next;
                let was_start = group_start;
                group_start = false;
                match word.as_slice() {
                    b"*" => {
                        starred = true;
                        group_start = was_start;
                        continue;
                    }
                    b"'" => {
                        let hex = rtf.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                        let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                        i += 2;
                        if skip_chars > 0 {
                            skip_chars -= 1;
                        } else if let Some(b) = byte
                            && emit(&cur)
                        {
                            out.byte(b);
                        }
                        continue;
                    }
                    _ => {}
                }
                if was_start {
                    let w = word.as_slice();
                    let is_tag = w == b"htmltag";
                    if is_tag && starred {
                        cur.dest = Dest::HtmlTag;
                        starred = false;
                        continue;
                    }
                    if starred
                        || matches!(
                            w,
                            b"fonttbl"
                                | b"colortbl"
                                | b"stylesheet"
                                | b"info"
                                | b"pict"
                                | b"header"
                                | b"footer"
                                | b"object"
                                | b"listtable"
                                | b"listoverridetable"
                                | b"rsidtbl"
                                | b"xmlnstbl"
                                | b"generator"
                        )
                    {
                        cur.dest = Dest::Skip;
                        starred = false;
                        continue;
                    }
                }
                starred = false;
                match word.as_slice() {
                    b"ansicpg" => {
                        if let Some(e) = param
                            .and_then(|p| u16::try_from(p).ok())
                            .and_then(codepage::to_encoding)
                        {
                            out.flush();
                            out.cp = e;
                        }
                    }
                    b"htmlrtf" => cur.suppressed = param != Some(0),
                    b"uc" => cur.uc = param.and_then(|p| usize::try_from(p).ok()).unwrap_or(1),
                    b"u" => {
                        if emit(&cur) {
                            let n = param.unwrap_or(0);
                            let n = if n < 0 { n + 65536 } else { n };
                            let ch = u32::try_from(n).ok().and_then(char::from_u32);
                            out.str(&ch.unwrap_or('\u{fffd}').to_string());
                        }
                        skip_chars = cur.uc;
                    }
                    b"par" | b"line" if emit(&cur) => out.str("\r\n"),
                    b"tab" if emit(&cur) => out.str("\t"),
                    b"lquote" if emit(&cur) => out.str("\u{2018}"),
                    b"rquote" if emit(&cur) => out.str("\u{2019}"),
                    b"ldblquote" if emit(&cur) => out.str("\u{201c}"),
                    b"rdblquote" if emit(&cur) => out.str("\u{201d}"),
                    b"bullet" if emit(&cur) => out.str("\u{2022}"),
                    b"endash" if emit(&cur) => out.str("\u{2013}"),
                    b"emdash" if emit(&cur) => out.str("\u{2014}"),
                    b"~" if emit(&cur) => out.str("\u{a0}"),
                    b"{" | b"}" | b"\\" if emit(&cur) => out.byte(word[0]),
                    _ => {}
                }
                continue;
            }
            b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        group_start = false;
        starred = false;
        if skip_chars > 0 {
            skip_chars -= 1;
        } else if emit(&cur) {
            out.byte(c);
        }
        i += 1;
    }
    out.flush();
    out.text
}

/// The control word or symbol at `at` (just after the backslash): its name, its
/// numeric parameter, and where the next token starts (the space that delimits a
/// control word is consumed).
fn control(rtf: &[u8], at: usize) -> (Vec<u8>, Option<i64>, usize) {
    let Some(&first) = rtf.get(at) else {
        return (Vec::new(), None, at);
    };
    if !first.is_ascii_alphabetic() {
        return (vec![first], None, at + 1);
    }
    let mut i = at;
    while rtf.get(i).is_some_and(u8::is_ascii_alphabetic) {
        i += 1;
    }
    let word = rtf[at..i].to_vec();
    let num_start = i;
    if rtf.get(i) == Some(&b'-') {
        i += 1;
    }
    while rtf.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let param = std::str::from_utf8(&rtf[num_start..i])
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    if rtf.get(i) == Some(&b' ') {
        i += 1;
    }
    (word, param, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MS-OXRTFEX §3.1's example, shortened: the HTML comes back as it was written.
    const ENCAPSULATED: &str = r#"{\rtf1\ansi\ansicpg1252\fromhtml1 \deff0{\fonttbl
{\f0\fswiss Arial;}
{\f1\fmodern Courier New;}}
{\colortbl\red0\green0\blue0;\red0\green0\blue255;}
\uc1\pard\plain\deftab360 \f0\fs24
{\*\htmltag19 <html>}
{\*\htmltag34 <head>}
{\*\htmltag161 <title>}Hi{\*\htmltag169 </title>}
{\*\htmltag41 </head>}
{\*\htmltag50 <body>}\htmlrtf {\htmlrtf0
{\*\htmltag64 <p>}\htmlrtf {\htmlrtf0 caf\'e9 \{x\} \u8364?\htmlrtf\par\htmlrtf0
{\*\htmltag72 </p>}\htmlrtf }\htmlrtf0
\htmlrtf }\htmlrtf0
{\*\htmltag58 </body>}
{\*\htmltag27 </html>}}"#;

    #[test]
    fn html_is_de_encapsulated() {
        let rtf = ENCAPSULATED.as_bytes();
        assert_eq!(origin(rtf), Origin::Html);
        let html = html(rtf);
        assert_eq!(
            html,
            "<html><head><title>Hi</title></head><body><p>caf\u{e9} {x} \u{20ac}</p></body></html>"
        );
    }

    #[test]
    fn text_skips_tables_and_tags() {
        let rtf = br"{\rtf1\ansi\fromtext{\fonttbl{\f0 Arial;}}Hello\par World\tab!}";
        assert_eq!(origin(rtf), Origin::Text);
        assert_eq!(text(rtf), "Hello\r\nWorld\t!");
        let native = br"{\rtf1\ansi{\*\generator x;}Line \b bold\b0\par}";
        assert_eq!(origin(native), Origin::Rtf);
        assert_eq!(text(native), "Line bold\r\n");
    }

    #[test]
    fn code_pages_decode_escaped_bytes() {
        let rtf =
            br"{\rtf1\ansi\ansicpg932\fromhtml1{\*\htmltag <p>}\'93\'fa\'96\'7b{\*\htmltag </p>}}";
        assert_eq!(html(rtf), "<p>\u{65e5}\u{672c}</p>");
    }

    #[test]
    fn compressed_rtf_round_trips_and_bad_input_is_an_error() {
        let src = r"{\rtf1\ansi\fromtext Hi there\par}";
        let packed = compressed_rtf::compress_rtf(src).expect("compresses");
        assert_eq!(decompress(&packed).expect("decompresses"), src.as_bytes());
        assert!(decompress(b"short").is_err());
        let mut broken = packed.clone();
        let last = broken.len() - 1;
        broken[last] ^= 0xFF;
        assert!(decompress(&broken).is_err());
        // Uncompressed with a size past the end: no panic.
        let mut mela = Vec::new();
        mela.extend(20u32.to_le_bytes());
        mela.extend(1000u32.to_le_bytes());
        mela.extend(b"MELA");
        mela.extend(0u32.to_le_bytes());
        mela.extend(b"{\\rtf1 x}");
        assert_eq!(
            decompress(&mela).expect("taken as far as it goes"),
            b"{\\rtf1 x}"
        );
    }
}
