//! Structure shapes: alternative, related with cid images (with and without
//! Content-Disposition), Apple Mail's HTML/image/HTML, several text parts, a 4.4 MB HTML
//! body and bare LF; and the helpers every shape module writes its messages with.

use chrono::{DateTime, FixedOffset};

use super::build::{Cte, Entity, blob, message, top};
use super::{Addr, Att, Class, Expect, Shape, at, expect, named, rfc5322, seeded};

const MIB: usize = 1024 * 1024;

/// The mailbox owner, as the shapes address them.
pub(crate) const OWNER: &str = "Alice Example <alice@example.test>";

pub(crate) fn owner() -> Addr {
    named("Alice Example", "alice@example.test")
}

pub(crate) fn olivia() -> Addr {
    named("Olivia Sender", "olivia@contoso.example")
}

/// From Olivia to the owner, with `subject`, `date` and `<id>`.
pub(crate) fn std_top(id: &str, subject: &str, date: DateTime<FixedOffset>) -> Vec<Vec<u8>> {
    top(&[
        ("From", "Olivia Sender <olivia@contoso.example>"),
        ("To", OWNER),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ])
}

/// An expectation for a message to the owner from `from`.
pub(crate) fn to_owner(
    id: Option<&str>,
    subject: &str,
    from: Addr,
    date: DateTime<FixedOffset>,
    flags: &[&str],
) -> Expect {
    let mut e = expect(id, subject, Some(from), date, flags);
    e.to = vec![owner()];
    e
}

/// The expectation matching [`std_top`].
pub(crate) fn std_expect(
    id: &str,
    subject: &str,
    date: DateTime<FixedOffset>,
    flags: &[&str],
) -> Expect {
    to_owner(Some(id), subject, olivia(), date, flags)
}

/// A note in INBOX from [`std_top`] and `entity`.
pub(crate) fn std_note(
    name: &'static str,
    id: &str,
    subject: &str,
    date: DateTime<FixedOffset>,
    flags: &[&str],
    entity: &Entity,
    expect: Expect,
) -> Shape {
    note(
        name,
        message(&std_top(id, subject, date), entity),
        flags,
        date,
        expect,
    )
}

/// A note in INBOX.
pub(crate) fn note(
    name: &'static str,
    body: Vec<u8>,
    flags: &[&str],
    date: DateTime<FixedOffset>,
    expect: Expect,
) -> Shape {
    Shape {
        name,
        class: Class::Note,
        folder: "INBOX",
        body_over_4mb: false,
        message: seeded(body, flags, date),
        expect,
    }
}

pub(crate) fn text(s: &str) -> Entity {
    Entity::leaf(
        "text/plain; charset=us-ascii",
        Cte::SevenBit,
        &[],
        s.as_bytes(),
    )
}

fn html(s: &str) -> Entity {
    Entity::leaf(
        "text/html; charset=us-ascii",
        Cte::QuotedPrintable,
        &[],
        s.as_bytes(),
    )
}

pub(super) fn shapes() -> Vec<Shape> {
    vec![
        alternative(),
        related(true),
        related(false),
        apple_mail(),
        list_footer(),
        html_then_text(),
        html_4mb(),
        bare_lf(),
    ]
}

fn alternative() -> Shape {
    let date = at(1_104_541_200, 3600);
    let (id, subject, flags) = (
        "alt.1@mail.contoso.example",
        "Quarterly numbers (text and HTML)",
        ["\\Seen"],
    );
    let entity = Entity::multi(
        "alternative",
        "",
        &[],
        vec![
            text("The quarterly numbers are final.\r\nRevenue grew in every region.\r\n"),
            html(
                "<html><body><p>The quarterly numbers are <b>final</b>.</p>\r\n<p>Revenue grew in every region.</p></body></html>",
            ),
        ],
    );
    let mut e = std_expect(id, subject, date, &flags);
    e.phrases = vec![
        "The quarterly numbers are final.".into(),
        "Revenue grew in every region.".into(),
    ];
    std_note("alternative", id, subject, date, &flags, &entity, e)
}

/// Outlook's HTML with a logo: `multipart/related` inside `multipart/alternative`, the
/// image referenced by `cid:`, with or without `Content-Disposition: inline`.
fn related(disposition: bool) -> Shape {
    let (name, cid, file, date): (&'static str, &str, &str, _) = if disposition {
        (
            "related-cid-inline",
            "logo.7f3a@contoso.example",
            "logo.png",
            at(1_136_073_600, -18_000),
        )
    } else {
        (
            "related-cid-no-disposition",
            "image001.png@01D9A1B2.C3D4E5F0",
            "image001.png",
            at(1_167_609_600, 19_800),
        )
    };
    let id = format!("{name}.1@mail.contoso.example");
    let subject = format!("Our new logo ({name})");
    let flags = ["\\Seen"];
    let image = blob(name.len() as u64, b"\x89PNG\r\n\x1a\n", 2_345 + name.len());
    let mut extra = vec![format!("Content-ID: <{cid}>")];
    if disposition {
        extra.push(format!("Content-Disposition: inline; filename=\"{file}\""));
    }
    let related = Entity::multi(
        "related",
        "; type=\"text/html\"",
        &[],
        vec![
            html(&format!(
                "<html><body><p>Our new logo is below.</p><img src=\"cid:{cid}\" alt=\"logo\"><p>Print it in colour, please.</p></body></html>"
            )),
            Entity::leaf(
                &format!("image/png; name=\"{file}\""),
                Cte::Base64,
                &extra,
                &image,
            ),
        ],
    );
    let entity = Entity::multi(
        "alternative",
        "",
        &[],
        vec![
            text("Our new logo is below.\r\n[logo]\r\nPrint it in colour, please.\r\n"),
            related,
        ],
    );
    let mut e = std_expect(&id, &subject, date, &flags);
    e.phrases = vec![
        "Our new logo is below.".into(),
        "Print it in colour, please.".into(),
    ];
    let mut att = Att::file(file, &image, Some(true));
    att.content_id = Some(cid.to_owned());
    e.attachments = vec![att];
    std_note(name, &id, &subject, date, &flags, &entity, e)
}

/// Apple Mail with a picture in the middle of the text: the HTML is split in two parts
/// around an inline image without Content-ID, inside `multipart/mixed`.
fn apple_mail() -> Shape {
    let date = at(1_199_145_600, 7200);
    let (id, subject, flags) = (
        "5C1E-4A2B@icloud.example",
        "Greetings from Lisbon",
        ["\\Seen"],
    );
    let photo = blob(42, b"\xff\xd8\xff\xe0\0\x10JFIF", 48_213);
    let entity = Entity::multi(
        "alternative",
        "",
        &[],
        vec![
            text(
                "Here is the view from the hotel terrace.\r\n\r\nSee you on Monday at the airport.\r\n",
            ),
            Entity::multi(
                "mixed",
                "",
                &[],
                vec![
                    html(
                        "<html><body><div>Here is the view from the hotel terrace.</div><div><br></div></body></html>",
                    ),
                    Entity::leaf(
                        "image/jpeg; x-unix-mode=0644; name=\"IMG_0042.jpeg\"",
                        Cte::Base64,
                        &["Content-Disposition: inline; filename=\"IMG_0042.jpeg\"".to_owned()],
                        &photo,
                    ),
                    html(
                        "<html><body><div><br></div><div>See you on Monday at the airport.</div></body></html>",
                    ),
                ],
            ),
        ],
    );
    let mut e = std_expect(id, subject, date, &flags);
    e.phrases = vec![
        "Here is the view from the hotel terrace.".into(),
        "See you on Monday at the airport.".into(),
    ];
    // Inline or not: Exchange's choice for an image no HTML references is undocumented.
    e.attachments = vec![Att::file("IMG_0042.jpeg", &photo, None)];
    std_note(
        "apple-html-image-html",
        id,
        subject,
        date,
        &flags,
        &entity,
        e,
    )
}

/// A mailing-list message: the author's text and the list's footer as a second
/// text/plain part (Mailman).
fn list_footer() -> Shape {
    let date = at(1_230_768_000, 0);
    let (id, subject, flags) = (
        "list.1@lists.example.org",
        "[dev] Release 2.4 is out",
        ["\\Seen"],
    );
    let entity = Entity::multi(
        "mixed",
        "",
        &[],
        vec![
            text("Release 2.4 is out, with the new importer.\r\n"),
            Entity::leaf(
                "text/plain; charset=\"us-ascii\"",
                Cte::SevenBit,
                &["Content-Disposition: inline".to_owned()],
                b"_______________________________________________\r\ndev mailing list\r\nTo unsubscribe send a mail to dev-leave@lists.example.org\r\n",
            ),
        ],
    );
    let mut e = std_expect(id, subject, date, &flags);
    e.phrases = vec![
        "Release 2.4 is out, with the new importer.".into(),
        "To unsubscribe send a mail to dev-leave@lists.example.org".into(),
    ];
    std_note("list-footer", id, subject, date, &flags, &entity, e)
}

/// An HTML part and then a plain-text part with markup characters in it: the text must
/// arrive escaped, not as markup.
fn html_then_text() -> Shape {
    let date = at(1_262_304_000, -28_800);
    let (id, subject, flags) = (
        "mixed.2@mail.contoso.example",
        "Totals and the fine print",
        ["\\Seen"],
    );
    let entity = Entity::multi(
        "mixed",
        "",
        &[],
        vec![
            html("<html><body><p>The totals are in the table below.</p></body></html>"),
            text("Fine print: 3 < 5 & 7 > 2, <b>not bold</b>.\r\n"),
        ],
    );
    let mut e = std_expect(id, subject, date, &flags);
    e.phrases = vec![
        "The totals are in the table below.".into(),
        "Fine print: 3 < 5 & 7 > 2, <b>not bold</b>.".into(),
    ];
    std_note("html-then-text", id, subject, date, &flags, &entity, e)
}

/// A newsletter archive whose HTML alone is 4.4 MiB: more than one Graph request holds.
fn html_4mb() -> Shape {
    let date = at(1_420_070_400, 0);
    let (id, subject, flags) = (
        "archive.1@news.example.org",
        "Newsletter archive (4.4 MB of HTML)",
        ["\\Seen"],
    );
    let mut page = String::from("<html><body>\r\n<h1>Newsletter archive, all issues</h1>\r\n");
    let mut n = 0;
    while page.len() < 4 * MIB + 2 * MIB / 5 {
        n += 1;
        page.push_str(&format!(
            "<p>Issue {n}: the newsletter archive goes on and on.</p>\r\n"
        ));
    }
    page.push_str(&format!(
        "<p>End of the archive after {n} issues.</p>\r\n</body></html>\r\n"
    ));
    let entity = Entity::leaf(
        "text/html; charset=us-ascii",
        Cte::SevenBit,
        &[],
        page.as_bytes(),
    );
    let mut e = std_expect(id, subject, date, &flags);
    e.phrases = vec![
        "Newsletter archive, all issues".into(),
        format!("End of the archive after {n} issues."),
    ];
    let mut shape = std_note("html-body-4.4mb", id, subject, date, &flags, &entity, e);
    shape.body_over_4mb = true;
    shape
}

/// A message stored with bare LF line endings (an mbox import or a broken gateway).
fn bare_lf() -> Shape {
    let date = at(1_451_606_400, -25_200);
    let (id, subject, flags) = (
        "bare-lf.1@legacy.example",
        "Bare LF line endings",
        ["\\Seen"],
    );
    let entity =
        text("This message has bare LF line endings.\r\nIt came from an old mbox file.\r\n");
    let crlf = message(&std_top(id, subject, date), &entity);
    let mut lf = Vec::with_capacity(crlf.len());
    for &b in &crlf {
        if b != b'\r' {
            lf.push(b);
        }
    }
    let mut e = std_expect(id, subject, date, &flags);
    e.phrases = vec![
        "This message has bare LF line endings.".into(),
        "It came from an old mbox file.".into(),
    ];
    note("bare-lf", lf, &flags, date, e)
}
