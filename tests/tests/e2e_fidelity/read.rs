//! Reading a migrated folder back as a user's client does — Graph for the Graph paths,
//! EWS for EWS — through the test kit's read-back client, into what the judge compares.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use mailhaul_tests::corpus::realworld::judge::{STATE_PROPERTIES, Seen, SeenAttachment};
use mailhaul_tests::corpus::realworld::{Addr, Path, Shape};
use mailhaul_tests::exchange::Emulator;
use mailhaul_tests::exchange_read::{ExchangeReader, ReadAddress};

/// The reader a user of `path`'s API would have.
pub(crate) fn reader(path: Path, emu: &Emulator, upn: &str) -> ExchangeReader {
    match path {
        Path::GraphJson | Path::GraphImportMime => {
            ExchangeReader::graph(&emu.base_url(), &emu.issue_token(), upn)
        }
        Path::Ews => ExchangeReader::ews(
            &format!("{}/EWS/Exchange.asmx", emu.base_url()),
            &emu.issue_ews_token(),
            upn,
        ),
    }
}

/// The Message-ID a shape's copy carries: its own, or the one mailhaul derives from the
/// content of a message without one (the documented contract of
/// `target::exchange_message_id`).
pub(crate) fn message_id(shape: &Shape) -> String {
    shape
        .expect
        .message_id
        .clone()
        .unwrap_or_else(|| mailhaul_connectors::target::exchange_message_id(&shape.message.body))
}

fn addr(a: &ReadAddress) -> Addr {
    Addr {
        name: a.name.clone(),
        address: a.address.clone(),
    }
}

/// Every message in the folder at `path`, with attachments (and their bytes) and the
/// extended properties the judge and `shapes` need.
pub(crate) async fn folder(
    reader: &ExchangeReader,
    path: &str,
    shapes: &[Shape],
) -> anyhow::Result<Vec<Seen>> {
    let folder = reader
        .folder(path)
        .await?
        .with_context(|| format!("no folder {path:?} in the mailbox"))?;
    let properties: BTreeSet<&str> = STATE_PROPERTIES
        .iter()
        .copied()
        .chain(
            shapes
                .iter()
                .flat_map(|s| s.expect.properties.iter().map(|(id, _)| id.as_str())),
        )
        .collect();
    let mut out = Vec::new();
    for m in reader.messages(&folder.id).await? {
        let mut attachments = Vec::new();
        for a in reader.attachments(&m.id).await? {
            let bytes = reader.attachment_bytes(&m.id, &a.id).await?;
            attachments.push(SeenAttachment {
                name: a.name,
                size_property: a.size,
                bytes,
                inline: a.is_inline,
                content_id: a.content_id,
                is_item: a.is_item,
            });
        }
        let mut props = BTreeMap::new();
        for id in &properties {
            props.insert((*id).to_owned(), reader.extended_property(&m.id, id).await?);
        }
        out.push(Seen {
            message_id: m.internet_message_id,
            subject: m.subject,
            from: m.from.as_ref().map(addr),
            sender: m.sender.as_ref().map(addr),
            to: m.to.iter().map(addr).collect(),
            cc: m.cc.iter().map(addr).collect(),
            bcc: m.bcc.iter().map(addr).collect(),
            reply_to: m.reply_to.iter().map(addr).collect(),
            body_html: m.body_type.eq_ignore_ascii_case("html"),
            body: m.body,
            attachments,
            item_class: m.item_class,
            read: m.is_read,
            flagged: m.flag == "flagged",
            draft: m.is_draft,
            categories: m.categories,
            received: m.received,
            importance: m.importance,
            header_names: m.headers.into_iter().map(|(n, _)| n).collect(),
            properties: props,
        });
    }
    Ok(out)
}
