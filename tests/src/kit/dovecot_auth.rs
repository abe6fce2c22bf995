//! A kit Dovecot that also takes logins without the user's password: master users (a
//! second passdb with `master = yes`, Dovecot's "Master users") and OAuth2 bearer tokens
//! (the `oauth2` passdb, validating each token at an HTTP introspection URL).
//!
//! The base configuration is the kit's ([`Dovecot::start_with`]); this appends:
//! * `auth_master_user_separator = *` and a master passwd-file, so both
//!   `AUTHENTICATE PLAIN` with an authorization identity and `LOGIN user*master` work;
//! * with an introspection URL, `auth_mechanisms` gains `xoauth2 oauthbearer` and an
//!   `oauth2` passdb POSTs `token=<token>` to the URL and expects
//!   `{"active": true, "username": "<user>"}` (RFC 7662 style).
//!
//! Invariant: the extra files live in a temp dir owned by the returned value, next to
//! the Dovecot that reads them; both go away together.

use super::Dovecot;
use anyhow::Context as _;
use std::fmt::Write as _;
use std::ops::Deref;

/// A [`Dovecot`] with master users and, optionally, OAuth2 token checks.
#[derive(Debug)]
pub struct AuthDovecot {
    // Field order: Dovecot stops before its config files are removed.
    dovecot: Dovecot,
    _files: tempfile::TempDir,
}

impl AuthDovecot {
    /// Starts Dovecot with the master users `masters` (name, password) and, when
    /// `introspection_url` is given, XOAUTH2/OAUTHBEARER checked against it.
    ///
    /// # Errors
    /// As [`Dovecot::start`]; names or passwords that cannot go into a passwd-file.
    pub fn start(
        masters: &[(&str, &str)],
        introspection_url: Option<&str>,
    ) -> anyhow::Result<AuthDovecot> {
        let files = tempfile::Builder::new()
            .prefix("mailhaul-dovecot-auth-")
            .tempdir()
            .context("creating the auth files' temp dir")?;
        // Dovecot's auth process does not run as us: let it traverse and read.
        set_mode(files.path(), 0o755)?;
        let masters_file = files.path().join("masters");
        let mut lines = String::new();
        for (user, password) in masters {
            for value in [user, password] {
                anyhow::ensure!(
                    !value.is_empty() && !value.contains([':', '\n', '\r']),
                    "{value:?} cannot go into a passwd-file"
                );
            }
            let _ = writeln!(lines, "{user}:{{PLAIN}}{password}");
        }
        std::fs::write(&masters_file, lines).context("writing the master passwd-file")?;
        set_mode(&masters_file, 0o644)?;

        let mut extra = format!(
            "auth_master_user_separator = *\n\
             passdb {{\n  driver = passwd-file\n  master = yes\n  pass = yes\n  \
             args = scheme=PLAIN username_format=%u {}\n}}\n",
            masters_file.display()
        );
        if let Some(url) = introspection_url {
            extra.push_str(&oauth2_passdb(files.path(), url, "")?);
        }
        let dovecot = Dovecot::start_with(&extra)?;
        Ok(AuthDovecot {
            dovecot,
            _files: files,
        })
    }
}

/// Writes the settings of Dovecot's `oauth2` passdb into `dir` (which Dovecot's auth
/// process must be able to read) and returns the `dovecot.conf` lines that turn on
/// XOAUTH2 and OAUTHBEARER with it: each token is POSTed as `token=<token>` to
/// `introspection_url`, which answers `{"active": true, "username": "<user>"}` (RFC 7662
/// style). `settings` are more lines for the passdb's settings file, e.g.
/// `username_format = %d` or `scope = imap`.
///
/// # Errors
/// The settings file cannot be written.
pub fn oauth2_passdb(
    dir: &std::path::Path,
    introspection_url: &str,
    settings: &str,
) -> anyhow::Result<String> {
    let oauth_conf = dir.join("dovecot-oauth2.conf.ext");
    std::fs::write(
        &oauth_conf,
        format!(
            "introspection_mode = post\n\
             introspection_url = {introspection_url}\n\
             username_attribute = username\n\
             active_attribute = active\n\
             active_value = true\n{settings}\n"
        ),
    )
    .context("writing the oauth2 passdb config")?;
    set_mode(&oauth_conf, 0o644)?;
    Ok(format!(
        "auth_mechanisms = plain login xoauth2 oauthbearer\n\
         passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  \
         args = {}\n}}\n",
        oauth_conf.display()
    ))
}

impl Deref for AuthDovecot {
    type Target = Dovecot;

    fn deref(&self) -> &Dovecot {
        &self.dovecot
    }
}

fn set_mode(path: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}
