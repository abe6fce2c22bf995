//! Whole-manifest tests: defaults, many problems at once, inline + CSV.

use super::*;
use secrecy::ExposeSecret;

const PATH: &str = "conf/manifest.toml";

/// The brief's example, with the optional lines left out.
const GOOD: &str = r#"
tenant = "Contoso Ltd"

[source]
kind = "imap"
host = "imap.contoso.example"
tls = "implicit"
password = "env:SOURCE_ADMIN_PW"

[target]
kind = "imap"
host = "mail.new.example"
tls = "starttls"
password = "file:secrets/target"

[options]
slice_messages = 5000
exclude = ["Trash", "Junk/*"]

mailboxes_csv = "users.csv"

[[mailbox]]
email = " alice@contoso.example "
username = "alice"
password = "env:ALICE_PW"

[[mailbox]]
email = "bob@contoso.example"
target_email = "bob@new.example"
target_password = "file:/run/secrets/bob"
"#;

fn parse(text: &str) -> Result<(Manifest, Option<PathBuf>), Vec<String>> {
    Manifest::parse(text, Path::new(PATH))
        .map_err(|p| p.0.iter().map(ToString::to_string).collect())
}

#[test]
fn good_manifest_has_every_default() {
    let (m, csv) = parse(GOOD).expect("valid");
    assert_eq!(csv.as_deref(), Some(Path::new("conf/users.csv")));
    assert_eq!(m.tenant, "Contoso Ltd");
    assert_eq!(m.migration.as_str(), "contoso-ltd");

    let s = &m.source;
    assert_eq!(
        (s.kind, s.host.as_str(), s.port, s.tls),
        (
            ServerKind::Imap,
            "imap.contoso.example",
            993,
            TlsMode::Implicit
        )
    );
    assert!(s.tls_verify);
    assert_eq!(s.ca_file, None);
    assert_eq!(s.max_connections_per_mailbox.get(), 4);
    assert_eq!(
        s.password.as_ref().map(ToString::to_string).as_deref(),
        Some("env:SOURCE_ADMIN_PW")
    );
    assert_eq!((m.target.port, m.target.tls), (143, TlsMode::StartTls));
    assert_eq!(
        m.target
            .password
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("file:conf/secrets/target")
    );

    let o = &m.options;
    assert_eq!(
        (
            o.slice_messages.get(),
            o.slice_bytes,
            o.discovery_concurrency.get()
        ),
        (5000, 256 << 20, 8)
    );
    assert_eq!(o.include, ["*"]);
    assert_eq!(o.exclude, ["Trash", "Junk/*"]);

    assert_eq!(m.mailboxes.len(), 2);
    let a = m
        .mailbox(&MailboxId("alice@contoso.example".into()))
        .expect("alice");
    assert_eq!(
        (
            a.source_user.as_str(),
            a.target_email.as_str(),
            a.target_user.as_str()
        ),
        ("alice", "alice@contoso.example", "alice@contoso.example")
    );
    assert_eq!(a.source_password.to_string(), "env:ALICE_PW");
    assert_eq!(a.target_password.to_string(), "file:conf/secrets/target");
    assert_eq!(a.origin.to_string(), "conf/manifest.toml:22");
    let b = &m.mailboxes[1];
    assert_eq!(
        (
            b.source_user.as_str(),
            b.target_email.as_str(),
            b.target_user.as_str()
        ),
        ("bob@contoso.example", "bob@new.example", "bob@new.example")
    );
    assert_eq!(b.source_password.to_string(), "env:SOURCE_ADMIN_PW");
    assert_eq!(b.target_password.to_string(), "file:/run/secrets/bob");
    assert!(m.mailbox(&MailboxId("nobody@x".into())).is_none());
}

#[test]
fn explicit_values_override_defaults() {
    let text = r#"
tenant = "T"
migration = "t-2026"
[source]
kind = "imap"
host = "a"
tls = "none"
tls_verify = false
port = 10143
max_connections_per_mailbox = 2
[target]
kind = "imap"
host = "b"
ca_file = "ca.pem"
[options]
slice_bytes = "1GiB"
include = ["INBOX", "Archive/**"]
discovery_concurrency = 32
[[mailbox]]
email = "a@b"
password = "env:A"
target_username = "a-target"
target_password = "env:B"
"#;
    let (m, csv) = parse(text).expect("valid");
    assert_eq!(csv, None);
    assert_eq!(m.migration.as_str(), "t-2026");
    assert_eq!(
        (m.source.port, m.source.tls, m.source.tls_verify),
        (10143, TlsMode::None, false)
    );
    assert_eq!(m.source.max_connections_per_mailbox.get(), 2);
    assert_eq!((m.target.port, m.target.tls), (993, TlsMode::Implicit));
    assert_eq!(m.target.ca_file.as_deref(), Some(Path::new("conf/ca.pem")));
    assert_eq!(
        (m.options.slice_bytes, m.options.discovery_concurrency.get()),
        (1 << 30, 32)
    );
    assert_eq!(m.mailboxes[0].target_user, "a-target");
    assert!(m.options.folder_selected("inbox"));
    assert!(!m.options.folder_selected("Sent"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"tenant = ""
colour = "blue"

[source]
kind = "imap4"
host = ""
port = 0
tls = "ssl"
tls_verify = "no"
password = "hunter2"

[target]
kind = "imap"
hots = "mail.new.example"
password = "vault:secret/target"

[options]
slice_bytes = "lots"
include = ["Archive/**x"]
slice_messages = 0

[[mailbox]]
email = "bob"
password = "hunter2"

[[mailbox]]
email = "carol@x"
password = "env:"

[[mailbox]]
username = "nobody"
"#;
    let got = parse(text).expect_err("invalid");
    let want = [
        "conf/manifest.toml:1: tenant: empty; write the organisation's name",
        "conf/manifest.toml:2: colour: unknown field in the top of the manifest; known fields: tenant, migration, source, target, options, mailboxes_csv, mailbox",
        "conf/manifest.toml:5: source.kind: unknown value \"imap4\"; allowed: \"imap\", \"pop3\", \"pst\"",
        "conf/manifest.toml:6: source.host: empty; write the server's host name",
        "conf/manifest.toml:7: source.port: 0 is not a port; write 1-65535, or leave it out for the default",
        "conf/manifest.toml:8: source.tls: unknown value \"ssl\"; allowed: \"implicit\", \"starttls\", \"none\"",
        "conf/manifest.toml:9: source.tls_verify: expected true or false (unquoted), found a string",
        "conf/manifest.toml:10: source.password is plaintext; write \"env:NAME\" or \"file:PATH\", or put it in the CSV",
        "conf/manifest.toml:12: target.host: missing; add host = \"imap.example.com\" to [target]",
        "conf/manifest.toml:14: target.hots: unknown field in [target]; did you mean \"host\"?",
        "conf/manifest.toml:15: target.password uses the unknown scheme \"vault:\"; write \"env:NAME\" or \"file:PATH\", or put it in the CSV",
        "conf/manifest.toml:18: options.slice_bytes: \"lots\" is not a size; write bytes as an integer, or a string like \"256MiB\", \"1GB\" or \"512KiB\"",
        "conf/manifest.toml:19: options.include: pattern \"Archive/**x\" is not a valid glob (recursive wildcards must form a single path component at character 11); `**` must be a whole path component, and `[` opens a class (write `[[]` for a literal `[`)",
        "conf/manifest.toml:20: options.slice_messages: 0 is not allowed; write a number from 1 to 4294967295, or leave it out for the default 5000",
        "conf/manifest.toml:23: mailbox \"bob\": email: \"bob\" has no '@'; write the full e-mail address",
        "conf/manifest.toml:24: mailbox \"bob\": password is plaintext; write \"env:NAME\" or \"file:PATH\", or put it in the CSV",
        // carol's password was bad, so she has none, and [source] gives no usable default.
        "conf/manifest.toml:26: mailbox \"carol@x\": no source password; add password = \"env:NAME\" to this [[mailbox]], or set password in [source]",
        "conf/manifest.toml:26: mailbox \"carol@x\": no target password; add target_password = \"env:NAME\" to this [[mailbox]], or set password in [target]",
        "conf/manifest.toml:28: mailbox \"carol@x\": password: \"env:\" is not a valid variable name; write letters, digits and '_', like \"env:ALICE_PW\"",
        "conf/manifest.toml:30: mailbox #3: email: missing; add email = \"alice@contoso.example\" to this [[mailbox]]",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn syntax_errors_and_missing_tables_have_lines() {
    let got = parse("tenant = \"T\"\nport = = 3\n").expect_err("invalid");
    assert_eq!(
        got,
        [
            "conf/manifest.toml:2: toml syntax error: extra `=`, expected nothing",
            "conf/manifest.toml:2: toml syntax error: unexpected key or value, expected newline, `#`",
            "conf/manifest.toml: [source]: missing; add a [source] table with kind, host and tls",
            "conf/manifest.toml: [target]: missing; add a [target] table with kind, host and tls",
            "conf/manifest.toml: no mailboxes; add [[mailbox]] tables or set mailboxes_csv",
        ],
        "\n{}",
        got.join("\n")
    );
}

const CSV_MANIFEST: &str = r#"
tenant = "T"
[source]
kind = "imap"
host = "a"
[target]
kind = "imap"
host = "b"
password = "env:TARGET"
[options]
mailboxes_csv = "users.csv"
[[mailbox]]
email = "Alice@x"
password = "env:A"
"#;

#[test]
fn csv_rows_follow_inline_mailboxes() {
    let (mut m, csv) = parse(CSV_MANIFEST).expect("valid");
    let csv = csv.expect("csv named");
    assert_eq!(csv, Path::new("conf/users.csv"));
    let text = "EmailAddress,UserName,Password,TargetPassword\nbob@x,bob,s3cret,\ncarol@x,carol,env:C,file:carol.t\n";
    m.add_csv(&csv, text).expect("valid csv");
    let ids: Vec<&str> = m.mailboxes.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["Alice@x", "bob@x", "carol@x"]);
    let bob = &m.mailboxes[1];
    assert_eq!(bob.origin.to_string(), "conf/users.csv:2");
    match &bob.source_password {
        SecretRef::Inline(s) => assert_eq!(s.expose_secret(), "s3cret"),
        other => panic!("inline expected, got {other:?}"),
    }
    assert!(
        !format!("{m:?}").contains("s3cret"),
        "Debug must not print CSV passwords"
    );
    assert_eq!(bob.target_password.to_string(), "env:TARGET");
    assert_eq!(
        m.mailboxes[2].target_password.to_string(),
        "file:conf/carol.t"
    );
}

#[test]
fn duplicates_across_inline_and_csv_and_all_or_nothing() {
    let (mut m, csv) = parse(CSV_MANIFEST).expect("valid");
    let csv = csv.expect("csv named");
    let text =
        "EmailAddress,UserName,Password\nbob@x,bob,pw\nALICE@X,alice,pw\nBob@X,b2,pw\nnoat,x,pw\n";
    let got: Vec<String> = m
        .add_csv(&csv, text)
        .expect_err("dupes")
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "conf/users.csv:3: mailbox \"ALICE@X\" is listed twice (first at conf/manifest.toml:12); keep one of them",
            "conf/users.csv:4: mailbox \"Bob@X\" is listed twice (first at conf/users.csv:2); keep one of them",
            "conf/users.csv:5: EmailAddress: \"noat\" has no '@'; write the full e-mail address",
        ]
    );
    assert_eq!(m.mailboxes.len(), 1, "nothing added on error");
}

#[test]
fn csv_without_target_password_needs_a_default() {
    let text = CSV_MANIFEST.replace("password = \"env:TARGET\"\n", "");
    let got = parse(&text).expect_err("alice lacks a target password");
    assert_eq!(got.len(), 1, "{got:?}");
    let (mut m, _) = parse(CSV_MANIFEST).expect("valid");
    m.target.password = None;
    let err = m
        .add_csv(
            Path::new("u.csv"),
            "EmailAddress,UserName,Password\nbob@x,bob,pw\n",
        )
        .expect_err("no target pw");
    assert_eq!(
        err.to_string(),
        "u.csv:2: mailbox \"bob@x\": no target password; fill its TargetPassword cell (add the column if needed), or set password in [target]"
    );
}

#[test]
fn empty_csv_and_no_mailboxes() {
    let text = CSV_MANIFEST.replace(
        "[[mailbox]]\nemail = \"Alice@x\"\npassword = \"env:A\"\n",
        "",
    );
    let (mut m, csv) = parse(&text).expect("a CSV is named, so no mailboxes yet is fine");
    let err = m
        .add_csv(&csv.expect("csv"), "EmailAddress,UserName,Password\n")
        .expect_err("empty");
    assert_eq!(
        err.to_string(),
        "conf/users.csv: no mailboxes; add [[mailbox]] tables or set mailboxes_csv"
    );
}

#[test]
fn parse_with_reports_toml_and_csv_problems_together() {
    let text = CSV_MANIFEST.replace("host = \"a\"", "host = \"a\"\nport = 70000");
    let err = Manifest::parse_with(&text, Path::new(PATH), |p| {
        assert_eq!(p, Path::new("conf/users.csv"));
        Ok("EmailAddress,UserName\nx@y,x\n".to_owned())
    })
    .expect_err("both broken");
    assert_eq!(
        err.to_string(),
        "conf/manifest.toml:6: source.port: 70000 is not a port; write 1-65535, or leave it out for the default\n\
         conf/users.csv:1: missing column \"Password\"; the header row must name EmailAddress, UserName and Password"
    );

    let err = Manifest::parse_with(CSV_MANIFEST, Path::new(PATH), |_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not found",
        ))
    })
    .expect_err("unreadable");
    assert_eq!(
        err.to_string(),
        "conf/manifest.toml:11: mailboxes_csv: cannot read conf/users.csv: not found; check the path (relative to the manifest's directory)"
    );

    let m = Manifest::parse_with(CSV_MANIFEST, Path::new(PATH), |_| {
        Ok("EmailAddress,UserName,Password\nb@x,b,pw\n".into())
    })
    .expect("valid");
    assert_eq!(m.mailboxes.len(), 2);
}

#[test]
fn type_and_shape_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "source = \"imap\"",
            "source: expected a table ([source]), found a string",
        ),
        (
            "[source]\nport = \"993\"",
            "source.port: expected an integer, found a string",
        ),
        (
            "[options]\nslice_bytes = 0",
            "options.slice_bytes: 0 is not a positive number of bytes",
        ),
        (
            "[options]\nslice_bytes = 1.5",
            "options.slice_bytes: expected an integer or a string like \"256MiB\", found a float",
        ),
        (
            "[options]\ninclude = []",
            "options.include: empty, so no folder would be migrated",
        ),
        (
            "[options]\nexclude = \"Trash\"",
            "options.exclude: expected an array of strings, found a string",
        ),
        (
            "[mailbox]\nemail = \"a@b\"",
            "mailbox: expected [[mailbox]] tables, found a table",
        ),
        (
            "migration = \"Big Id\"",
            "migration: \"Big Id\" may hold only lowercase letters, digits and '-'",
        ),
        ("tenant = \"!!!\"", "tenant: gives an empty migration id"),
        (
            "[target]\nca_file = \"x.pem\"\ntls = \"none\"",
            "target.ca_file: has no effect with tls = \"none\"",
        ),
        (
            "mailboxes_csv = \"a.csv\"\n[options]\nmailboxes_csv = \"b.csv\"",
            "mailboxes_csv: set twice",
        ),
    ];
    for (snippet, want) in cases {
        let got = parse(snippet).expect_err(snippet);
        assert!(
            got.iter().any(|p| p.contains(want)),
            "{snippet}: want {want:?} in\n{}",
            got.join("\n")
        );
    }
}

#[test]
fn filters_and_per_mailbox_options() {
    let text = r#"
tenant = "t"
[source]
kind = "imap"
host = "s"
password = "env:S"
[target]
kind = "imap"
host = "t"
password = "env:T"
[options]
exclude_regex = ["^Trash(/|$)"]
since = "2015-01-01"
before = 2025-06-01
max_message_size = "20MB"
skip_flags = ["\\Deleted"]
[[options.rename]]
from = "^Old/(.*)$"
to = "Archive/$1"

[[mailbox]]
email = "a@x"

[[mailbox]]
email = "b@x"
options = { since = "2001-01-01", skip_flags = [] }
"#;
    let (m, _) = Manifest::parse(text, Path::new("m.toml")).expect("valid");
    let f = &m.options.filters;
    assert_eq!(f.since, chrono::NaiveDate::from_ymd_opt(2015, 1, 1));
    assert_eq!(f.before, chrono::NaiveDate::from_ymd_opt(2025, 6, 1));
    assert_eq!(f.max_message_size, Some(20_000_000));
    assert_eq!(f.skip_flags, ["\\Deleted"]);
    assert_eq!(
        m.options.renames,
        [("^Old/(.*)$".to_owned(), "Archive/$1".to_owned())]
    );
    assert!(!m.options.folder_selected("Trash/Old") && m.options.folder_selected("Trashy"));
    let a = &m.mailboxes[0];
    let b = &m.mailboxes[1];
    assert_eq!(m.options_for(a).filters, *f);
    let bf = &m.options_for(b).filters;
    assert_eq!(
        bf.since,
        chrono::NaiveDate::from_ymd_opt(2001, 1, 1),
        "overridden"
    );
    assert!(bf.skip_flags.is_empty(), "overridden");
    assert_eq!(bf.max_message_size, Some(20_000_000), "inherited");

    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("date");
    let none: Vec<String> = vec![];
    use super::Skip;
    for (size, flags, date, want) in [
        (10, none.clone(), "2020-01-01T00:00:00Z", Ok(())),
        (10, none.clone(), "2014-12-31T23:59:59Z", Err(Skip::TooOld)),
        (10, none.clone(), "2025-06-01T00:00:00Z", Err(Skip::TooNew)),
        (
            20_000_001,
            none.clone(),
            "2020-01-01T00:00:00Z",
            Err(Skip::TooLarge),
        ),
        (
            10,
            vec!["\\deleted".to_owned()],
            "2020-01-01T00:00:00Z",
            Err(Skip::Flagged),
        ),
    ] {
        assert_eq!(
            f.check(size, &flags, at(date)),
            want,
            "{size} {flags:?} {date}"
        );
    }
}

#[test]
fn bad_filters_are_reported_with_lines() {
    let text = r#"tenant = "t"
[source]
kind = "imap"
host = "s"
password = "env:S"
[target]
kind = "imap"
host = "t"
password = "env:T"
[options]
since = "yesterday"
exclude_regex = ["(unclosed"]
max_message_size = "huge"
[[options.rename]]
from = "["
to = "x"
[[mailbox]]
email = "a@x"
options = { slice_messages = 3 }
"#;
    let err = Manifest::parse(text, Path::new("m.toml"))
        .expect_err("invalid")
        .to_string();
    for want in [
        "m.toml:11",
        "m.toml:12",
        "m.toml:13",
        "m.toml:15",
        "m.toml:19",
        "yesterday",
        "not a regular expression",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn pop3_sources_take_password_logins_only() {
    let text = "tenant = \"t\"\n[source]\nkind = \"pop3\"\nhost = \"s\"\nlogin = \"master\"\nmaster_user = \"admin\"\npassword = \"env:S\"\n\
                [target]\nkind = \"imap\"\nhost = \"t\"\npassword = \"env:T\"\n[[mailbox]]\nemail = \"a@x\"\n";
    let err = Manifest::parse(text, Path::new("m.toml"))
        .expect_err("invalid")
        .to_string();
    assert!(
        err.contains("m.toml:5") && err.contains("not available for POP3"),
        "{err}"
    );
    let ok = text.replace("login = \"master\"\nmaster_user = \"admin\"\n", "");
    let (m, _) = Manifest::parse(&ok, Path::new("m.toml")).expect("valid");
    assert_eq!(m.source.kind, ServerKind::Pop3);
    assert_eq!(m.source.port, 995, "POP3S by default");
}

#[test]
fn imap_optionss_per_server() {
    let text = GOOD.replace(
        "password = \"env:SOURCE_ADMIN_PW\"\n",
        "password = \"env:SOURCE_ADMIN_PW\"\nfolder_prefix = \"INBOX.\"\nseparator = \".\"\n",
    );
    let (m, _) = parse(&text).expect("valid");
    assert_eq!(
        m.source.imap,
        ImapOptions {
            folder_prefix: Some("INBOX.".into()),
            separator: Some('.'),
            bare_lf: BareLf::Crlf,
        }
    );
    assert_eq!(m.target.imap, ImapOptions::default());
    // An empty prefix is a statement too: "no prefix, whatever NAMESPACE says".
    let text = GOOD.replace(
        "password = \"file:secrets/target\"\n",
        "password = \"file:secrets/target\"\nfolder_prefix = \"\"\n",
    );
    let (m, _) = parse(&text).expect("valid");
    assert_eq!(m.target.imap.folder_prefix.as_deref(), Some(""));
    let refuse = GOOD.replace(
        "password = \"file:secrets/target\"\n",
        "password = \"file:secrets/target\"\nbare_lf = \"refuse\"\n",
    );
    let (m, _) = parse(&refuse).expect("valid");
    assert_eq!(m.target.imap.bare_lf, BareLf::Refuse);

    let bad = GOOD.replace(
        "password = \"env:SOURCE_ADMIN_PW\"\n",
        "password = \"env:SOURCE_ADMIN_PW\"\nfolder_prefix = \"IN*\"\nseparator = \"::\"\n",
    );
    let errs = parse(&bad).expect_err("invalid");
    assert!(
        errs.iter()
            .any(|e| e.contains("source.folder_prefix") && e.contains("`*`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("source.separator") && e.contains("\"::\"")),
        "{errs:?}"
    );
}
