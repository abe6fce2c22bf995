//! The standalone emulator's `limits.toml`: every [`EmulatorConfig`] field, optional,
//! with `[mailboxes."upn"]` tables for mailboxes that differ. Unknown keys are errors
//! that name the key, so a typo never silently leaves a default in place.
//!
//! ```toml
//! tenant = "contoso.onmicrosoft.com"
//! client_id = "11111111-2222-3333-4444-555555555555"
//! client_secret = "emulator-secret"
//! max_message_bytes = 36_000_000
//! concurrency_scope = "per-app"
//! non_mail_folders = ["Kalender", "Kontakte", "Aufgaben", "Notizen", "Journal"]
//!
//! [mailboxes."new.hire@contoso.com"]
//! provisioned = false
//!
//! [mailboxes."old.timer@contoso.com"]
//! internet_headers_used = 9800
//! ```

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::config::{ConcurrencyScope, EmulatorConfig, MailboxSettings};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    tenant: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    graph_roles: Option<Vec<String>>,
    ews_roles: Option<Vec<String>>,
    token_lifetime_secs: Option<u64>,
    per_mailbox_concurrency: Option<u32>,
    requests_per_10min: Option<u32>,
    upload_bytes_per_5min: Option<u64>,
    max_request_bytes: Option<usize>,
    page_size: Option<usize>,
    latency_ms: Option<u64>,
    mime_to_folder_fails: Option<bool>,
    ews_max_item_bytes: Option<usize>,
    ews_max_concurrency: Option<u32>,
    mailbox_quota_bytes: Option<u64>,
    max_message_bytes: Option<usize>,
    named_property_quota: Option<u32>,
    internet_header_quota: Option<u32>,
    mime_promotes_x_headers: Option<bool>,
    max_header_bytes: Option<usize>,
    upload_session_min_bytes: Option<usize>,
    upload_session_lifetime_secs: Option<u64>,
    concurrency_scope: Option<Scope>,
    non_mail_folders: Option<Vec<String>>,
    ews_require_anchor_mailbox: Option<bool>,
    ews_max_request_bytes: Option<usize>,
    auto_create_mailboxes: Option<bool>,
    #[serde(default)]
    mailboxes: HashMap<String, Mailbox>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Scope {
    PerMailbox,
    PerApp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mailbox {
    provisioned: Option<bool>,
    named_properties_used: Option<u32>,
    internet_headers_used: Option<u32>,
    quota_bytes: Option<u64>,
    max_message_bytes: Option<usize>,
}

macro_rules! take {
    ($file:ident, $config:ident, $($field:ident),*) => {
        $(if let Some(v) = $file.$field { $config.$field = v; })*
    };
}

impl EmulatorConfig {
    /// Reads a `limits.toml` over `base` (what is not set keeps `base`'s value).
    ///
    /// # Errors
    /// The text is not TOML, a key is unknown, or a value has the wrong type; the
    /// message names it.
    pub fn from_toml(text: &str, base: EmulatorConfig) -> Result<EmulatorConfig, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut c = base;
        take!(
            file,
            c,
            tenant,
            client_id,
            graph_roles,
            ews_roles,
            per_mailbox_concurrency,
            requests_per_10min,
            upload_bytes_per_5min,
            max_request_bytes,
            page_size,
            mime_to_folder_fails,
            ews_max_item_bytes,
            ews_max_concurrency,
            mailbox_quota_bytes,
            max_message_bytes,
            named_property_quota,
            internet_header_quota,
            mime_promotes_x_headers,
            max_header_bytes,
            upload_session_min_bytes,
            non_mail_folders,
            ews_require_anchor_mailbox,
            ews_max_request_bytes,
            auto_create_mailboxes
        );
        if let Some(s) = file.client_secret {
            c.client_secret = SecretString::from(s);
        }
        if let Some(s) = file.token_lifetime_secs {
            c.token_lifetime = Duration::from_secs(s);
        }
        if let Some(ms) = file.latency_ms {
            c.latency = Duration::from_millis(ms);
        }
        if let Some(s) = file.upload_session_lifetime_secs {
            c.upload_session_lifetime = Duration::from_secs(s);
        }
        if let Some(scope) = file.concurrency_scope {
            c.concurrency_scope = match scope {
                Scope::PerMailbox => ConcurrencyScope::PerMailbox,
                Scope::PerApp => ConcurrencyScope::PerApp,
            };
        }
        if c.non_mail_folders.len() != 5 {
            return Err(format!(
                "non_mail_folders names {} folders; give the five in the order Calendar, Contacts, Tasks, Notes, Journal",
                c.non_mail_folders.len()
            ));
        }
        for (upn, m) in file.mailboxes {
            let d = MailboxSettings::default();
            let settings = MailboxSettings {
                provisioned: m.provisioned.unwrap_or(d.provisioned),
                named_properties_used: m.named_properties_used.unwrap_or(0),
                internet_headers_used: m.internet_headers_used.unwrap_or(0),
                quota_bytes: m.quota_bytes,
                max_message_bytes: m.max_message_bytes,
            };
            c.mailboxes.insert(upn.to_lowercase(), settings);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limits_file_sets_what_it_names_and_refuses_typos() {
        let text = r#"
max_message_bytes = 1000
concurrency_scope = "per-app"
upload_session_lifetime_secs = 60
[mailboxes."New@Contoso.com"]
provisioned = false
"#;
        let c = EmulatorConfig::from_toml(text, EmulatorConfig::default()).expect("valid");
        assert_eq!(c.max_message_bytes, 1000);
        assert_eq!(c.concurrency_scope, ConcurrencyScope::PerApp);
        assert_eq!(c.upload_session_lifetime, Duration::from_secs(60));
        assert!(!c.settings_of("new@contoso.com").provisioned);
        assert_eq!(c.tenant, EmulatorConfig::default().tenant);
        let typo = EmulatorConfig::from_toml("max_mesage_bytes = 1", EmulatorConfig::default());
        assert!(typo.is_err_and(|e| e.contains("max_mesage_bytes")));
        let folders =
            EmulatorConfig::from_toml("non_mail_folders = [\"A\"]", EmulatorConfig::default());
        assert!(folders.is_err());
    }
}
