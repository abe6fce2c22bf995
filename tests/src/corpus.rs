//! Deterministic test mailboxes: [`standard`] (the end-to-end corpus, every edge case
//! a migrator must carry), [`realworld`] (message shapes with what a user must see of
//! each, for the Exchange fidelity test), [`bench`] (realistic size mixes for
//! throughput figures) and [`seed`] (puts a corpus into an IMAP account).
//!
//! Invariants: the same arguments give the same bytes on every run and machine (our own
//! SplitMix64, no `rand`); messages are RFC 5322 with CRLF line endings only (but for
//! the one bare-LF shape of [`realworld`]); folder
//! paths are UTF-8 with `/` as the hierarchy separator, parents listed before their
//! children (a parent that is not listed is not created); messages are in APPEND order.

mod mime;
mod prng;
pub mod realworld;
mod seed;
mod standard;

use chrono::{DateTime, FixedOffset, TimeZone as _};

use prng::Rng;

pub use seed::{append, seed};
pub use standard::standard;

/// One message to put into a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The raw RFC 5322 bytes (CRLF line endings).
    pub body: Vec<u8>,
    /// IMAP flags, system flags with their backslash (`\Seen`) and keywords (`$Forwarded`).
    pub flags: Vec<String>,
    /// The INTERNALDATE to APPEND with (whole seconds).
    pub internal_date: DateTime<FixedOffset>,
}

/// A whole mailbox: folders in creation order, each with its messages in APPEND order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Corpus {
    /// (display path, `/`-separated UTF-8; messages).
    pub folders: Vec<(String, Vec<Message>)>,
}

impl Corpus {
    /// How many messages in all folders.
    pub fn message_count(&self) -> usize {
        self.folders.iter().map(|(_, m)| m.len()).sum()
    }

    /// The size of all messages in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.folders
            .iter()
            .flat_map(|(_, m)| m)
            .map(|m| m.body.len() as u64)
            .sum()
    }

    /// The messages of one folder, by display path.
    pub fn folder(&self, path: &str) -> Option<&[Message]> {
        self.folders
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, m)| m.as_slice())
    }
}

/// A band of a size mix: `weight` parts of the messages are `min_bytes..=max_bytes` long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeBand {
    /// Relative share of the folder's messages.
    pub weight: u32,
    /// Smallest message in the band, bytes.
    pub min_bytes: usize,
    /// Largest message in the band, bytes.
    pub max_bytes: usize,
}

/// One folder of generated, ordinary mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderSpec {
    /// Display path (`/`-separated UTF-8).
    pub path: String,
    /// How many messages.
    pub messages: usize,
    /// The size mix; band counts are rounded, the last band takes the remainder.
    pub sizes: Vec<SizeBand>,
}

/// A mailbox of ordinary, generated mail (no edge cases; see [`standard`] for those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusSpec {
    /// Everything generated depends on this and nothing else.
    pub seed: u64,
    /// The folders, in creation order.
    pub folders: Vec<FolderSpec>,
}

impl CorpusSpec {
    /// Generates the corpus: realistic messages with random flags and INTERNALDATEs
    /// (1998-2026, various offsets), sizes drawn per band in exact counts, then shuffled.
    pub fn generate(&self) -> Corpus {
        let mut before = 0;
        let folders = self
            .folders
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut rng = Rng::new(self.seed, i as u64 + 1);
                let mut sizes = band_sizes(&mut rng, spec, before);
                before += spec.messages;
                rng.shuffle(&mut sizes);
                let messages = sizes
                    .into_iter()
                    .map(|size| ordinary(&mut rng, &spec.path, size))
                    .collect();
                (spec.path.clone(), messages)
            })
            .collect();
        Corpus { folders }
    }
}

/// Message sizes for one folder. Band counts are rounded on the running total over the
/// folders (`before` messages precede this one), so a rare band (3 in 1000) still gets
/// its exact share across a mailbox instead of rounding to zero in every folder.
fn band_sizes(rng: &mut Rng, spec: &FolderSpec, before: usize) -> Vec<usize> {
    let total_weight: u64 = spec
        .sizes
        .iter()
        .map(|b| u64::from(b.weight))
        .sum::<u64>()
        .max(1);
    let rounded =
        |messages: usize, weight: u64| (messages as u64 * weight + total_weight / 2) / total_weight;
    let mut sizes = Vec::with_capacity(spec.messages);
    let mut cumulative_weight = 0;
    for (i, band) in spec.sizes.iter().enumerate() {
        let count = if i + 1 == spec.sizes.len() {
            spec.messages - sizes.len()
        } else {
            // Round cumulative band boundaries, so the bands of a folder add up exactly.
            let lo = rounded(before + spec.messages, cumulative_weight)
                - rounded(before, cumulative_weight);
            cumulative_weight += u64::from(band.weight);
            let hi = rounded(before + spec.messages, cumulative_weight)
                - rounded(before, cumulative_weight);
            ((hi - lo) as usize).min(spec.messages - sizes.len())
        };
        sizes.extend((0..count).map(|_| rng.between(band.min_bytes, band.max_bytes)));
    }
    sizes
}

/// Timezone offsets seen in real mail, in seconds east of UTC.
const OFFSETS: &[i32] = &[
    0, 3600, 7200, 10_800, 19_800, 28_800, 32_400, 34_200, 46_800, -18_000, -14_400, -25_200,
    -28_800, -12_600,
];

/// A random instant between 1998-01-01 and 2026-06-30 in a random offset.
fn random_date(rng: &mut Rng) -> DateTime<FixedOffset> {
    const START: i64 = 883_612_800; // 1998-01-01T00:00:00Z
    const END: i64 = 1_782_777_600; // 2026-06-30T00:00:00Z
    let secs = START + rng.below((END - START) as usize) as i64;
    at(secs, *rng.pick(OFFSETS))
}

/// The instant `unix_secs` seen from `offset` seconds east of UTC.
fn at(unix_secs: i64, offset: i32) -> DateTime<FixedOffset> {
    let tz = FixedOffset::east_opt(offset).expect("offsets in OFFSETS are within ±24 h");
    tz.timestamp_opt(unix_secs, 0)
        .single()
        .expect("a fixed offset maps instants one to one")
}

/// Random flags: mostly `\Seen`, some `\Answered`/`\Flagged`, rare keywords and `\Deleted`.
fn random_flags(rng: &mut Rng, folder: &str) -> Vec<String> {
    let mut flags = Vec::new();
    let mut add = |on: bool, flag: &str| {
        if on {
            flags.push(flag.to_owned());
        }
    };
    add(rng.percent(80), "\\Seen");
    add(rng.percent(15), "\\Answered");
    add(rng.percent(8), "\\Flagged");
    add(rng.percent(1), "\\Deleted");
    add(folder == "Drafts", "\\Draft");
    add(rng.percent(4), "$Forwarded");
    add(rng.percent(3), "$Label1");
    add(rng.percent(2), "Project_X");
    flags
}

/// An ordinary message of about `size` bytes, with random flags and date.
fn ordinary(rng: &mut Rng, folder: &str, size: usize) -> Message {
    let internal_date = random_date(rng);
    let sent = internal_date - chrono::Duration::seconds(rng.between(2, 600) as i64);
    let subject = format!(
        "Re: {} {}",
        rng.pick(&[
            "Weekly report",
            "Invoice",
            "Meeting notes",
            "Build failed",
            "Lunch?",
            "Contract draft"
        ]),
        rng.between(1, 9999)
    );
    let headers = mime::Headers::new(rng, sent, &subject);
    // Headers take about 600 bytes; the body makes up the rest.
    let payload = size.saturating_sub(700).max(64);
    let body = if size >= 16 * 1024 {
        let (name, mime) = rng.pick(&[
            ("report.pdf", "application/pdf"),
            ("photo.jpg", "image/jpeg"),
            (
                "data.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            ("archive.zip", "application/zip"),
        ]);
        mime::Body::Attachment {
            bytes: payload.saturating_sub(1600),
            name: (*name).to_owned(),
            mime: (*mime).to_owned(),
        }
    } else if rng.percent(30) {
        mime::Body::Alternative { bytes: payload / 2 }
    } else {
        mime::Body::Plain {
            bytes: payload,
            lines: Vec::new(),
        }
    };
    Message {
        body: mime::render(rng, &headers, &body),
        flags: random_flags(rng, folder),
        internal_date,
    }
}

/// The benchmark mailbox profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// 2 mailboxes, about 500 messages and 30 MB in all.
    Small,
    /// 10 mailboxes, about 10,000 messages and 1.3 GB in all.
    Medium,
    /// 2 mailboxes, INBOX only (so a POP3 source sees all of it): 10 small messages and
    /// 3 of 32-192 MB each, about 670 MB in all. For memory, not throughput.
    Large,
}

impl Profile {
    /// How many mailboxes the profile has (`mailbox_index` runs below this).
    pub fn mailboxes(self) -> usize {
        match self {
            Profile::Small => 2,
            Profile::Medium => 10,
            Profile::Large => 2,
        }
    }
}

/// One mailbox of a benchmark profile (`mailbox_index < profile.mailboxes()`), with a
/// realistic size mix: most messages 5-50 KB, some 100 KB-1 MB, a few multi-MB.
pub fn bench(profile: Profile, mailbox_index: usize) -> Corpus {
    const KB: usize = 1024;
    const MB: usize = 1024 * 1024;
    if profile == Profile::Large {
        let folders = vec![FolderSpec {
            path: "INBOX".to_owned(),
            messages: 13,
            sizes: vec![
                SizeBand {
                    weight: 10,
                    min_bytes: 5 * KB,
                    max_bytes: 50 * KB,
                },
                SizeBand {
                    weight: 3,
                    min_bytes: 32 * MB,
                    max_bytes: 192 * MB,
                },
            ],
        }];
        let seed = 0xBE4C_0000 + mailbox_index as u64 + (2 << 32);
        return CorpusSpec { seed, folders }.generate();
    }
    let (messages, sizes) = match profile {
        // 250 × (88.6% × 27 KB + 11% × 200 KB + 0.4% × 3 MB) ≈ 15 MB per mailbox.
        Profile::Small => (
            250,
            vec![
                SizeBand {
                    weight: 886,
                    min_bytes: 5 * KB,
                    max_bytes: 50 * KB,
                },
                SizeBand {
                    weight: 110,
                    min_bytes: 100 * KB,
                    max_bytes: 300 * KB,
                },
                SizeBand {
                    weight: 4,
                    min_bytes: 2 * MB,
                    max_bytes: 4 * MB,
                },
            ],
        ),
        // 1000 × (86.7% × 27 KB + 13% × 550 KB + 0.3% × 12.5 MB) ≈ 132 MiB per mailbox.
        Profile::Medium => (
            1000,
            vec![
                SizeBand {
                    weight: 867,
                    min_bytes: 5 * KB,
                    max_bytes: 50 * KB,
                },
                SizeBand {
                    weight: 130,
                    min_bytes: 100 * KB,
                    max_bytes: MB,
                },
                SizeBand {
                    weight: 3,
                    min_bytes: 5 * MB,
                    max_bytes: 20 * MB,
                },
            ],
        ),
        Profile::Large => unreachable!("built above"),
    };
    // A typical split: a big INBOX, then Sent, archives and the rest.
    let split: [(&str, usize); 6] = [
        ("INBOX", 45),
        ("Sent", 20),
        ("Archive", 5),
        ("Archive/2024", 15),
        ("Archive/2025", 10),
        ("Trash", 5),
    ];
    // INBOX (first) takes the rounding remainder, so the total is exact.
    let rest: usize = split[1..]
        .iter()
        .map(|&(_, percent)| messages * percent / 100)
        .sum();
    let folders = split
        .iter()
        .enumerate()
        .map(|(i, &(path, percent))| FolderSpec {
            path: path.to_owned(),
            messages: if i == 0 {
                messages - rest
            } else {
                messages * percent / 100
            },
            sizes: sizes.clone(),
        })
        .collect();
    let seed = 0xBE4C_0000
        + mailbox_index as u64
        + if profile == Profile::Medium {
            1 << 32
        } else {
            0
        };
    CorpusSpec { seed, folders }.generate()
}

#[cfg(test)]
mod tests;
