//! PST sources: `[source] kind = "pst"` with `location` (the directory or shared volume
//! the workers read the files from) and `mapping_csv`, Microsoft Purview's PST Import
//! mapping file, accepted unchanged:
//!
//! `Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage,SPFileContainer,SPManifestContainer,SPSiteUrl`
//!
//! - `Workload` must be `Exchange` (Purview's SharePoint rows import into SharePoint);
//! - `FilePath` (a folder under `location`, may be blank) and `Name` locate the file,
//!   case-sensitively, as Purview does;
//! - `Mailbox` is the target mailbox; several rows per mailbox are normal
//!   (`outlook.pst` and `archive.pst`);
//! - `IsArchive` `TRUE` imports into the archive mailbox (blank or `FALSE`: primary);
//! - `TargetRootFolder`: blank = a new folder `Imported` at the root, `/` = merged into
//!   the mailbox's own folders, `/<name>` = under that folder;
//! - `ContentCodePage`: the Windows code page of an ANSI PST (e.g. 932);
//! - the `SP*` columns are for SharePoint and are ignored.
//!
//! Every problem is reported at once with its line; nothing here touches the files
//! (whether each exists and is a PST is `plan`'s and the workers' business).

use super::fields::Fields;
use super::mailbox::{RawMailbox, check_email};
use super::problem::{Origin, Problem, Sink};
use super::server::Reached;
use super::{Login, TlsMode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Purview's columns, in its order: (name, required).
const COLUMNS: [(&str, bool); 10] = [
    ("Workload", true),
    ("FilePath", true),
    ("Name", true),
    ("Mailbox", true),
    ("IsArchive", true),
    ("TargetRootFolder", true),
    ("ContentCodePage", false),
    ("SPFileContainer", false),
    ("SPManifestContainer", false),
    ("SPSiteUrl", false),
];

/// The header Purview's template has, for error messages.
const HEADER: &str = "Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage,SPFileContainer,SPManifestContainer,SPSiteUrl";

/// Where a PST source's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PstSource {
    /// The directory the CSV's paths are relative to, resolved against the manifest's
    /// directory.
    pub location: PathBuf,
    /// The mapping CSV, resolved against the manifest's directory.
    pub mapping_csv: PathBuf,
}

/// Where a PST's folders go in the mailbox (`TargetRootFolder`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetRoot {
    /// Blank: under a new folder `Imported` at the root.
    Imported,
    /// `/`: merged into the mailbox's own folders (PST Inbox into Inbox, special
    /// folders by name, localised names included).
    Merge,
    /// `/<a>/<b>`: under that folder (created when missing).
    Under(Vec<String>),
}

/// One row of the mapping CSV: a PST file and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PstFile {
    /// `FilePath/Name` as written (`/`-joined, without a leading `/`): the row's
    /// identity in the ledger, so a re-export under the same name is recognised.
    pub key: String,
    /// The file: `location/FilePath/Name`.
    pub path: PathBuf,
    /// `IsArchive`.
    pub archive: bool,
    /// `TargetRootFolder`.
    pub root: TargetRoot,
    /// `ContentCodePage`, when given.
    pub codepage: Option<u16>,
    /// The CSV line, for messages.
    pub origin: Origin,
}

/// `[source]` keys of a PST source.
pub(super) const PST_KEYS: &[&str] = &["location", "mapping_csv"];

/// `[source]` keys that a PST source does not use.
const NOT_FOR_PST: &[&str] = &[
    "host",
    "port",
    "tls",
    "tls_verify",
    "ca_file",
    "password",
    "max_connections_per_mailbox",
];

/// Reads a `[source]` of kind `pst`: `location` and `mapping_csv`, both resolved
/// against `base_dir`. The server config it stands in for names the location as its
/// host (for logs); there is no login.
pub(super) fn read_source(
    f: &Fields<'_, '_>,
    sink: &mut Sink,
    base_dir: &Path,
) -> (Reached, Option<(PstSource, Origin)>) {
    for key in NOT_FOR_PST
        .iter()
        .chain(super::login::LOGIN_KEYS)
        .chain(super::http_target::HTTP_KEYS)
    {
        if let Some((_, at)) = f.get(key) {
            sink.at(
                Some(at),
                format!(
                    "{}: not used by a PST source (it reads files); remove it",
                    f.name(key)
                ),
            );
        }
    }
    let location = f.nonblank(sink, "location", "the directory that holds the PST files");
    if f.get("location").is_none() {
        f.missing(sink, "location", "\"/mnt/psts\"");
    }
    let csv = f.nonblank(sink, "mapping_csv", "the Purview mapping CSV's path");
    if f.get("mapping_csv").is_none() {
        f.missing(sink, "mapping_csv", "\"PstImportMappingFile.csv\"");
    }
    let pst = match (&location, csv) {
        (Some((loc, _)), Some((csv, at))) => Some((
            PstSource {
                location: base_dir.join(loc),
                mapping_csv: base_dir.join(csv),
            },
            sink.origin(Some(at)),
        )),
        _ => None,
    };
    let reached = Reached {
        host: location.map(|(l, _)| format!("pst:{l}")),
        port: Some(0),
        tls: TlsMode::None,
        login: Some(Login::Password),
        password: Some(super::login::unused_password()),
        http: None,
    };
    (reached, pst)
}

/// Parses the mapping CSV at `path` (text `text`) against `location`: one raw mailbox
/// per distinct `Mailbox` (ignoring case), with its files in row order.
pub(super) fn parse_rows(
    path: &Path,
    text: &str,
    location: &Path,
) -> (Vec<RawMailbox>, Vec<Problem>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sink = Sink::new(path, text);
    let start_of = |position: Option<&csv::Position>| {
        let byte = position.map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
        let rest = text.get(byte..).unwrap_or("");
        Some(byte + (rest.len() - rest.trim_start_matches(['\r', '\n']).len()))
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            sink.at(start_of(None), format!("cannot read the header row: {e}"));
            return (Vec::new(), sink.into_sorted());
        }
    };
    let header_at = start_of(header.position());
    let Some(layout) = read_header(&header, |m| sink.at(header_at, m)) else {
        return (Vec::new(), sink.into_sorted());
    };
    let mut out: Vec<RawMailbox> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut seen_files: HashMap<String, Origin> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                sink.at(start_of(e.position()), format!("unreadable row: {e}"));
                continue;
            }
        };
        let at = start_of(record.position());
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if record.len() != header.len() {
            sink.at(
                at,
                format!(
                    "row has {} fields but the header has {}; check for a missing or extra comma",
                    record.len(),
                    header.len()
                ),
            );
            continue;
        }
        let cell = |i: usize| layout[i].and_then(|c| record.get(c)).unwrap_or("").trim();
        let before = sink.problems.len();
        let workload = cell(0);
        if !workload.eq_ignore_ascii_case("exchange") {
            let why = if workload.is_empty() {
                "Workload: empty; write Exchange".to_owned()
            } else {
                format!(
                    "Workload: \"{workload}\" rows import into SharePoint, which mailhaul does not do; \
                     write Exchange, or remove the row"
                )
            };
            sink.at(at, why);
        }
        let folder = cell(1).trim_matches('/');
        let name = cell(2);
        if name.is_empty() {
            sink.at(
                at,
                "Name: empty; write the PST's file name (e.g. outlook.pst)",
            );
        } else if name.contains(['/', '\\']) {
            sink.at(
                at,
                format!("Name: \"{name}\" contains a path; put the folder in FilePath and the file name in Name"),
            );
        }
        let mailbox = cell(3);
        if let Err(why) = check_email(mailbox) {
            sink.at(at, format!("Mailbox: {why}"));
        }
        let archive = match cell(4).to_ascii_uppercase().as_str() {
            "" | "FALSE" => false,
            "TRUE" => true,
            other => {
                sink.at(at, format!("IsArchive: \"{other}\" is not TRUE or FALSE"));
                false
            }
        };
        let root = match target_root(cell(5)) {
            Ok(r) => r,
            Err(why) => {
                sink.at(at, format!("TargetRootFolder: {why}"));
                TargetRoot::Imported
            }
        };
        let codepage = match cell(6) {
            "" => None,
            cp => match cp.parse::<u16>() {
                Ok(n)
                    if codepage::to_encoding_no_replacement(n).is_some()
                        && n != 1200
                        && n != 1201 =>
                {
                    Some(n)
                }
                _ => {
                    sink.at(
                        at,
                        format!(
                            "ContentCodePage: \"{cp}\" is not a Windows code page for 8-bit text; write a \
                             number such as 1252 (Western European), 1251 (Cyrillic) or 932 (Japanese)"
                        ),
                    );
                    None
                }
            },
        };
        if sink.problems.len() > before {
            continue;
        }
        let key = if folder.is_empty() {
            name.to_owned()
        } else {
            format!("{folder}/{name}")
        };
        let origin = sink.origin(at);
        if let Some(first) = seen_files.get(&key) {
            sink.at(
                at,
                format!(
                    "the file \"{key}\" is listed twice (first at {first}); keep one row per file"
                ),
            );
            continue;
        }
        seen_files.insert(key.clone(), origin.clone());
        let file = PstFile {
            path: location.join(&key),
            key,
            archive,
            root,
            codepage,
            origin: origin.clone(),
        };
        let lower = mailbox.to_lowercase();
        match index.get(&lower) {
            Some(&i) => out[i].pst.push(file),
            None => {
                index.insert(lower, out.len());
                out.push(RawMailbox {
                    email: mailbox.to_owned(),
                    source_user: None,
                    source_password: None,
                    target_email: None,
                    target_user: None,
                    target_password: None,
                    origin,
                    options: None,
                    from_csv: true,
                    pst: vec![file],
                });
            }
        }
    }
    (out, sink.into_sorted())
}

/// `TargetRootFolder` as Purview writes it.
fn target_root(cell: &str) -> Result<TargetRoot, String> {
    match cell {
        "" => Ok(TargetRoot::Imported),
        "/" => Ok(TargetRoot::Merge),
        c if c.starts_with('/') => {
            let segments: Vec<String> = c
                .trim_matches('/')
                .split('/')
                .map(str::trim)
                .map(str::to_owned)
                .collect();
            if segments.iter().any(String::is_empty) {
                return Err(format!(
                    "\"{c}\" has an empty folder name; write /Folder or /Folder/Sub"
                ));
            }
            Ok(TargetRoot::Under(segments))
        }
        c => Err(format!(
            "\"{c}\" must be blank (a new folder Imported), / (the mailbox's own folders) or start \
             with / (e.g. /{c})"
        )),
    }
}

/// Maps header names to [`COLUMNS`]; `None` when a required one is missing.
fn read_header(
    header: &csv::StringRecord,
    mut report: impl FnMut(String),
) -> Option<[Option<usize>; 10]> {
    let mut layout = [None; 10];
    for (index, name) in header.iter().enumerate() {
        let name = name.trim();
        match COLUMNS
            .iter()
            .position(|(c, _)| c.eq_ignore_ascii_case(name))
        {
            Some(col) if layout[col].is_some() => {
                report(format!("column \"{name}\" appears twice; keep one"));
            }
            Some(col) => layout[col] = Some(index),
            None => report(format!(
                "unknown column \"{name}\"; a PST mapping CSV has Purview's header: {HEADER}"
            )),
        }
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .zip(layout)
        .filter(|((_, required), found)| *required && found.is_none())
        .map(|((name, _), _)| *name)
        .collect();
    if !missing.is_empty() {
        report(format!(
            "missing column(s) {}; a PST mapping CSV has Purview's header: {HEADER}",
            missing.join(", ")
        ));
        return None;
    }
    Some(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<RawMailbox>, Vec<String>) {
        let (rows, problems) = parse_rows(Path::new("map.csv"), text, Path::new("/mnt/psts"));
        (rows, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn purviews_format_is_read_as_it_is() {
        let text = format!(
            "\u{feff}{HEADER}\r\n\
             Exchange,,outlook.pst,Ann@contoso.com,FALSE,,,,,\r\n\
             Exchange,Finance/2019,archive.pst,ann@contoso.com,TRUE,/,,,,\r\n\
             exchange,/jp/,old.pst,ken@contoso.com,,/Old Mail/2001,932,,,\r\n"
        );
        let (rows, problems) = parse(&text);
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(rows.len(), 2, "rows of one mailbox are grouped");
        let ann = &rows[0];
        assert_eq!(ann.email, "Ann@contoso.com");
        assert_eq!(ann.pst.len(), 2);
        assert_eq!(ann.pst[0].key, "outlook.pst");
        assert_eq!(ann.pst[0].path, Path::new("/mnt/psts/outlook.pst"));
        assert_eq!(
            (ann.pst[0].archive, &ann.pst[0].root),
            (false, &TargetRoot::Imported)
        );
        assert_eq!(ann.pst[1].key, "Finance/2019/archive.pst");
        assert_eq!(
            (ann.pst[1].archive, &ann.pst[1].root, ann.pst[1].origin.line),
            (true, &TargetRoot::Merge, 3)
        );
        let ken = &rows[1].pst[0];
        assert_eq!(ken.key, "jp/old.pst");
        assert_eq!(
            ken.root,
            TargetRoot::Under(vec!["Old Mail".into(), "2001".into()])
        );
        assert_eq!(ken.codepage, Some(932));
    }

    #[test]
    fn every_row_problem_is_reported_with_its_line() {
        let text = format!(
            "{HEADER}\n\
             SharePoint,,a.pst,a@x.com,FALSE,,,,,\n\
             Exchange,,,b@x.com,FALSE,,,,,\n\
             Exchange,,c.pst,nobody,maybe,Inbox,99999,,,\n\
             Exchange,,d.pst,d@x.com,FALSE,,,\n\
             Exchange,,e.pst,e@x.com,FALSE,,,,,\n\
             Exchange,,e.pst,e@x.com,FALSE,,,,,\n"
        );
        let (rows, problems) = parse(&text);
        assert_eq!(rows.len(), 1);
        let want = [
            "map.csv:2: Workload: \"SharePoint\" rows import into SharePoint",
            "map.csv:3: Name: empty",
            "map.csv:4: Mailbox: \"nobody\" has no '@'",
            "map.csv:4: IsArchive: \"MAYBE\" is not TRUE or FALSE",
            "map.csv:4: TargetRootFolder: \"Inbox\" must be blank",
            "map.csv:4: ContentCodePage: \"99999\" is not a Windows code page",
            "map.csv:5: row has 8 fields but the header has 10",
            "map.csv:7: the file \"e.pst\" is listed twice (first at map.csv:6)",
        ];
        assert_eq!(problems.len(), want.len(), "{problems:#?}");
        for (p, w) in problems.iter().zip(want) {
            assert!(p.starts_with(w), "{p} / {w}");
        }
    }

    #[test]
    fn a_wrong_header_names_purviews() {
        let (rows, problems) = parse("EmailAddress,UserName,Password\na@x,a,pw\n");
        assert!(rows.is_empty());
        assert!(problems.iter().any(|p| p.starts_with("map.csv:1: missing column(s) Workload, FilePath, Name, Mailbox, IsArchive, TargetRootFolder") && p.contains(HEADER)), "{problems:?}");
    }

    #[test]
    fn a_pst_manifest_loads_with_its_mapping_csv() {
        use super::super::{Manifest, ServerKind};
        let toml = "tenant = \"T\"\n[source]\nkind = \"pst\"\nlocation = \"psts\"\n\
                    mapping_csv = \"map.csv\"\n[target]\nkind = \"imap\"\nhost = \"t\"\n\
                    login = \"master\"\nmaster_user = \"admin\"\npassword = \"env:T\"\n";
        let csv = format!(
            "{HEADER}\nExchange,,a.pst,a@x.com,FALSE,,,,,\nExchange,,b.pst,a@x.com,FALSE,/,,,,\n"
        );
        let m = Manifest::parse_with(toml, Path::new("/conf/m.toml"), |p| {
            assert_eq!(p, Path::new("/conf/map.csv"));
            Ok(csv.clone())
        })
        .expect("valid");
        assert_eq!(m.source.kind, ServerKind::Pst);
        assert_eq!(
            m.pst.as_ref().map(|p| p.location.clone()),
            Some(PathBuf::from("/conf/psts"))
        );
        assert_eq!(m.mailboxes.len(), 1);
        assert_eq!(m.mailboxes[0].pst.len(), 2);
        assert_eq!(m.mailboxes[0].pst[1].path, Path::new("/conf/psts/b.pst"));

        let bad = "tenant = \"T\"\n[source]\nkind = \"pst\"\nhost = \"h\"\n\
                   [target]\nkind = \"imap\"\nhost = \"t\"\n\
                   [[mailbox]]\nemail = \"a@x\"\n";
        let err =
            Manifest::parse_with(bad, Path::new("m.toml"), |_| Ok(String::new())).expect_err("bad");
        let text = err.to_string();
        for want in [
            "m.toml:2: source.location: missing",
            "m.toml:2: source.mapping_csv: missing",
            "m.toml:4: source.host: not used by a PST source",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
        let both = toml.replace("[target]", "mailboxes_csv = \"u.csv\"\n[target]");
        let err = Manifest::parse_with(
            &format!("mailboxes_csv = \"u.csv\"\n{toml}"),
            Path::new("m.toml"),
            |_| Ok(csv.clone()),
        )
        .expect_err("two lists");
        assert!(err.to_string().contains("m.toml:1: mailboxes_csv: with a PST source the mailboxes come from [source].mapping_csv"), "{err}");
        assert!(Manifest::parse_with(&both, Path::new("m.toml"), |_| Ok(csv.clone())).is_err());
    }
}
