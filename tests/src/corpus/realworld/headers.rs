//! Header and address shapes: folded headers and many `X-` headers, Outlook's display
//! and threading headers, Bcc in Sent, several Reply-To, 600 recipients, no From, no
//! Date, no Message-ID, odd addresses (a quoted local part, groups); and the state
//! shapes: `\Answered`, `$Forwarded`, `\Draft`, keywords among IMAP system keywords.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::build::{Cte, Entity, blob, folded_list, message, top};
use super::structure::{OWNER, note, olivia, owner, std_expect, std_top, to_owner};
use super::{Shape, at, bare, expect, named, rfc5322};

pub(super) fn shapes() -> Vec<Shape> {
    vec![
        folded_and_x_headers(),
        outlook_headers(),
        bcc_in_sent(),
        several_reply_to(),
        six_hundred_recipients(),
        no_from(),
        no_date(),
        no_message_id(),
        odd_addresses(),
        state(
            "answered",
            &["\\Seen", "\\Answered"],
            "Re: Can you confirm the order?",
        ),
        state(
            "forwarded",
            &["\\Seen", "$Forwarded"],
            "Order confirmation 4711",
        ),
        draft(),
        state(
            "keywords",
            &[
                "\\Flagged",
                "Project_X",
                "Client_Acme",
                "$MDNSent",
                "NonJunk",
                "$NotJunk",
                "Junk",
                "$Junk",
                "Old",
                "$HasAttachment",
                "$MailFlagBit1",
                "$SubmitPending",
                "$Phishing",
            ],
            "Tagged for the Acme project",
        ),
    ]
}

fn text(s: &str) -> Entity {
    Entity::leaf(
        "text/plain; charset=us-ascii",
        Cte::SevenBit,
        &[],
        s.as_bytes(),
    )
}

/// A long subject folded over three lines, a `Received:` trace and 40 distinct `X-`
/// headers (a newsletter's campaign headers): the subject arrives unfolded, no `X-`
/// name becomes a mailbox property, the header block is kept where Outlook shows it.
fn folded_and_x_headers() -> Shape {
    let date = at(1_300_000_000, 3600);
    let id = "folded.1@news.example.org";
    let subject = "This subject is long enough that the sending mailer folded it over three lines, as RFC 5322 allows, and it must arrive unfolded";
    let folded = "This subject is long enough that the sending mailer folded it\r\n over three lines, as RFC 5322 allows,\r\n and it must arrive unfolded";
    let flags = ["\\Seen"];
    let mut pairs: Vec<(String, String)> = vec![
        ("Received".into(), "from mx1.news.example.org (mx1.news.example.org [192.0.2.10])\r\n\tby mx.example.test with ESMTPS id 4XyZ7; Sun, 13 Mar 2011 08:06:40 +0100".into()),
        ("From".into(), "Olivia Sender <olivia@contoso.example>".into()),
        ("To".into(), OWNER.into()),
        ("Subject".into(), folded.into()),
        ("Date".into(), rfc5322(date)),
        ("Message-ID".into(), format!("<{id}>")),
        ("X-Mailer".into(), "Campaign Monster 7.1".into()),
    ];
    for n in 1..=40 {
        pairs.push((format!("X-Campaign-{n:04}"), format!("spring-sale-{n}")));
    }
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut e = std_expect(id, subject, date, &flags);
    e.phrases = vec!["Spring sale: everything must go.".into()];
    e.transport_headers = vec![
        "Received: from mx1.news.example.org".into(),
        "X-Campaign-0007: spring-sale-7".into(),
        "X-Mailer: Campaign Monster 7.1".into(),
    ];
    note(
        "folded-and-x-headers",
        message(&top(&refs), &text("Spring sale: everything must go.\r\n")),
        &flags,
        date,
        e,
    )
}

/// Outlook's headers that have properties of their own: Sender (sent on behalf),
/// Importance / X-Priority, Sensitivity, Thread-Index, In-Reply-To, References,
/// List-Unsubscribe.
fn outlook_headers() -> Shape {
    let date = at(1_310_000_000, 7200);
    let (id, subject, flags) = (
        "outlook.1@mail.contoso.example",
        "RE: Board meeting preparation",
        ["\\Seen"],
    );
    let thread_index = blob(5, b"\x01\xd9", 22);
    let thread_index = STANDARD.encode(&thread_index);
    let references = "<root.1@mail.contoso.example> <parent.1@mail.contoso.example>";
    let headers = top(&[
        ("From", "Olivia Sender <olivia@contoso.example>"),
        ("Sender", "Ana Assistant <ana@contoso.example>"),
        ("To", OWNER),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
        ("In-Reply-To", "<parent.1@mail.contoso.example>"),
        ("References", references),
        ("Thread-Topic", "Board meeting preparation"),
        ("Thread-Index", &thread_index),
        ("Importance", "High"),
        ("X-Priority", "1 (Highest)"),
        ("Sensitivity", "Company-Confidential"),
        ("List-Unsubscribe", "<mailto:leave@lists.example.org>"),
    ]);
    let mut e = std_expect(id, subject, date, &flags);
    e.sender = Some(named("Ana Assistant", "ana@contoso.example"));
    e.importance = "high";
    e.phrases = vec!["Sent on behalf of Olivia by her assistant.".into()];
    e.properties = vec![
        (
            "String 0x1042".into(),
            "<parent.1@mail.contoso.example>".into(),
        ),
        ("String 0x1039".into(), references.into()),
        ("Binary 0x0071".into(), thread_index),
        ("Integer 0x0036".into(), "3".into()),
        (
            "String 0x1045".into(),
            "<mailto:leave@lists.example.org>".into(),
        ),
    ];
    note(
        "outlook-headers",
        message(
            &headers,
            &text("Sent on behalf of Olivia by her assistant.\r\n"),
        ),
        &flags,
        date,
        e,
    )
}

/// A sent message keeps its Bcc.
fn bcc_in_sent() -> Shape {
    let date = at(1_320_000_000, -18_000);
    let (id, subject, flags) = ("bcc.1@example.test", "Offer for the new office", ["\\Seen"]);
    let headers = top(&[
        ("From", OWNER),
        ("To", "Bob Builder <bob@fabrikam.example>"),
        ("Cc", "Carol Clerk <carol@fabrikam.example>"),
        (
            "Bcc",
            "Dave Director <dave@example.test>, erin@example.test",
        ),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ]);
    let mut e = expect(Some(id), subject, Some(owner()), date, &flags);
    e.to = vec![named("Bob Builder", "bob@fabrikam.example")];
    e.cc = vec![named("Carol Clerk", "carol@fabrikam.example")];
    e.bcc = vec![
        named("Dave Director", "dave@example.test"),
        bare("erin@example.test"),
    ];
    e.phrases = vec!["Our offer for the new office is attached to the portal.".into()];
    let mut shape = note(
        "bcc-in-sent",
        message(
            &headers,
            &text("Our offer for the new office is attached to the portal.\r\n"),
        ),
        &flags,
        date,
        e,
    );
    shape.folder = "Sent";
    shape
}

fn several_reply_to() -> Shape {
    let date = at(1_330_000_000, 0);
    let (id, subject, flags) = (
        "replyto.1@mail.contoso.example",
        "Answer to all three of us",
        ["\\Seen"],
    );
    let mut headers = std_top(id, subject, date);
    headers.extend(top(&[(
        "Reply-To",
        "Sales Team <sales@contoso.example>, support@contoso.example,\r\n \"Olivia (mobile)\" <olivia.mobile@contoso.example>",
    )]));
    let mut e = std_expect(id, subject, date, &flags);
    e.reply_to = vec![
        named("Sales Team", "sales@contoso.example"),
        bare("support@contoso.example"),
        named("Olivia (mobile)", "olivia.mobile@contoso.example"),
    ];
    e.phrases = vec!["Replies go to sales, support and my phone.".into()];
    note(
        "several-reply-to",
        message(
            &headers,
            &text("Replies go to sales, support and my phone.\r\n"),
        ),
        &flags,
        date,
        e,
    )
}

fn six_hundred_recipients() -> Shape {
    let date = at(1_340_000_000, 19_800);
    let (id, subject, flags) = (
        "all-hands.1@bigcorp.example",
        "All hands: new parking rules",
        ["\\Seen"],
    );
    let person = |n: usize| {
        (
            format!("Employee {n:03}"),
            format!("employee{n:03}@bigcorp.example"),
        )
    };
    let to: Vec<(String, String)> = (1..=400).map(person).collect();
    let cc: Vec<(String, String)> = (401..=600).map(person).collect();
    let header = |list: &[(String, String)]| -> Vec<String> {
        list.iter().map(|(n, a)| format!("{n} <{a}>")).collect()
    };
    let mut headers = top(&[
        ("From", "HR Team <hr@bigcorp.example>"),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ]);
    headers.push(folded_list("To", &header(&to)).into_bytes());
    headers.push(folded_list("Cc", &header(&cc)).into_bytes());
    let mut e = expect(
        Some(id),
        subject,
        Some(named("HR Team", "hr@bigcorp.example")),
        date,
        &flags,
    );
    e.to = to.iter().map(|(n, a)| named(n, a)).collect();
    e.cc = cc.iter().map(|(n, a)| named(n, a)).collect();
    e.phrases = vec!["From Monday the car park opens at 7.".into()];
    note(
        "600-recipients",
        message(&headers, &text("From Monday the car park opens at 7.\r\n")),
        &flags,
        date,
        e,
    )
}

fn no_from() -> Shape {
    let date = at(1_350_000_000, -25_200);
    let (id, subject, flags) = (
        "no-from.1@cron.example",
        "Cron <root@backup> /usr/local/bin/nightly",
        ["\\Seen"],
    );
    let headers = top(&[
        ("To", OWNER),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ]);
    let mut e = expect(Some(id), subject, None, date, &flags);
    e.to = vec![owner()];
    e.phrases = vec!["nightly backup finished: 0 errors".into()];
    note(
        "no-from",
        message(&headers, &text("nightly backup finished: 0 errors\r\n")),
        &flags,
        date,
        e,
    )
}

fn no_date() -> Shape {
    let date = at(1_360_000_000, 3600);
    let (id, subject, flags) = (
        "no-date.1@mail.contoso.example",
        "A message without a Date header",
        ["\\Seen"],
    );
    let headers = top(&[
        ("From", "Olivia Sender <olivia@contoso.example>"),
        ("To", OWNER),
        ("Subject", subject),
        ("Message-ID", &format!("<{id}>")),
    ]);
    let mut e = std_expect(id, subject, date, &flags);
    e.phrases = vec!["Its received date is the server's INTERNALDATE.".into()];
    note(
        "no-date",
        message(
            &headers,
            &text("Its received date is the server's INTERNALDATE.\r\n"),
        ),
        &flags,
        date,
        e,
    )
}

fn no_message_id() -> Shape {
    let date = at(1_370_000_000, 0);
    let subject = "A message without a Message-ID";
    let flags = ["\\Seen"];
    let headers = top(&[
        ("From", "Olivia Sender <olivia@contoso.example>"),
        ("To", OWNER),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
    ]);
    let mut e = to_owner(None, subject, olivia(), date, &flags);
    e.phrases = vec!["Old mailers sent no Message-ID.".into()];
    note(
        "no-message-id",
        message(&headers, &text("Old mailers sent no Message-ID.\r\n")),
        &flags,
        date,
        e,
    )
}

/// A quoted local part (an address, not a name) and groups: the empty
/// `undisclosed-recipients:;` and a named group with members.
fn odd_addresses() -> Shape {
    let date = at(1_380_000_000, 36_000);
    let (id, subject, flags) = (
        "odd.1@mail.contoso.example",
        "Odd but valid addresses",
        ["\\Seen"],
    );
    let headers = top(&[
        ("From", "Olivia Sender <olivia@contoso.example>"),
        ("To", "\"john doe\"@example.com, undisclosed-recipients:;"),
        (
            "Cc",
            "Project Team: anna@example.org, \"Ben B.\" <ben@example.org>;",
        ),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ]);
    let mut e = expect(Some(id), subject, Some(olivia()), date, &flags);
    e.to = vec![bare("\"john doe\"@example.com")];
    e.cc = vec![bare("anna@example.org"), named("Ben B.", "ben@example.org")];
    e.phrases = vec!["Quoted local parts and groups are valid RFC 5322.".into()];
    note(
        "odd-addresses",
        message(
            &headers,
            &text("Quoted local parts and groups are valid RFC 5322.\r\n"),
        ),
        &flags,
        date,
        e,
    )
}

/// A plain message whose point is its IMAP flags.
fn state(name: &'static str, flags: &[&str], subject: &str) -> Shape {
    let date = at(1_390_000_000 + name.len() as i64 * 86_400, 3600);
    let id = format!("{name}.1@mail.contoso.example");
    let phrase = format!("This message is {name}.");
    let mut e = std_expect(&id, subject, date, flags);
    e.phrases = vec![phrase.clone()];
    note(
        name,
        message(
            &std_top(&id, subject, date),
            &text(&format!("{phrase}\r\n")),
        ),
        flags,
        date,
        e,
    )
}

/// An unsent draft in Drafts: it must stay an editable draft.
fn draft() -> Shape {
    let date = at(1_400_000_000, 7200);
    let (id, subject, flags) = (
        "draft.1@example.test",
        "Draft: notes for the review",
        ["\\Seen", "\\Draft"],
    );
    let headers = top(&[
        ("From", OWNER),
        ("To", "Bob Builder <bob@fabrikam.example>"),
        ("Subject", subject),
        ("Date", &rfc5322(date)),
        ("Message-ID", &format!("<{id}>")),
    ]);
    let mut e = expect(Some(id), subject, Some(owner()), date, &flags);
    e.to = vec![named("Bob Builder", "bob@fabrikam.example")];
    e.phrases = vec!["Half-written notes for the review.".into()];
    let mut shape = note(
        "draft",
        message(&headers, &text("Half-written notes for the review.\r\n")),
        &flags,
        date,
        e,
    );
    shape.folder = "Drafts";
    shape
}
