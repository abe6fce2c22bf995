//! Maps a mailbox's whole source folder tree onto target paths, deterministically.
//!
//! In order: special folders go to the target's folder of the same role (SPECIAL-USE on
//! the target, found by LIST) and their subfolders follow; INBOX is spelled `INBOX`;
//! user rename rules apply to the '/'-joined path (first matching rule wins); reserved
//! names get a suffix; a name holding the target's hierarchy separator or a character
//! the target refuses has it replaced by `_` (`v1.2 Release` onto a `.` server becomes
//! `v1_2 Release`, never an extra level); and two different folders that would land on one target path
//! (case-insensitively on Exchange) are told apart by a ` (2)`, ` (3)` suffix — except
//! special folders of one role, which are merged, as an Outlook PST import merges them.
//! Parents are mapped before children, so a renamed parent takes its children along.
//! Every decision that changes a name is noted for `mailhaul plan`.

use crate::special::SpecialUse;
use std::collections::HashMap;

/// One source folder to map.
#[derive(Debug, Clone)]
pub struct SourceFolder {
    /// Decoded path segments.
    pub segments: Vec<String>,
    /// RFC 6154 attribute the source server gave it, if any.
    pub special_use: Option<String>,
}

/// How names are rewritten.
#[derive(Debug, Clone, Default)]
pub struct MapRules {
    /// `(pattern, replacement)` over the '/'-joined path; `$1` etc. refer to groups.
    pub renames: Vec<(regex::Regex, String)>,
    /// Whether the target compares folder names case-insensitively (Exchange does).
    pub case_insensitive: bool,
    /// Names the target refuses (Exchange IMAP: `Files`), compared case-insensitively.
    pub reserved: Vec<String>,
    /// The target's hierarchy separator (IMAP), which no name may hold.
    pub separator: Option<char>,
    /// Other characters the target refuses in names ([`crate::mapping::forbidden_chars`]).
    pub forbidden: Vec<char>,
}

/// Where one source folder goes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Target path segments.
    pub target: Vec<String>,
    /// The folder's special role, if it has one.
    pub special: Option<SpecialUse>,
    /// Human-readable notes on every name change (empty when the name is kept).
    pub notes: Vec<String>,
}

/// Maps `source` (any order) given the target's special folders; the result is in the
/// same order as `source`.
pub fn map_tree(
    source: &[SourceFolder],
    target_specials: &HashMap<SpecialUse, Vec<String>>,
    rules: &MapRules,
) -> Vec<Mapping> {
    let path = |s: &[String]| s.join("/");
    let fold = |s: &str| {
        if rules.case_insensitive {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let mut order: Vec<usize> = (0..source.len()).collect();
    // Parents first; at each depth, names the target can hold as they are claim their
    // names before those that need fitting (so `v1_2` keeps its name and `v1.2`,
    // fitted to `v1_2` too, is the one told apart); then by path, for determinism.
    let needs_fit = |segs: &[String]| {
        segs.iter()
            .any(|s| crate::mapping::fit_segment(s, rules.separator, &rules.forbidden).is_some())
    };
    order.sort_by_key(|&i| {
        let segs = &source[i].segments;
        (segs.len(), needs_fit(segs), path(segs))
    });

    // Source path -> target segments, for folders whose name changed (children follow).
    let mut moved: HashMap<String, Vec<String>> = HashMap::new();
    // Folded target path -> (source index, special role) of the folder that took it.
    let mut taken: HashMap<String, (usize, Option<SpecialUse>)> = HashMap::new();
    let mut out: Vec<Option<Mapping>> = vec![None; source.len()];

    for i in order {
        let f = &source[i];
        let mut notes = Vec::new();
        let by_attr = f
            .special_use
            .as_deref()
            .and_then(SpecialUse::from_attribute);
        let special = by_attr.or_else(|| SpecialUse::by_name(&f.segments));
        let mut target = match special.and_then(|s| target_specials.get(&s).map(|t| (s, t))) {
            Some((s, t)) => {
                let how = if by_attr.is_some() {
                    "SPECIAL-USE"
                } else {
                    "name"
                };
                if *t != f.segments {
                    notes.push(format!(
                        "{s} folder (by {how}) -> the target's {s} folder {:?}",
                        path(t)
                    ));
                }
                t.clone()
            }
            None => follow_parent(&f.segments, &moved),
        };
        if target
            .first()
            .is_some_and(|s| s.eq_ignore_ascii_case("INBOX"))
        {
            target[0] = "INBOX".to_owned();
        }
        let joined = path(&target);
        if let Some((re, rep)) = rules.renames.iter().find(|(re, _)| re.is_match(&joined)) {
            let renamed = re.replace(&joined, rep.as_str()).into_owned();
            if renamed != joined {
                notes.push(format!(
                    "renamed by rule {:?}: {joined:?} -> {renamed:?}",
                    re.as_str()
                ));
                target = renamed
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
        }
        for seg in &mut target {
            if rules.reserved.iter().any(|r| r.eq_ignore_ascii_case(seg)) {
                notes.push(format!(
                    "{seg:?} is a reserved name on the target; using {:?}",
                    format!("{seg} (migrated)")
                ));
                seg.push_str(" (migrated)");
            }
        }
        for seg in &mut target {
            if let Some(fitted) =
                crate::mapping::fit_segment(seg, rules.separator, &rules.forbidden)
            {
                let why = match rules.separator.filter(|d| seg.contains(*d)) {
                    Some(d) => format!("{d:?} separates levels on the target"),
                    None => "the target refuses some of its characters".to_owned(),
                };
                notes.push(format!(
                    "{seg:?} cannot be a folder name on the target ({why}); using {fitted:?}"
                ));
                *seg = fitted;
            }
        }
        // Collisions: a different folder already holds this target path.
        let mut key = fold(&path(&target));
        if let Some(&(other, other_special)) = taken.get(&key) {
            if special.is_some() && special == other_special {
                notes.push(format!(
                    "merged with {:?} (both are the {} folder)",
                    path(&source[other].segments),
                    special.map_or(String::new(), |s| s.to_string())
                ));
            } else {
                let base = target.pop().unwrap_or_default();
                let mut n = 2;
                loop {
                    let candidate = format!("{base} ({n})");
                    let mut t = target.clone();
                    t.push(candidate);
                    if !taken.contains_key(&fold(&path(&t))) {
                        notes.push(format!(
                            "would collide with {:?} on the target; using {:?}",
                            path(&source[other].segments),
                            path(&t)
                        ));
                        target = t;
                        break;
                    }
                    n += 1;
                }
                key = fold(&path(&target));
            }
        }
        taken.entry(key).or_insert((i, special));
        if target != f.segments {
            moved.insert(path(&f.segments), target.clone());
        }
        out[i] = Some(Mapping {
            target,
            special,
            notes,
        });
    }
    out.into_iter()
        .map(|m| m.expect("every index is mapped once"))
        .collect()
}

/// The target of a folder whose nearest moved ancestor moved: that ancestor's target
/// plus the rest of the path; else the path itself.
fn follow_parent(segments: &[String], moved: &HashMap<String, Vec<String>>) -> Vec<String> {
    for cut in (1..segments.len()).rev() {
        if let Some(t) = moved.get(&segments[..cut].join("/")) {
            let mut out = t.clone();
            out.extend_from_slice(&segments[cut..]);
            return out;
        }
    }
    segments.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, attr: Option<&str>) -> SourceFolder {
        SourceFolder {
            segments: path.split('/').map(str::to_owned).collect(),
            special_use: attr.map(str::to_owned),
        }
    }

    fn targets(m: &[Mapping]) -> Vec<String> {
        m.iter().map(|m| m.target.join("/")).collect()
    }

    fn exchange_like() -> HashMap<SpecialUse, Vec<String>> {
        [
            (SpecialUse::Sent, "Sent Items"),
            (SpecialUse::Trash, "Deleted Items"),
            (SpecialUse::Junk, "Junk Email"),
        ]
        .into_iter()
        .map(|(s, p)| (s, vec![p.to_owned()]))
        .collect()
    }

    #[test]
    fn special_folders_go_to_the_targets_and_children_follow() {
        let src = [
            f("INBOX", None),
            f("Gesendete Elemente", None),
            f("Gesendete Elemente/2019", None),
            f("Papierkorb", Some("\\Trash")),
            f("Spam", None),
            f("Drafts", None),
            f("Projects", None),
        ];
        let m = map_tree(&src, &exchange_like(), &MapRules::default());
        assert_eq!(
            targets(&m),
            [
                "INBOX",
                "Sent Items",
                "Sent Items/2019",
                "Deleted Items",
                "Junk Email",
                "Drafts",
                "Projects"
            ]
        );
        assert!(m[1].notes[0].contains("by name"), "{:?}", m[1].notes);
        assert!(m[3].notes[0].contains("by SPECIAL-USE"), "{:?}", m[3].notes);
        assert!(m[0].notes.is_empty() && m[6].notes.is_empty());
    }

    #[test]
    fn two_sent_folders_merge() {
        let src = [f("Sent", Some("\\Sent")), f("Sent Messages", None)];
        let m = map_tree(&src, &exchange_like(), &MapRules::default());
        assert_eq!(targets(&m), ["Sent Items", "Sent Items"]);
        assert!(
            m.iter()
                .any(|m| m.notes.iter().any(|n| n.contains("merged"))),
            "{m:?}"
        );
    }

    #[test]
    fn case_insensitive_collisions_are_renamed_deterministically() {
        let rules = MapRules {
            case_insensitive: true,
            ..MapRules::default()
        };
        let src = [
            f("projects", None),
            f("Projects", None),
            f("Projects/a", None),
            f("PROJECTS", None),
        ];
        let m = map_tree(&src, &HashMap::new(), &rules);
        // Sorted by path, "PROJECTS" < "Projects" < "projects": the first keeps its name.
        assert_eq!(
            targets(&m),
            ["projects (3)", "Projects (2)", "Projects (2)/a", "PROJECTS"]
        );
        let again = map_tree(&src, &HashMap::new(), &rules);
        assert_eq!(m, again, "deterministic");
        // A case-sensitive target keeps them all.
        assert_eq!(
            targets(&map_tree(&src, &HashMap::new(), &MapRules::default())),
            ["projects", "Projects", "Projects/a", "PROJECTS"]
        );
    }

    #[test]
    fn names_the_target_cannot_hold_are_renamed_and_told_apart() {
        let rules = MapRules {
            separator: Some('.'),
            forbidden: crate::mapping::forbidden_chars(Some('.'), true),
            ..MapRules::default()
        };
        let src = [
            f("v1.2 Release", None),
            f("v1_2 Release", None),
            f("v1.2 Release/notes", None),
            f("Q1%Q2", None),
            f("Work", None),
        ];
        let m = map_tree(&src, &HashMap::new(), &rules);
        assert_eq!(
            targets(&m),
            [
                "v1_2 Release (2)",
                "v1_2 Release",
                "v1_2 Release (2)/notes",
                "Q1_Q2",
                "Work"
            ]
        );
        assert!(
            m[0].notes[0].contains("\'.\' separates levels"),
            "{:?}",
            m[0].notes
        );
        assert!(m[3].notes[0].contains("refuses"), "{:?}", m[3].notes);
        assert_eq!(m, map_tree(&src, &HashMap::new(), &rules), "deterministic");
    }

    #[test]
    fn renames_and_reserved_names() {
        let rules = MapRules {
            renames: vec![(
                regex::Regex::new("^Old Mail/(.*)$").expect("valid"),
                "Archive/$1".to_owned(),
            )],
            reserved: vec!["Files".to_owned()],
            case_insensitive: true,
            ..MapRules::default()
        };
        let src = [
            f("Old Mail/2001", None),
            f("files", None),
            f("inbox/Lists", None),
        ];
        let m = map_tree(&src, &HashMap::new(), &rules);
        assert_eq!(
            targets(&m),
            ["Archive/2001", "files (migrated)", "INBOX/Lists"]
        );
        assert!(m[0].notes[0].contains("renamed by rule"));
        assert!(m[1].notes[0].contains("reserved"));
    }
}
