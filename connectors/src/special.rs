//! Special folders: which source folder is the Sent, Drafts, Trash, Junk or Archive
//! folder, and where it goes on the target.
//!
//! RFC 6154 SPECIAL-USE attributes are trusted first; without them a folder is
//! recognised by its name in the languages mail servers commonly use ("Sent Items",
//! "Gesendete Elemente", "Éléments envoyés", ...), at the top level, under `INBOX`
//! (Courier-style namespaces) or under `[Gmail]`.

use std::fmt;

/// A special folder role (RFC 6154), besides INBOX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpecialUse {
    /// Sent mail.
    Sent,
    /// Drafts.
    Drafts,
    /// Deleted items.
    Trash,
    /// Spam.
    Junk,
    /// Archive.
    Archive,
}

impl SpecialUse {
    /// Every role.
    pub const ALL: [SpecialUse; 5] = [
        SpecialUse::Sent,
        SpecialUse::Drafts,
        SpecialUse::Trash,
        SpecialUse::Junk,
        SpecialUse::Archive,
    ];

    /// The role of an RFC 6154 attribute (`\Sent`, ...), case-insensitively.
    pub fn from_attribute(attr: &str) -> Option<SpecialUse> {
        SpecialUse::ALL
            .into_iter()
            .find(|s| s.attribute().eq_ignore_ascii_case(attr))
    }

    /// The RFC 6154 attribute.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }

    /// Microsoft Graph's well-known folder name for the role.
    pub fn graph_well_known(self) -> &'static str {
        match self {
            SpecialUse::Sent => "sentitems",
            SpecialUse::Drafts => "drafts",
            SpecialUse::Trash => "deleteditems",
            SpecialUse::Junk => "junkemail",
            SpecialUse::Archive => "archive",
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            SpecialUse::Sent => &[
                "Sent",
                "Sent Items",
                "Sent Messages",
                "Sent Mail",
                "Sent-Mail",
                "Outbox.Sent",
                "Gesendet",
                "Gesendete Elemente",
                "Gesendete Objekte",
                "Gesendete Nachrichten",
                "Éléments envoyés",
                "Messages envoyés",
                "Envoyés",
                "Enviados",
                "Elementos enviados",
                "Posta inviata",
                "Inviati",
                "Verzonden items",
                "Verzonden",
                "Skickat",
                "Skickade objekt",
                "Sendt",
                "Sendte elementer",
                "Wysłane",
                "Elementy wysłane",
                "Odeslaná pošta",
                "Odoslané",
                "Elküldött elemek",
                "Отправленные",
                "Надіслані",
                "送信済みアイテム",
                "送信済み",
                "已发送",
                "已发送邮件",
                "보낸 편지함",
            ],
            SpecialUse::Drafts => &[
                "Drafts",
                "Draft",
                "Entwürfe",
                "Brouillons",
                "Borradores",
                "Rascunhos",
                "Bozze",
                "Concepten",
                "Utkast",
                "Kladder",
                "Kopie robocze",
                "Koncepty",
                "Piszkozatok",
                "Черновики",
                "Чернетки",
                "下書き",
                "草稿",
                "임시 보관함",
            ],
            SpecialUse::Trash => &[
                "Trash",
                "Deleted Items",
                "Deleted Messages",
                "Deleted",
                "Bin",
                "Papierkorb",
                "Gelöschte Elemente",
                "Gelöschte Objekte",
                "Corbeille",
                "Éléments supprimés",
                "Papelera",
                "Elementos eliminados",
                "Lixeira",
                "Itens excluídos",
                "Cestino",
                "Posta eliminata",
                "Prullenbak",
                "Verwijderde items",
                "Papperskorgen",
                "Borttagna objekt",
                "Papirkurv",
                "Slettede elementer",
                "Kosz",
                "Elementy usunięte",
                "Koš",
                "Törölt elemek",
                "Корзина",
                "Удаленные",
                "Удалённые",
                "Кошик",
                "ごみ箱",
                "削除済みアイテム",
                "已删除",
                "已删除邮件",
                "휴지통",
            ],
            SpecialUse::Junk => &[
                "Junk",
                "Junk E-mail",
                "Junk Email",
                "Junk Mail",
                "Junk-E-Mail",
                "Spam",
                "Bulk Mail",
                "Unerwünscht",
                "Courrier indésirable",
                "Indésirables",
                "Correo no deseado",
                "Lixo eletrônico",
                "Posta indesiderata",
                "Ongewenste e-mail",
                "Skräppost",
                "Uønsket e-post",
                "Wiadomości-śmieci",
                "Nevyžádaná pošta",
                "Levélszemét",
                "Спам",
                "Нежелательная почта",
                "迷惑メール",
                "垃圾邮件",
                "스팸 메일함",
            ],
            SpecialUse::Archive => &[
                "Archive",
                "Archives",
                "Archiv",
                "Archivo",
                "Arquivo",
                "Archivio",
                "Archief",
                "Arkiv",
                "Archiwum",
                "Archívum",
                "Архив",
                "アーカイブ",
                "存档",
                "归档",
                "보관",
            ],
        }
    }

    /// The role a folder has by its name (segments of its path), if any.
    pub fn by_name(segments: &[String]) -> Option<SpecialUse> {
        let name = match segments {
            [one] => one,
            [parent, one]
                if parent.eq_ignore_ascii_case("INBOX")
                    || parent.eq_ignore_ascii_case("[Gmail]")
                    || parent.eq_ignore_ascii_case("[Google Mail]") =>
            {
                one
            }
            _ => return None,
        };
        let folded = name.to_lowercase();
        SpecialUse::ALL
            .into_iter()
            .find(|s| s.names().iter().any(|n| n.to_lowercase() == folded))
    }
}

impl fmt::Display for SpecialUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.attribute()[1..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn recognises_names_in_many_languages() {
        let cases = [
            ("Sent", Some(SpecialUse::Sent)),
            ("sent items", Some(SpecialUse::Sent)),
            ("Gesendete Elemente", Some(SpecialUse::Sent)),
            ("Éléments envoyés", Some(SpecialUse::Sent)),
            ("INBOX/Sent Messages", Some(SpecialUse::Sent)),
            ("[Gmail]/Sent Mail", Some(SpecialUse::Sent)),
            ("Entwürfe", Some(SpecialUse::Drafts)),
            ("Papierkorb", Some(SpecialUse::Trash)),
            ("Deleted Items", Some(SpecialUse::Trash)),
            ("Spam", Some(SpecialUse::Junk)),
            ("Junk E-mail", Some(SpecialUse::Junk)),
            ("Archive", Some(SpecialUse::Archive)),
            ("Отправленные", Some(SpecialUse::Sent)),
            ("Projects/Sent", None),
            ("Sentinel", None),
            ("INBOX", None),
        ];
        for (path, want) in cases {
            assert_eq!(SpecialUse::by_name(&segs(path)), want, "{path}");
        }
    }

    #[test]
    fn attributes_round_trip() {
        for s in SpecialUse::ALL {
            assert_eq!(SpecialUse::from_attribute(s.attribute()), Some(s));
            assert_eq!(
                SpecialUse::from_attribute(&s.attribute().to_uppercase()),
                Some(s)
            );
        }
        assert_eq!(SpecialUse::from_attribute("\\All"), None);
    }
}
