//! Attachment shapes: files on Graph's edges (1 KB, either side of 3 MB and 4 MB, 10 MB,
//! and apart the 100 MB one), several files in one message, forwarded messages
//! (`message/rfc822`) with and without a file name.

use super::build::{Cte, Entity, blob, message, top};
use super::structure::{std_expect, std_note, text};
use super::{Att, Embedded, Shape, at, rfc5322};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

pub(super) fn shapes() -> Vec<Shape> {
    let mut out = Vec::new();
    let sizes: [(&'static str, &str, &str, usize, &[u8]); 6] = [
        (
            "attachment-1k",
            "report.pdf",
            "application/pdf",
            KIB,
            b"%PDF-1.4\n",
        ),
        (
            "attachment-under-3mb",
            "scan-under-3mb.pdf",
            "application/pdf",
            3 * MIB - 2 * KIB,
            b"%PDF-1.7\n",
        ),
        (
            "attachment-over-3mb",
            "scan-over-3mb.pdf",
            "application/pdf",
            3 * MIB + 2 * KIB,
            b"%PDF-1.7\n",
        ),
        (
            "attachment-under-4mb",
            "photos-under-4mb.zip",
            "application/zip",
            4 * MIB - 2 * KIB,
            b"PK\x03\x04",
        ),
        (
            "attachment-over-4mb",
            "photos-over-4mb.zip",
            "application/zip",
            4 * MIB + 2 * KIB,
            b"PK\x03\x04",
        ),
        (
            "attachment-10mb",
            "site-visit-10mb.mp4",
            "video/mp4",
            10 * MIB,
            b"\0\0\0\x18ftypmp42",
        ),
    ];
    for (i, (shape, file, content_type, len, magic)) in sizes.into_iter().enumerate() {
        out.push(one_attachment(
            shape,
            i as i64,
            file,
            content_type,
            len,
            magic,
        ));
    }
    out.extend([several_attachments(), forwarded(true), forwarded(false)]);
    out
}

fn one_attachment(
    shape: &'static str,
    i: i64,
    file: &str,
    content_type: &str,
    len: usize,
    magic: &[u8],
) -> Shape {
    let date = at(1_293_840_000 + i * 2_629_800, 3600 * (i as i32 % 5));
    let id = format!("{shape}.1@mail.contoso.example");
    let subject = format!("File: {file}");
    let flags = ["\\Seen"];
    let bytes = blob(1000 + i as u64, magic, len);
    let phrase = format!("Please find {file} attached.");
    let entity = Entity::multi(
        "mixed",
        "",
        &[],
        vec![text(&phrase), Entity::file(content_type, file, &bytes)],
    );
    let mut e = std_expect(&id, &subject, date, &flags);
    e.phrases = vec![phrase];
    e.attachments = vec![Att::file(file, &bytes, Some(false))];
    std_note(shape, &id, &subject, date, &flags, &entity, e)
}

pub(super) fn hundred_megabytes() -> Shape {
    let date = at(1_735_689_600, 3600);
    let (id, subject, flags) = (
        "hundred.1@mail.contoso.example",
        "Full backup (100 MB)",
        ["\\Seen"],
    );
    let bytes = blob(100, b"PK\x03\x04", 100 * MIB);
    let phrase = "The full backup is attached.";
    let entity = Entity::multi(
        "mixed",
        "",
        &[],
        vec![
            text(phrase),
            Entity::file("application/zip", "backup-100mb.zip", &bytes),
        ],
    );
    let mut e = std_expect(id, subject, date, &flags);
    e.phrases = vec![phrase.into()];
    e.attachments = vec![Att::file("backup-100mb.zip", &bytes, Some(false))];
    std_note("attachment-100mb", id, subject, date, &flags, &entity, e)
}

fn several_attachments() -> Shape {
    let date = at(1_325_376_000, 32_400);
    let (id, subject, flags) = (
        "several.1@mail.contoso.example",
        "Contract, figures and photos",
        ["\\Seen", "\\Flagged"],
    );
    let files: [(&str, &str, usize, &[u8]); 3] = [
        (
            "Contract v3.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            20_480,
            b"PK\x03\x04",
        ),
        (
            "figures.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            35_000,
            b"PK\x03\x04",
        ),
        ("photos.zip", "application/zip", 61_111, b"PK\x03\x04"),
    ];
    let mut parts = vec![text("Three files for the signing on Friday.\r\n")];
    let mut atts = Vec::new();
    for (i, (name, ct, len, magic)) in files.into_iter().enumerate() {
        let bytes = blob(2000 + i as u64, magic, len);
        parts.push(Entity::file(ct, name, &bytes));
        atts.push(Att::file(name, &bytes, Some(false)));
    }
    let mut e = std_expect(id, subject, date, &flags);
    e.phrases = vec!["Three files for the signing on Friday.".into()];
    e.attachments = atts;
    let entity = Entity::multi("mixed", "", &[], parts);
    std_note("attachments-several", id, subject, date, &flags, &entity, e)
}

/// A forwarded message as an attachment, with a file name (Outlook's "Forward as
/// attachment" gives one) or without (many clients give none).
fn forwarded(named_file: bool) -> Shape {
    let (name, date) = if named_file {
        ("rfc822-with-name", at(1_356_998_400, -14_400))
    } else {
        ("rfc822-without-name", at(1_388_534_400, 34_200))
    };
    let inner_subject = if named_file {
        "Budget approval for 2025"
    } else {
        "Travel plans for the offsite"
    };
    let inner_phrase = if named_file {
        "The 2025 budget is approved as proposed."
    } else {
        "We fly to Porto on the 12th."
    };
    let inner_date = rfc5322(at(1_350_000_000, 0));
    let inner = message(
        &top(&[
            ("From", "Bob Builder <bob@fabrikam.example>"),
            ("To", "Carol Clerk <carol@fabrikam.example>"),
            ("Subject", inner_subject),
            ("Date", &inner_date),
            ("Message-ID", &format!("<inner.{name}@fabrikam.example>")),
        ]),
        &Entity::leaf(
            "text/plain; charset=us-ascii",
            Cte::SevenBit,
            &[],
            format!("{inner_phrase}\r\n").as_bytes(),
        ),
    );
    let disposition = if named_file {
        "Content-Disposition: attachment; filename=\"Original thread.eml\"".to_owned()
    } else {
        "Content-Disposition: attachment".to_owned()
    };
    let entity = Entity::multi(
        "mixed",
        "",
        &[],
        vec![
            text("Forwarding the original below.\r\n"),
            Entity::leaf("message/rfc822", Cte::SevenBit, &[disposition], &inner),
        ],
    );
    let id = format!("{name}.1@mail.contoso.example");
    let subject = format!("Fw: {inner_subject}");
    let flags = ["\\Seen"];
    let mut e = std_expect(&id, &subject, date, &flags);
    e.phrases = vec!["Forwarding the original below.".into()];
    let mut att = Att::file(
        &if named_file {
            "Original thread.eml".to_owned()
        } else {
            format!("{inner_subject}.eml")
        },
        &inner,
        Some(false),
    );
    att.alt_name = Some(inner_subject.to_owned());
    att.embedded = Some(Embedded {
        subject: inner_subject.to_owned(),
        phrase: inner_phrase.to_owned(),
    });
    e.attachments = vec![att];
    std_note(name, &id, &subject, date, &flags, &entity, e)
}
