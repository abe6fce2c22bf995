//! Shapes with no faithful JSON form: Outlook and Google meeting requests and a
//! cancellation (`text/calendar; method=…`), S/MIME clear-signed, opaque-signed and
//! encrypted (real content types, a DER-shaped CMS blob, no real cryptography), TNEF
//! (`winmail.dat`) and a delivery status notification.
//!
//! Item classes are Exchange's ([MS-OXCMAIL] §2.1.3.1, [MS-OXOSMIME] §2.1, [MS-OXOCAL]):
//! `IPM.Schedule.Meeting.Request` / `.Canceled`, `IPM.Note.SMIME.MultipartSigned` for
//! clear-signed, `IPM.Note.SMIME` for opaque-signed and encrypted (body not set, one
//! `smime.p7m` attachment), `REPORT.IPM.Note.NDR` for a failed-delivery report. A TNEF
//! part is decoded by Exchange's content conversion: its attachment and body arrive,
//! not `winmail.dat` (unverified on a real tenant for importMime and EWS imports).

use super::build::{Cte, Entity, blob, message, top};
use super::structure::{OWNER, olivia, to_owner};
use super::tnef::winmail;
use super::{Att, Class, Expect, Shape, at, named, rfc5322, seeded};

pub(super) fn shapes() -> Vec<Shape> {
    vec![
        outlook_meeting(false),
        google_meeting(),
        outlook_meeting(true),
        smime_clear_signed(),
        smime_opaque("smime-opaque-signed", "signed-data", 2),
        smime_opaque("smime-encrypted", "enveloped-data", 3),
        tnef(),
        dsn(),
    ]
}

fn special(name: &'static str, class: Class, body: Vec<u8>, flags: &[&str], e: Expect) -> Shape {
    let date = e.received.fixed_offset();
    Shape {
        name,
        class,
        folder: "INBOX",
        body_over_4mb: false,
        message: seeded(body, flags, date),
        expect: e,
    }
}

fn headers(
    from: &str,
    subject: &str,
    id: &str,
    date: chrono::DateTime<chrono::FixedOffset>,
) -> Vec<Vec<u8>> {
    top(&[
        ("From", from),
        ("To", OWNER),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ])
}

/// An iCalendar object with CRLF lines.
fn ics(
    method: &str,
    uid: &str,
    summary: &str,
    description: &str,
    organizer: &str,
    start: &str,
) -> Vec<u8> {
    let status = if method == "CANCEL" {
        "CANCELLED"
    } else {
        "CONFIRMED"
    };
    let lines = [
        "BEGIN:VCALENDAR".to_owned(),
        format!("METHOD:{method}"),
        "PRODID:-//mailhaul corpus//EN".to_owned(),
        "VERSION:2.0".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("ORGANIZER;CN=Organizer:mailto:{organizer}"),
        "ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=Alice Ex".to_owned(),
        " ample:mailto:alice@example.test".to_owned(),
        format!("DESCRIPTION:{description}"),
        format!("UID:{uid}"),
        format!("SUMMARY:{summary}"),
        format!("DTSTART:{start}"),
        format!("DTEND:{}", start.replace("T10", "T11")),
        "DTSTAMP:20250301T090000Z".to_owned(),
        format!("STATUS:{status}"),
        format!("SEQUENCE:{}", u8::from(method == "CANCEL")),
        "LOCATION:Room 4.01".to_owned(),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ];
    lines
        .iter()
        .flat_map(|l| [l.as_bytes(), b"\r\n"].concat())
        .collect()
}

/// Outlook's invitation (or its cancellation): text, HTML and the calendar as the
/// last alternative.
fn outlook_meeting(cancel: bool) -> Shape {
    let (name, method, subject, phrase, date) = if cancel {
        (
            "meeting-cancel-outlook",
            "CANCEL",
            "Canceled: Quarterly planning",
            "The quarterly planning is cancelled; we meet next month instead.",
            at(1_741_200_000, 3600),
        )
    } else {
        (
            "meeting-request-outlook",
            "REQUEST",
            "Quarterly planning",
            "Bring the roadmap for the next quarter.",
            at(1_741_100_000, 3600),
        )
    };
    let id = format!("{name}.1@mail.contoso.example");
    let flags: &[&str] = &[];
    let calendar = ics(
        method,
        "040000008200E00074C5B7101A82E00800000000QP2025",
        "Quarterly planning",
        phrase,
        "olivia@contoso.example",
        "20250310T100000Z",
    );
    let entity = Entity::multi(
        "alternative",
        "",
        &[],
        vec![
            Entity::leaf(
                "text/plain; charset=\"utf-8\"",
                Cte::QuotedPrintable,
                &[],
                format!("{phrase}\r\n").as_bytes(),
            ),
            Entity::leaf(
                "text/html; charset=\"utf-8\"",
                Cte::QuotedPrintable,
                &[],
                format!("<html><body><p>{phrase}</p></body></html>").as_bytes(),
            ),
            Entity::leaf(
                &format!("text/calendar; charset=\"utf-8\"; method={method}"),
                Cte::Base64,
                &[],
                &calendar,
            ),
        ],
    );
    let mut e = to_owner(Some(&id), subject, olivia(), date, flags);
    e.phrases = vec![phrase.to_owned()];
    e.item_class = Some(if cancel {
        "IPM.Schedule.Meeting.Canceled"
    } else {
        "IPM.Schedule.Meeting.Request"
    });
    let body = message(
        &headers("Olivia Sender <olivia@contoso.example>", subject, &id, date),
        &entity,
    );
    special(name, Class::Meeting, body, flags, e)
}

/// Google Calendar's invitation: the calendar once inside the alternative and once
/// more as an `invite.ics` attachment (the same bytes): one attachment to the user.
fn google_meeting() -> Shape {
    let date = at(1_741_300_000, 0);
    let (id, flags) = ("0000000000004a2b@google.example", ["\\Seen"]);
    let subject =
        "Invitation: Design review @ Wed 12 Mar 2025 10:00 - 11:00 (UTC) (alice@example.test)";
    let phrase = "Design review of the new onboarding flow.";
    let calendar = ics(
        "REQUEST",
        "7kukuqrfedlm2f9t0vr42q2cn3@google.com",
        "Design review",
        phrase,
        "greta@gmail.example",
        "20250312T100000Z",
    );
    let entity = Entity::multi(
        "mixed",
        "",
        &[],
        vec![
            Entity::multi(
                "alternative",
                "",
                &[],
                vec![
                    Entity::leaf(
                        "text/plain; charset=\"UTF-8\"; format=flowed; delsp=yes",
                        Cte::SevenBit,
                        &[],
                        format!("{phrase}\r\nJoin with Google Meet\r\n").as_bytes(),
                    ),
                    Entity::leaf(
                        "text/html; charset=\"UTF-8\"",
                        Cte::QuotedPrintable,
                        &[],
                        format!("<div><p>{phrase}</p><p>Join with Google Meet</p></div>")
                            .as_bytes(),
                    ),
                    Entity::leaf(
                        "text/calendar; charset=\"UTF-8\"; method=REQUEST",
                        Cte::SevenBit,
                        &[],
                        &calendar,
                    ),
                ],
            ),
            Entity::file("application/ics", "invite.ics", &calendar),
        ],
    );
    let mut e = to_owner(
        Some(id),
        subject,
        named("Greta Calendar", "greta@gmail.example"),
        date,
        &flags,
    );
    e.phrases = vec![phrase.to_owned()];
    e.attachments = vec![Att::file("invite.ics", &calendar, Some(false))];
    e.item_class = Some("IPM.Schedule.Meeting.Request");
    let body = message(
        &headers("Greta Calendar <greta@gmail.example>", subject, id, date),
        &entity,
    );
    special("meeting-request-google", Class::Meeting, body, &flags, e)
}

/// DER length octets.
fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let bytes: Vec<u8> = n
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    [vec![0x80 | bytes.len() as u8], bytes].concat()
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    [vec![tag], der_len(content.len()), content.to_vec()].concat()
}

/// A CMS ContentInfo (RFC 5652) shaped blob: SEQUENCE { OID 1.2.840.113549.1.7.`kind`,
/// [0] { SEQUENCE { OCTET STRING `inner`, OCTET STRING random } } }.
fn cms(kind: u8, inner: &[u8], seed: u64) -> Vec<u8> {
    let oid = der(
        0x06,
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, kind],
    );
    let noise = blob(seed, b"", 1_500);
    let content = der(0x30, &[der(0x04, inner), der(0x04, &noise)].concat());
    der(0x30, &[oid, der(0xA0, &content)].concat())
}

fn smime_clear_signed() -> Shape {
    let date = at(1_741_400_000, 3600);
    let (id, subject, flags) = (
        "signed.1@secure.contoso.example",
        "Signed: payment instructions",
        ["\\Seen"],
    );
    let phrase = "The account number for the payment is unchanged.";
    let signature = cms(2, b"", 21);
    let entity = Entity::multi(
        "signed",
        "; protocol=\"application/pkcs7-signature\"; micalg=sha-256",
        &[],
        vec![
            Entity::leaf(
                "text/plain; charset=us-ascii",
                Cte::SevenBit,
                &[],
                format!("{phrase}\r\n").as_bytes(),
            ),
            Entity::leaf(
                "application/pkcs7-signature; name=\"smime.p7s\"",
                Cte::Base64,
                &[
                    "Content-Disposition: attachment; filename=\"smime.p7s\"".to_owned(),
                    "Content-Description: S/MIME Cryptographic Signature".to_owned(),
                ],
                &signature,
            ),
        ],
    );
    let mut e = to_owner(Some(id), subject, olivia(), date, &flags);
    e.phrases = vec![phrase.to_owned()];
    e.item_class = Some("IPM.Note.SMIME.MultipartSigned");
    // Exchange keeps the signed MIME as an attachment of its own choosing.
    e.attachments_exact = false;
    let body = message(
        &headers("Olivia Sender <olivia@contoso.example>", subject, id, date),
        &entity,
    );
    special("smime-clear-signed", Class::Smime, body, &flags, e)
}

/// Opaque-signed (`signed-data`) or encrypted (`enveloped-data`): one
/// `application/pkcs7-mime` entity; Exchange sets no body and keeps `smime.p7m`.
fn smime_opaque(name: &'static str, smime_type: &str, kind: u8) -> Shape {
    let date = at(1_741_500_000 + i64::from(kind), 3600);
    let id = format!("{name}.1@secure.contoso.example");
    let subject = format!("S/MIME {smime_type}: salary review");
    let flags = ["\\Seen"];
    let p7m = cms(
        kind,
        b"Content-Type: text/plain\r\n\r\nThe salary review is attached.\r\n",
        u64::from(kind),
    );
    let entity = Entity::file(
        &format!("application/pkcs7-mime; smime-type={smime_type}"),
        "smime.p7m",
        &p7m,
    );
    let mut e = to_owner(Some(&id), &subject, olivia(), date, &flags);
    e.item_class = Some("IPM.Note.SMIME");
    e.attachments = vec![Att::file("smime.p7m", &p7m, Some(false))];
    let body = message(
        &headers(
            "Olivia Sender <olivia@contoso.example>",
            &subject,
            &id,
            date,
        ),
        &entity,
    );
    special(name, Class::Smime, body, &flags, e)
}

fn tnef() -> Shape {
    let date = at(1_741_600_000, 3600);
    let (id, subject, flags) = (
        "tnef.1@exchange2010.example",
        "Budget 2025 (rich text)",
        ["\\Seen"],
    );
    let phrase = "The budget is in the attached workbook.";
    let workbook = blob(61, b"PK\x03\x04", 12_345);
    let dat = winmail(subject, phrase, "budget-2025.xlsx", &workbook);
    let entity = Entity::multi(
        "mixed",
        "",
        &[],
        vec![
            Entity::leaf(
                "text/plain; charset=us-ascii",
                Cte::SevenBit,
                &[],
                format!("{phrase}\r\n").as_bytes(),
            ),
            Entity::file("application/ms-tnef", "winmail.dat", &dat),
        ],
    );
    let mut e = to_owner(Some(id), subject, olivia(), date, &flags);
    e.phrases = vec![phrase.to_owned()];
    e.attachments = vec![Att::file("budget-2025.xlsx", &workbook, Some(false))];
    let body = message(
        &headers("Olivia Sender <olivia@contoso.example>", subject, id, date),
        &entity,
    );
    special("tnef", Class::Tnef, body, &flags, e)
}

/// A failed-delivery report (RFC 3464) as Postfix writes it.
fn dsn() -> Shape {
    let date = at(1_741_700_000, 0);
    let (id, subject, flags) = (
        "20250311103320.4F1A2@mx.example.org",
        "Undelivered Mail Returned to Sender",
        ["\\Seen"],
    );
    let phrase = "your message could not be delivered to one or more recipients";
    let human = format!(
        "This is the mail system at host mx.example.org.\r\n\r\nI'm sorry to have to inform you that {phrase}.\r\n\r\n<gone@example.net>: host mx.example.net said: 550 5.1.1 User unknown\r\n"
    );
    let status = "Reporting-MTA: dns; mx.example.org\r\nArrival-Date: Tue, 11 Mar 2025 10:33:18 +0000\r\n\r\nFinal-Recipient: rfc822; gone@example.net\r\nOriginal-Recipient: rfc822;gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.net\r\nDiagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: User unknown\r\n";
    let original = format!(
        "From: {OWNER}\r\nTo: gone@example.net\r\nSubject: Lunch on Friday?\r\nMessage-ID: <lunch.1@example.test>\r\n"
    );
    let entity = Entity::multi(
        "report",
        "; report-type=delivery-status",
        &[],
        vec![
            Entity::leaf(
                "text/plain; charset=us-ascii",
                Cte::SevenBit,
                &["Content-Description: Notification".to_owned()],
                human.as_bytes(),
            ),
            Entity::leaf(
                "message/delivery-status",
                Cte::SevenBit,
                &["Content-Description: Delivery report".to_owned()],
                status.as_bytes(),
            ),
            Entity::leaf(
                "text/rfc822-headers",
                Cte::SevenBit,
                &["Content-Description: Undelivered Message Headers".to_owned()],
                original.as_bytes(),
            ),
        ],
    );
    let from = "Mail Delivery System <MAILER-DAEMON@mx.example.org>";
    let mut e = to_owner(
        Some(id),
        subject,
        named("Mail Delivery System", "MAILER-DAEMON@mx.example.org"),
        date,
        &flags,
    );
    e.phrases = vec![phrase.to_owned()];
    e.item_class = Some("REPORT.IPM.Note.NDR");
    e.attachments_exact = false;
    special(
        "dsn",
        Class::Report,
        message(&headers(from, subject, id, date), &entity),
        &flags,
        e,
    )
}
