//! The per-item and per-mailbox limits Exchange Online enforces on every way an item is
//! made or grows (Graph JSON, MIME, attachments, upload sessions, EWS), checked in one
//! place so no path is more lenient than another:
//! * the tenant's max message size (`ErrorMessageSizeExceeded`; 36 MB by default);
//! * 256 KB of headers per message (`ErrorMessageSizeExceeded`: the code is not
//!   documented for this case [U], the limit is, exchange-fidelity.md §1.3);
//! * the named-property quota: 16,384 definitions per mailbox, 9,830 of them in the
//!   InternetHeaders namespace; past it, `ErrorQuotaExceeded` "Cannot get ID from
//!   name." (the wording OWA shows, exchange-fidelity.md §1.3; the HTTP status Graph
//!   uses for it is not documented [U], the emulator answers 403 like a full mailbox, so
//!   a client must read the message to tell them apart).
//!
//! Invariant: [`take_named`] either takes every new definition or none.

use std::collections::BTreeSet;

use super::config::EmulatorConfig;
use super::state::Mailbox;

/// A limit an item ran into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LimitError {
    /// The item would be larger than the tenant's max message size.
    MessageSize { size: usize, max: usize },
    /// Its header block is over 256 KB.
    HeaderSize { size: usize, max: usize },
    /// The mailbox has no named-property definitions left.
    NamedProperties,
}

impl LimitError {
    /// The Exchange response code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::MessageSize { .. } | Self::HeaderSize { .. } => "ErrorMessageSizeExceeded",
            Self::NamedProperties => "ErrorQuotaExceeded",
        }
    }

    /// The message, Exchange's wording first.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::MessageSize { size, max } => format!(
                "The message exceeds the maximum supported size. ({size} bytes; the limit is {max})"
            ),
            Self::HeaderSize { size, max } => format!(
                "The message exceeds the maximum supported size. (its headers are {size} bytes; the limit is {max})"
            ),
            Self::NamedProperties => "Cannot get ID from name.".to_owned(),
        }
    }
}

/// The largest item `mailbox` takes.
pub(crate) fn max_message(mailbox: &Mailbox, config: &EmulatorConfig) -> usize {
    mailbox
        .settings
        .max_message_bytes
        .unwrap_or(config.max_message_bytes)
}

/// An item of `size` bytes (body, headers and attachments) fits the max message size.
pub(crate) fn check_size(
    mailbox: &Mailbox,
    size: usize,
    config: &EmulatorConfig,
) -> Result<(), LimitError> {
    let max = max_message(mailbox, config);
    if size > max {
        return Err(LimitError::MessageSize { size, max });
    }
    Ok(())
}

/// A header block of `size` bytes fits.
pub(crate) fn check_headers(size: usize, config: &EmulatorConfig) -> Result<(), LimitError> {
    if size > config.max_header_bytes {
        return Err(LimitError::HeaderSize {
            size,
            max: config.max_header_bytes,
        });
    }
    Ok(())
}

/// Takes the named-property definitions `wanted` needs (`(definition, in
/// InternetHeaders)`); the ones the mailbox already has cost nothing.
pub(crate) fn take_named(
    mailbox: &mut Mailbox,
    wanted: impl IntoIterator<Item = (String, bool)>,
    config: &EmulatorConfig,
) -> Result<(), LimitError> {
    let new: BTreeSet<(String, bool)> = wanted
        .into_iter()
        .filter(|(d, _)| !mailbox.named.contains(d))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let new_internet = u32::try_from(new.iter().filter(|(_, i)| *i).count()).unwrap_or(u32::MAX);
    let used = u32::try_from(mailbox.named.len())
        .unwrap_or(u32::MAX)
        .saturating_add(mailbox.settings.named_properties_used);
    let total = used.saturating_add(u32::try_from(new.len()).unwrap_or(u32::MAX));
    let internet = mailbox.named_internet.saturating_add(new_internet);
    if total > config.named_property_quota || internet > config.internet_header_quota {
        return Err(LimitError::NamedProperties);
    }
    mailbox.named_internet = internet;
    mailbox.named.extend(new.into_iter().map(|(d, _)| d));
    Ok(())
}

/// The InternetHeaders definitions a MIME upload takes: one per distinct `X-` header
/// name of its top-level header block, when the config says MIME promotes them.
pub(crate) fn mime_header_definitions(
    headers: &[(String, String)],
    config: &EmulatorConfig,
) -> Vec<(String, bool)> {
    if !config.mime_promotes_x_headers {
        return Vec::new();
    }
    headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-"))
        .map(|(n, _)| (super::item::header_definition(n), true))
        .collect()
}
