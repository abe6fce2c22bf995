//! The end-to-end corpus: every edge case a migrator must carry, in about 200 messages.
//!
//! What it holds (tests rely on these facts; `corpus::tests` checks them):
//! * folders: INBOX; the special-use Sent, Drafts, Trash and an empty Junk; nested
//!   `Archive/2023/Q1`; non-ASCII `Отправленные`, `Entwürfe/Ärger`, `日本語`; `&` in
//!   `R&D` and `Tom & Jerry`; spaces in `Old Projects`; parents listed before children;
//! * flags: every system flag (`\Seen \Answered \Flagged \Deleted \Draft`) and the
//!   keywords `$Forwarded`, `$Label1`, `Project_X`;
//! * INTERNALDATEs from 1998 to 2026 in offsets from -08:00 to +13:00;
//! * in INBOX: messages without Message-ID, an exact duplicate (same bytes, flags and
//!   date twice), two different messages sharing one Message-ID, lines starting with
//!   `.` and `From ` (a lone `.` line too), an 8-bit UTF-8 body, a base64 text body,
//!   RFC 2047 subjects;
//! * three big attachments of 2, 4 and 6 MB divided by `scale` (INBOX, `Archive/2023/Q1`,
//!   `R&D`).

use chrono::{DateTime, FixedOffset};

use super::mime::{self, Body, Headers};
use super::prng::Rng;
use super::{Corpus, Message, at, ordinary, random_date, random_flags};

/// The folders and how many ordinary messages each gets (besides the special ones).
const FOLDERS: &[(&str, usize)] = &[
    ("INBOX", 60),
    ("Sent", 25),
    ("Drafts", 5),
    ("Trash", 8),
    ("Junk", 0),
    ("Archive", 5),
    ("Archive/2023", 10),
    ("Archive/2023/Q1", 15),
    ("Archive/2024", 10),
    ("Отправленные", 8),
    ("Entwürfe", 4),
    ("Entwürfe/Ärger", 6),
    ("日本語", 6),
    ("R&D", 10),
    ("Tom & Jerry", 5),
    ("Old Projects", 8),
];

/// The standard end-to-end corpus for `seed`.
///
/// `scale` makes the big attachments smaller: they are 2, 4 and 6 MB divided by
/// `scale` (0 counts as 1), so `standard(seed, 1)` is about 14 MB and
/// `standard(seed, 16)` about 1.5 MB; everything else stays the same.
pub fn standard(seed: u64, scale: usize) -> Corpus {
    let scale = scale.max(1);
    let mut folders = Vec::with_capacity(FOLDERS.len());
    for (i, &(path, count)) in FOLDERS.iter().enumerate() {
        let mut rng = Rng::new(seed, 1000 + i as u64);
        let mut messages: Vec<Message> = (0..count)
            .map(|_| {
                let size = rng_size(&mut rng);
                ordinary(&mut rng, path, size)
            })
            .collect();
        match path {
            "INBOX" => {
                inbox_specials(&mut rng, &mut messages, scale);
            }
            "Archive/2023/Q1" => {
                let date = at(1_675_000_000, 3600); // 2023-01-29, +01:00
                messages.push(big(&mut rng, 4, scale, date, "Q1 figures (full export)"));
            }
            "R&D" => {
                let date = at(1_700_000_000, -28_800); // 2023-11-14, -08:00
                messages.push(big(
                    &mut rng,
                    6,
                    scale,
                    date,
                    "R&D: prototype firmware image",
                ));
            }
            "Drafts" => {
                for m in &mut messages {
                    ensure(&mut m.flags, "\\Draft");
                }
            }
            "Отправленные" | "Entwürfe/Ärger" | "日本語" => {
                let date = random_date(&mut rng);
                let headers =
                    Headers::new(&mut rng, date, &format!("{path}: заметки / Notizen / メモ"));
                let lines = mime::UTF8_LINES.iter().map(|l| (*l).to_owned()).collect();
                let body = mime::render(&mut rng, &headers, &Body::EightBit { lines });
                messages.push(Message {
                    body,
                    flags: vec!["\\Seen".to_owned()],
                    internal_date: date,
                });
            }
            _ => {}
        }
        folders.push((path.to_owned(), messages));
    }
    Corpus { folders }
}

/// Ordinary sizes in the standard corpus: 1-40 KB, now and then up to 200 KB.
fn rng_size(rng: &mut Rng) -> usize {
    if rng.percent(10) {
        rng.between(40_000, 200_000)
    } else {
        rng.between(1_000, 40_000)
    }
}

fn ensure(flags: &mut Vec<String>, flag: &str) {
    if !flags.iter().any(|f| f == flag) {
        flags.push(flag.to_owned());
    }
}

/// A message with a base64 attachment of `mb` MB / `scale`.
fn big(
    rng: &mut Rng,
    mb: usize,
    scale: usize,
    date: DateTime<FixedOffset>,
    subject: &str,
) -> Message {
    let headers = Headers::new(rng, date, subject);
    let body = Body::Attachment {
        bytes: mb * 1024 * 1024 / scale,
        name: format!("big-{mb}mb.bin"),
        mime: "application/octet-stream".to_owned(),
    };
    Message {
        body: mime::render(rng, &headers, &body),
        flags: vec!["\\Seen".to_owned()],
        internal_date: date,
    }
}

/// The INBOX edge cases, appended after its ordinary messages.
fn inbox_specials(rng: &mut Rng, messages: &mut Vec<Message>, scale: usize) {
    // Pinned flag sets and dates, so every flag, keyword, and the years 1998 and 2026
    // appear whatever the seed.
    let pinned: [(&[&str], i64, i32); 8] = [
        (&["\\Seen"], 889_900_000, -28_800),         // 1998-03-14, -08:00
        (&["\\Seen", "\\Answered"], 946_684_799, 0), // 1999-12-31 23:59:59Z
        (&["\\Flagged"], 1_234_567_890, 19_800),     // 2009-02-14, +05:30
        (&["\\Seen", "\\Deleted"], 1_300_000_000, -14_400), // 2011-03-13, -04:00
        (&["\\Draft"], 1_500_000_000, 34_200),       // 2017-07-14, +09:30
        (&["\\Seen", "$Forwarded"], 1_600_000_000, 7200), // 2020-09-13, +02:00
        (&["$Label1", "Project_X"], 1_767_225_600, 46_800), // 2026-01-01, +13:00
        (&[], 1_780_000_000, 32_400),                // 2026-05-28, +09:00
    ];
    for (i, (flags, secs, offset)) in pinned.into_iter().enumerate() {
        if let Some(m) = messages.get_mut(i) {
            m.flags = flags.iter().map(|f| (*f).to_owned()).collect();
            m.internal_date = at(secs, offset);
        }
    }

    let special = |rng: &mut Rng, subject: &str, body: Body, with_id: bool| {
        let date = random_date(rng);
        let mut headers = Headers::new(rng, date - chrono::Duration::seconds(30), subject);
        if !with_id {
            headers.message_id = None;
        }
        let flags = random_flags(rng, "INBOX");
        Message {
            body: mime::render(rng, &headers, &body),
            flags,
            internal_date: date,
        }
    };
    let plain = |bytes: usize, lines: &[&str]| Body::Plain {
        bytes,
        lines: lines.iter().map(|l| (*l).to_owned()).collect(),
    };

    // Messages without Message-ID (old clients, some automated senders).
    for n in 0..3 {
        messages.push(special(
            rng,
            &format!("No Message-ID here ({n})"),
            plain(800 * (n + 1), &[]),
            false,
        ));
    }
    // An exact duplicate: the same bytes, flags and date twice in one folder.
    let dup = special(rng, "Sent twice by mistake", plain(2_000, &[]), true);
    messages.push(dup.clone());
    messages.push(dup);
    // Two different messages sharing one Message-ID (broken list software).
    let shared_id = mime::message_id(rng);
    for variant in ["first", "second"] {
        let date = random_date(rng);
        let mut headers = Headers::new(rng, date, &format!("Same Message-ID, {variant} message"));
        headers.message_id = Some(shared_id.clone());
        let body = mime::render(
            rng,
            &headers,
            &plain(1_500, &[&format!("This is the {variant} one.")]),
        );
        messages.push(Message {
            body,
            flags: vec!["\\Seen".to_owned()],
            internal_date: date,
        });
    }
    // Lines starting with `.` and `From ` (dot-stuffing, mbox quoting).
    messages.push(special(
        rng,
        "Dots and From lines",
        plain(600, mime::TRICKY_LINES),
        true,
    ));
    // 8-bit body, base64 body, non-ASCII subjects (RFC 2047 encoded-words).
    let utf8 = mime::UTF8_LINES.iter().map(|l| (*l).to_owned()).collect();
    messages.push(special(
        rng,
        "Übersicht — квартальный отчёт",
        Body::EightBit { lines: utf8 },
        true,
    ));
    let text = mime::UTF8_LINES.join("\r\n");
    messages.push(special(
        rng,
        "日本語の件名 (base64 body)",
        Body::Base64Text { text },
        true,
    ));
    messages.push(special(
        rng,
        "Newsletter",
        Body::Alternative { bytes: 6_000 },
        true,
    ));
    // A big attachment.
    messages.push(big(
        rng,
        2,
        scale,
        at(1_710_000_000, 0),
        "Scan of the signed contract",
    ));
}
