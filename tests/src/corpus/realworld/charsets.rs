//! Charset shapes: ISO-8859-1 quoted-printable, Windows-1252 8-bit, ISO-2022-JP,
//! Shift_JIS, GB2312, Big5 and EUC-KR bodies with RFC 2047 subjects and names, raw 8-bit
//! header bytes (UTF-8 and Latin-1), and RFC 2231 file names (continuations included).
//!
//! The text of each shape is written here in Unicode; its bytes come from `encoding_rs`
//! (or hand-written percent escapes), its expectation is the Unicode text itself.

use super::build::{
    Cte, Entity, blob, encode, encoded_word_q, encoded_words_b, message, percent_utf8, top,
};
use super::structure::{OWNER, note, olivia, to_owner};
use super::{Att, Shape, at, named, rfc5322};

/// One legacy-charset letter: subject, sender name and body in `charset`.
struct Letter {
    shape: &'static str,
    /// MIME charset name as mailers write it.
    charset: &'static str,
    subject: &'static str,
    from_name: &'static str,
    from: &'static str,
    /// Lines of the body (joined with CRLF).
    lines: &'static [&'static str],
    /// `text/plain` or `text/html` (then each line is a paragraph).
    html: bool,
    cte: Cte,
    date: (i64, i32),
}

const LETTERS: &[Letter] = &[
    Letter {
        shape: "iso-8859-1-qp",
        charset: "ISO-8859-1",
        subject: "Résumé der Sitzung über Größen",
        from_name: "Jürgen Müller",
        from: "juergen@beispiel.example",
        lines: &[
            "Grüße aus Köln! Die Übersicht für März liegt bei.",
            "Mit freundlichen Grüßen, Jürgen",
        ],
        html: false,
        cte: Cte::QuotedPrintable,
        date: (1_483_228_800, 3600),
    },
    Letter {
        shape: "windows-1252-8bit",
        charset: "windows-1252",
        subject: "Angebot: 25 € – „gültig“ bis Freitag",
        from_name: "François Pérez",
        from: "francois@exemple.example",
        lines: &[
            "Preis: 25 € – „Angebot“ gilt bis Freitag…",
            "Merci et à bientôt — François",
        ],
        html: false,
        cte: Cte::EightBit,
        date: (1_514_764_800, 3600),
    },
    Letter {
        shape: "iso-2022-jp",
        charset: "ISO-2022-JP",
        subject: "会議の議事録について（第３回）",
        from_name: "山田 太郎",
        from: "yamada@rei.example.jp",
        lines: &[
            "山田です。",
            "来週の会議の議事録を送ります。",
            "よろしくお願いします。",
        ],
        html: false,
        cte: Cte::SevenBit,
        date: (1_546_300_800, 32_400),
    },
    Letter {
        shape: "shift-jis",
        charset: "Shift_JIS",
        subject: "見積書の送付について",
        from_name: "佐藤 花子",
        from: "sato@mitsumori.example.jp",
        lines: &["お世話になっております。", "見積書を添付いたします。"],
        html: false,
        cte: Cte::Base64,
        date: (1_577_836_800, 32_400),
    },
    Letter {
        shape: "gb2312",
        charset: "GB2312",
        subject: "第三季度报告",
        from_name: "王小明",
        from: "wang@baogao.example.cn",
        lines: &["您好，附件是第三季度的报告。", "谢谢！"],
        html: true,
        cte: Cte::Base64,
        date: (1_609_459_200, 28_800),
    },
    Letter {
        shape: "big5",
        charset: "Big5",
        subject: "會議通知：明天下午",
        from_name: "陳大文",
        from: "chen@huiyi.example.tw",
        lines: &["各位同事：", "明天下午三點開會。"],
        html: false,
        cte: Cte::EightBit,
        date: (1_640_995_200, 28_800),
    },
    Letter {
        shape: "euc-kr",
        charset: "EUC-KR",
        subject: "회의 안내 드립니다",
        from_name: "김철수",
        from: "kim@hoeui.example.kr",
        lines: &["안녕하세요.", "내일 회의는 오후 3시입니다."],
        html: false,
        cte: Cte::Base64,
        date: (1_672_531_200, 32_400),
    },
];

pub(super) fn shapes() -> Vec<Shape> {
    let mut out: Vec<Shape> = LETTERS.iter().map(letter).collect();
    out.extend([raw_utf8_headers(), raw_latin1_headers(), rfc2231_names()]);
    out
}

fn letter(l: &Letter) -> Shape {
    let date = at(l.date.0, l.date.1);
    let id = format!("{}.1@charsets.example", l.shape);
    let flags = ["\\Seen"];
    // Latin charsets get "Q" words as their mailers write them; the rest "B".
    let word = |s: &str| {
        if l.charset.starts_with("ISO-8859") {
            encoded_word_q(l.charset, s)
        } else {
            encoded_words_b(l.charset, s)
        }
    };
    let text = if l.html {
        let paragraphs: String = l.lines.iter().map(|p| format!("<p>{p}</p>\r\n")).collect();
        format!("<html><body>\r\n{paragraphs}</body></html>\r\n")
    } else {
        l.lines.iter().map(|p| format!("{p}\r\n")).collect()
    };
    let subtype = if l.html { "html" } else { "plain" };
    let entity = Entity::leaf(
        &format!("text/{subtype}; charset=\"{}\"", l.charset),
        l.cte,
        &[],
        &encode(l.charset, &text),
    );
    let mut parts = vec![entity];
    let mut atts = Vec::new();
    if l.shape == "shift-jis" {
        // Japanese mailers put RFC 2047 words in the name parameters (not RFC 2231).
        let bytes = blob(77, b"%PDF-1.5\n", 9_876);
        let name = encoded_words_b(l.charset, "見積書.pdf");
        parts.push(Entity::file("application/pdf", &name, &bytes));
        atts.push(Att::file("見積書.pdf", &bytes, Some(false)));
    }
    let entity = if parts.len() == 1 {
        parts.remove(0)
    } else {
        Entity::multi("mixed", "", &[], parts)
    };
    let headers = top(&[
        ("From", &format!("{} <{}>", word(l.from_name), l.from)),
        ("To", OWNER),
        ("Subject", &word(l.subject)),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ]);
    let mut e = to_owner(
        Some(&id),
        l.subject,
        named(l.from_name, l.from),
        date,
        &flags,
    );
    e.phrases = l.lines.iter().map(|p| (*p).to_owned()).collect();
    e.attachments = atts;
    note(l.shape, message(&headers, &entity), &flags, date, e)
}

/// Subject and From as raw UTF-8 bytes (RFC 6532 style, or a sloppy mailer).
fn raw_utf8_headers() -> Shape {
    let date = at(1_680_000_000, 7200);
    let (id, subject, flags) = (
        "raw-utf8.1@beispiel.example",
        "Überweisung für März — Zahlungsbestätigung",
        ["\\Seen"],
    );
    let headers = top(&[
        ("From", "Jürgen Weiß <juergen.weiss@beispiel.example>"),
        ("To", OWNER),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ]);
    let entity = Entity::leaf(
        "text/plain; charset=utf-8",
        Cte::EightBit,
        &[],
        "Die Zahlung über 1.250 € ist eingegangen.\r\n".as_bytes(),
    );
    let mut e = to_owner(
        Some(id),
        subject,
        named("Jürgen Weiß", "juergen.weiss@beispiel.example"),
        date,
        &flags,
    );
    e.phrases = vec!["Die Zahlung über 1.250 € ist eingegangen.".into()];
    note(
        "raw-8bit-utf8-headers",
        message(&headers, &entity),
        &flags,
        date,
        e,
    )
}

/// Subject and From as raw Windows-1252 bytes (not UTF-8): only a Latin-1 /
/// Windows-1252 fallback reads them right.
fn raw_latin1_headers() -> Shape {
    let date = at(1_690_000_000, 3600);
    let (id, subject, flags) = (
        "raw-latin1.1@exemple.example",
        "Réunion à Genève – café offert",
        ["\\Seen"],
    );
    let mut headers = vec![
        [
            b"From: ".as_slice(),
            &encode("windows-1252", "Hélène Dupré"),
            b" <helene@exemple.example>",
        ]
        .concat(),
        format!("To: {OWNER}").into_bytes(),
        [b"Subject: ".as_slice(), &encode("windows-1252", subject)].concat(),
    ];
    headers.extend(top(&[
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ]));
    let entity = Entity::leaf(
        "text/plain; charset=iso-8859-1",
        Cte::EightBit,
        &[],
        &encode("iso-8859-1", "Réunion à Genève demain à 10 h.\r\n"),
    );
    let mut e = to_owner(
        Some(id),
        subject,
        named("Hélène Dupré", "helene@exemple.example"),
        date,
        &flags,
    );
    e.phrases = vec!["Réunion à Genève demain à 10 h.".into()];
    note(
        "raw-8bit-latin1-headers",
        message(&headers, &entity),
        &flags,
        date,
        e,
    )
}

/// File names in RFC 2231 form: UTF-8 and ISO-8859-1 with percent escapes, and a long
/// one in continuations (`filename*0*`, `filename*1*`, `filename*2`); plus Outlook's
/// RFC 2047 words in a quoted `name` (not standard, everywhere).
fn rfc2231_names() -> Shape {
    let date = at(1_700_000_000, -18_000);
    let (id, subject, flags) = (
        "rfc2231.1@mail.contoso.example",
        "Files with international names",
        ["\\Seen"],
    );
    let euro = "€ rates übersicht.pdf";
    let long = "Geschäftsbericht 2024 – endgültige Fassung.pdf";
    let outlook = "Übersicht Größen.xlsx";
    let latin = "résumé.txt";
    let (b1, b2, b3) = (
        blob(31, b"%PDF-1.6\n", 3_001),
        blob(32, b"%PDF-1.6\n", 4_002),
        blob(33, b"PK\x03\x04", 5_003),
    );
    let b4 = encode("iso-8859-1", "Curriculum vitæ de Noël Brontë\r\n");
    let long_pieces = ["Geschäftsbericht 2024 ", "– endgültige "];
    let parts = vec![
        Entity::leaf(
            "text/plain; charset=us-ascii",
            Cte::SevenBit,
            &[],
            b"Four files, four ways to name them.\r\n",
        ),
        Entity::leaf(
            "application/pdf",
            Cte::Base64,
            &[format!(
                "Content-Disposition: attachment;\r\n filename*=UTF-8''{}",
                percent_utf8(euro)
            )],
            &b1,
        ),
        Entity::leaf(
            "application/pdf",
            Cte::Base64,
            &[format!(
                "Content-Disposition: attachment;\r\n filename*0*=UTF-8''{};\r\n filename*1*={};\r\n filename*2=\"Fassung.pdf\"",
                percent_utf8(long_pieces[0]),
                percent_utf8(long_pieces[1])
            )],
            &b2,
        ),
        Entity::leaf(
            &format!(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet;\r\n name=\"{}\"",
                encoded_words_b("utf-8", outlook)
            ),
            Cte::Base64,
            &[format!(
                "Content-Disposition: attachment;\r\n filename=\"{}\"",
                encoded_words_b("utf-8", outlook)
            )],
            &b3,
        ),
        Entity::leaf(
            "text/plain; charset=iso-8859-1",
            Cte::Base64,
            &["Content-Disposition: attachment; filename*=ISO-8859-1''r%E9sum%E9.txt".to_owned()],
            &b4,
        ),
    ];
    let mut e = to_owner(Some(id), subject, olivia(), date, &flags);
    e.phrases = vec!["Four files, four ways to name them.".into()];
    e.attachments = vec![
        Att::file(euro, &b1, Some(false)),
        Att::file(long, &b2, Some(false)),
        Att::file(outlook, &b3, Some(false)),
        Att::file(latin, &b4, Some(false)),
    ];
    let headers = top(&[
        ("From", "Olivia Sender <olivia@contoso.example>"),
        ("To", OWNER),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ]);
    note(
        "rfc2231-names",
        message(&headers, &Entity::multi("mixed", "", &[], parts)),
        &flags,
        date,
        e,
    )
}
