//! Reads the manifest's TOML into a [`Draft`]: every field typed and checked, every
//! problem recorded with its line, defaults applied where the manifest leaves a value
//! out. Cross-mailbox checks (passwords, duplicates) happen later in `mod.rs`, once the
//! CSV rows are known too.

use super::ServerConfig;
use super::fields::{Fields, TOP_LEVEL, article, items_of};
use super::mailbox::{RawMailbox, check_email};
use super::options::{self, Options};
use super::problem::{Origin, Sink};
use super::pst_csv::PstSource;
use super::secret::SecretRef;
use super::server::read_server;
use crate::ids::MigrationId;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

/// What the manifest said, as far as it could be read.
#[derive(Debug)]
pub(super) struct Draft {
    pub(super) tenant: Option<String>,
    pub(super) migration: Option<MigrationId>,
    pub(super) source: Option<ServerConfig>,
    pub(super) target: Option<ServerConfig>,
    /// `[source].password` / `[target].password`, kept even when the rest of the table
    /// is broken so mailboxes are not blamed for a missing default.
    pub(super) source_password: Option<SecretRef>,
    pub(super) target_password: Option<SecretRef>,
    pub(super) options: Options,
    pub(super) mailboxes: Vec<RawMailbox>,
    /// How many `[[mailbox]]` tables were written, good or bad.
    pub(super) mailbox_entries: usize,
    /// The CSV to read (resolved against the manifest's directory) and where it was named.
    pub(super) csv: Option<(PathBuf, Origin)>,
    /// A PST source's location and mapping CSV, and where `mapping_csv` was written.
    pub(super) pst: Option<(PstSource, Origin)>,
}

const OPTIONS: &[&str] = &[
    "slice_messages",
    "slice_bytes",
    "include",
    "exclude",
    "include_regex",
    "exclude_regex",
    "since",
    "before",
    "max_message_size",
    "skip_flags",
    "rename",
    "discovery_concurrency",
    "mailboxes_csv",
];
/// What a mailbox's own `options` table may override.
const MAILBOX_OPTIONS: &[&str] = &[
    "include",
    "exclude",
    "include_regex",
    "exclude_regex",
    "since",
    "before",
    "max_message_size",
    "skip_flags",
    "rename",
];
const MAILBOX: &[&str] = &[
    "email",
    "username",
    "password",
    "target_email",
    "target_username",
    "target_password",
    "options",
];

/// Parses and checks the manifest text; `sink` collects the problems.
pub(super) fn read_document(text: &str, sink: &mut Sink) -> Draft {
    let (root, errors) = DeTable::parse_recoverable(text);
    for e in errors {
        sink.at(
            e.span().map(|s| s.start),
            format!("toml syntax error: {}", e.message()),
        );
    }
    let base_dir = sink.file().parent().unwrap_or(Path::new("")).to_path_buf();
    let top = Fields::new(
        sink,
        root.get_ref(),
        String::new(),
        "the top of the manifest".into(),
        None,
        TOP_LEVEL,
    );
    let tenant = top
        .nonblank(sink, "tenant", "the organisation's name")
        .map(|(t, _)| t);
    if top.get("tenant").is_none() {
        top.missing(sink, "tenant", "\"Contoso Ltd\"");
    }
    let migration = read_migration(&top, sink, tenant.as_deref());
    let (source, source_password, pst) = read_server(&top, sink, "source", &base_dir);
    let (target, target_password, _) = read_server(&top, sink, "target", &base_dir);

    let mut options = Options::default();
    let mut csv = top.nonblank(sink, "mailboxes_csv", "the CSV's path");
    if let Some((table, header)) = sub_table(&top, sink, "options") {
        let place = "[options]".to_owned();
        let fields = Fields::new(sink, table, "options.".into(), place, Some(header), OPTIONS);
        options = read_options(&fields, sink, &Options::default());
        if let Some(inner) = fields.nonblank(sink, "mailboxes_csv", "the CSV's path") {
            if csv.is_some() {
                let why = "mailboxes_csv: set twice (top level and [options]); keep one";
                sink.at(Some(inner.1), why);
            }
            csv = Some(inner);
        }
    }
    let csv = csv.map(|(name, at)| (base_dir.join(name), sink.origin(Some(at))));
    let (mailboxes, mailbox_entries) = read_mailboxes(&top, sink, &base_dir, &options);
    if pst.is_some() {
        // The mapping CSV names the mailboxes; a second list would only disagree with it.
        for (key, what) in [
            ("mailbox", "[[mailbox]] tables"),
            ("mailboxes_csv", "mailboxes_csv"),
        ] {
            if let Some((_, at)) = top.get(key) {
                sink.at(
                    Some(at),
                    format!("{what}: with a PST source the mailboxes come from [source].mapping_csv; remove this"),
                );
            }
        }
        if let Some((_, at)) = csv.as_ref()
            && top.get("mailboxes_csv").is_none()
        {
            let why = "options.mailboxes_csv: with a PST source the mailboxes come from \
                       [source].mapping_csv; remove this";
            sink.problems.push(super::problem::Problem {
                origin: at.clone(),
                message: why.to_owned(),
            });
        }
    }
    Draft {
        pst,
        tenant,
        migration,
        source,
        target,
        source_password,
        target_password,
        options,
        mailboxes,
        mailbox_entries,
        csv,
    }
}

/// The explicit `migration` id, checked; else the one derived from the tenant.
fn read_migration(
    top: &Fields<'_, '_>,
    sink: &mut Sink,
    tenant: Option<&str>,
) -> Option<MigrationId> {
    if let Some((id, at)) = top.nonblank(sink, "migration", "an id like \"contoso-2026\"") {
        let ok = id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            sink.at(
                Some(at),
                format!("migration: \"{id}\" may hold only lowercase letters, digits and '-'"),
            );
            return None;
        }
        return Some(MigrationId(id));
    }
    let derived = MigrationId::from_tenant(tenant?);
    if derived.0.is_empty() {
        let at = top.get("tenant").map(|(_, at)| at);
        sink.at(
            at,
            "tenant: gives an empty migration id; add migration = \"an-id\" (letters, digits, '-')",
        );
        return None;
    }
    Some(derived)
}

/// A sub-table `key` of `parent`, with the offset of its header; a non-table is a problem.
pub(super) fn sub_table<'t, 'i>(
    parent: &Fields<'t, 'i>,
    sink: &mut Sink,
    key: &str,
) -> Option<(&'t DeTable<'i>, usize)> {
    let (value, at) = parent.get(key)?;
    match value {
        DeValue::Table(t) => Some((t, at)),
        other => {
            sink.at(
                Some(at),
                format!(
                    "{}: expected a table ([{key}]), found {}",
                    parent.name(key),
                    article(other)
                ),
            );
            None
        }
    }
}

/// `[options]` (or a mailbox's `options`), each field taken from `base` when absent
/// or bad (bad ones are reported).
fn read_options(f: &Fields<'_, '_>, sink: &mut Sink, base: &Options) -> Options {
    let mut o = Options {
        slice_messages: f.count(sink, "slice_messages", base.slice_messages),
        discovery_concurrency: f.count(sink, "discovery_concurrency", base.discovery_concurrency),
        ..base.clone()
    };
    read_filters(f, sink, &mut o);
    if let Some(bytes) = size(f, sink, "slice_bytes") {
        o.slice_bytes = bytes;
    }
    for (key, list) in [("include", &mut o.include), ("exclude", &mut o.exclude)] {
        let Some(patterns) = f.strings(sink, key) else {
            continue;
        };
        for (pattern, at) in &patterns {
            if let Err(why) = options::check_pattern(pattern) {
                sink.at(Some(*at), format!("{}: {why}", f.name(key)));
            }
        }
        *list = patterns.into_iter().map(|(p, _)| p).collect();
    }
    if let Some((_, at)) = f.get("include")
        && o.include.is_empty()
    {
        sink.at(Some(at), "options.include: empty, so no folder would be migrated; leave it out to take all (\"*\")");
    }
    o
}

/// The readable inline `[[mailbox]]` tables, in file order, and how many were written.
fn read_mailboxes(
    top: &Fields<'_, '_>,
    sink: &mut Sink,
    base_dir: &Path,
    tenant_options: &Options,
) -> (Vec<RawMailbox>, usize) {
    let Some((value, at)) = top.get("mailbox") else {
        return (Vec::new(), 0);
    };
    let DeValue::Array(items) = value else {
        sink.at(
            Some(at),
            format!(
                "mailbox: expected [[mailbox]] tables, found {}",
                article(value)
            ),
        );
        return (Vec::new(), 1);
    };
    let mut out = Vec::new();
    let mut entries = 0;
    for (index, item) in items_of(items).enumerate() {
        entries += 1;
        let header = item.span().start;
        let DeValue::Table(table) = item.get_ref() else {
            sink.at(
                Some(header),
                format!(
                    "mailbox #{}: expected a table, found {}",
                    index + 1,
                    article(item.get_ref())
                ),
            );
            continue;
        };
        let written = table
            .get("email")
            .and_then(|v| v.get_ref().as_str())
            .map(str::trim)
            .unwrap_or("");
        let prefix = if written.is_empty() {
            format!("mailbox #{}: ", index + 1)
        } else {
            format!("mailbox \"{written}\": ")
        };
        let f = Fields::new(
            sink,
            table,
            prefix,
            "this [[mailbox]]".into(),
            Some(header),
            MAILBOX,
        );
        let email = match f.string(sink, "email") {
            Some((email, at)) => match check_email(email.trim()) {
                Ok(()) => Some(email.trim().to_owned()),
                Err(why) => {
                    sink.at(Some(at), format!("{}: {why}", f.name("email")));
                    None
                }
            },
            None => {
                if f.get("email").is_none() {
                    f.missing(sink, "email", "\"alice@contoso.example\"");
                }
                None
            }
        };
        let target_email = f
            .nonblank(sink, "target_email", "the target address")
            .and_then(|(t, at)| match check_email(&t) {
                Ok(()) => Some(t),
                Err(why) => {
                    sink.at(Some(at), format!("{}: {why}", f.name("target_email")));
                    None
                }
            });
        let raw = RawMailbox {
            email: email.unwrap_or_default(),
            source_user: f
                .nonblank(sink, "username", "the source login")
                .map(|(u, _)| u),
            source_password: f.secret(sink, "password", base_dir),
            target_email,
            target_user: f
                .nonblank(sink, "target_username", "the target login")
                .map(|(u, _)| u),
            target_password: f.secret(sink, "target_password", base_dir),
            origin: sink.origin(Some(header)),
            options: sub_table(&f, sink, "options").map(|(table, at)| {
                let place = "this mailbox's options".to_owned();
                let prefix = format!("{}options.", f.name(""));
                let o = Fields::new(sink, table, prefix, place, Some(at), MAILBOX_OPTIONS);
                read_options(&o, sink, tenant_options)
            }),
            from_csv: false,
            pst: Vec::new(),
        };
        if !raw.email.is_empty() {
            out.push(raw);
        }
    }
    (out, entries)
}

/// A size given as an integer (bytes) or a string like `"25MB"`.
pub(super) fn size(f: &Fields<'_, '_>, sink: &mut Sink, key: &str) -> Option<u64> {
    let (value, at) = f.get(key)?;
    let parsed = match value {
        DeValue::Integer(_) => f.integer(sink, key).map(|(n, _)| {
            u64::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{n} is not a positive number of bytes"))
        }),
        DeValue::String(s) => Some(options::parse_size(s)),
        other => Some(Err(format!(
            "expected an integer or a string like \"256MiB\", found {}",
            article(other)
        ))),
    };
    match parsed {
        Some(Ok(bytes)) => Some(bytes),
        Some(Err(why)) => {
            sink.at(Some(at), format!("{}: {why}", f.name(key)));
            None
        }
        None => None,
    }
}

/// A day, written `2024-01-31` (a TOML date or a string).
fn day(f: &Fields<'_, '_>, sink: &mut Sink, key: &str) -> Option<chrono::NaiveDate> {
    let (value, at) = f.get(key)?;
    let text = match value {
        DeValue::String(s) => s.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        other => {
            sink.at(
                Some(at),
                format!(
                    "{}: expected a date like 2024-01-31, found {}",
                    f.name(key),
                    article(other)
                ),
            );
            return None;
        }
    };
    match chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            sink.at(
                Some(at),
                format!(
                    "{}: {text:?} is not a date; write it like 2024-01-31",
                    f.name(key)
                ),
            );
            None
        }
    }
}

/// Regex folder selection, message filters and renames.
fn read_filters(f: &Fields<'_, '_>, sink: &mut Sink, o: &mut Options) {
    for (key, list) in [
        ("include_regex", &mut o.include_regex),
        ("exclude_regex", &mut o.exclude_regex),
    ] {
        if let Some(patterns) = f.strings(sink, key) {
            for (p, at) in &patterns {
                if let Err(e) = regex::Regex::new(p) {
                    sink.at(
                        Some(*at),
                        format!("{}: {p:?} is not a regular expression: {e}", f.name(key)),
                    );
                }
            }
            *list = patterns.into_iter().map(|(p, _)| p).collect();
        }
    }
    if f.get("since").is_some() {
        o.filters.since = day(f, sink, "since");
    }
    if f.get("before").is_some() {
        o.filters.before = day(f, sink, "before");
    }
    if let (Some(since), Some(before), Some((_, at))) =
        (o.filters.since, o.filters.before, f.get("before"))
        && since >= before
    {
        sink.at(
            Some(at),
            format!(
                "{}: {before} is not after since ({since}), so no message would go",
                f.name("before")
            ),
        );
    }
    if f.get("max_message_size").is_some() {
        o.filters.max_message_size = size(f, sink, "max_message_size");
    }
    if let Some(flags) = f.strings(sink, "skip_flags") {
        o.filters.skip_flags = flags.into_iter().map(|(s, _)| s).collect();
    }
    if let Some((value, at)) = f.get("rename") {
        let DeValue::Array(items) = value else {
            sink.at(
                Some(at),
                format!(
                    "{}: expected [[options.rename]] tables with from and to",
                    f.name("rename")
                ),
            );
            return;
        };
        o.renames.clear();
        for item in items_of(items) {
            let DeValue::Table(t) = item.get_ref() else {
                sink.at(
                    Some(item.span().start),
                    format!("{}: expected a table with from and to", f.name("rename")),
                );
                continue;
            };
            let r = Fields::new(
                sink,
                t,
                f.name("rename."),
                "this rename".into(),
                Some(item.span().start),
                &["from", "to"],
            );
            let from = r.string(sink, "from");
            let to = r.string(sink, "to");
            match (from, to) {
                (Some((from, fat)), Some((to, _))) => match regex::Regex::new(&from) {
                    Ok(_) => o.renames.push((from, to)),
                    Err(e) => sink.at(
                        Some(fat),
                        format!(
                            "{}: {from:?} is not a regular expression: {e}",
                            r.name("from")
                        ),
                    ),
                },
                _ => sink.at(
                    Some(item.span().start),
                    format!("{}: needs both from and to", f.name("rename")),
                ),
            }
        }
    }
}
