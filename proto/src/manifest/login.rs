//! How mailhaul logs in to a server: `login` and its companion keys in `[source]` and
//! `[target]`.
//!
//! A tenant-wide migration cannot ask every user for a password, so besides the plain
//! `LOGIN user password` a server may be reached as a master (admin) user acting for each
//! mailbox (SASL PLAIN with an authorization identity, RFC 4616, or Dovecot's
//! `user*master` form), or with an OAuth 2.0 bearer token (SASL XOAUTH2, as Gmail and
//! Exchange Online speak it).
//!
//! Invariants: a [`Login`] is complete (master logins have a master user, XOAUTH2 exactly
//! one token source); companion keys that the chosen login does not use are reported,
//! not silently ignored; the client secret is a [`SecretRef`], never plaintext.

use super::fields::Fields;
use super::problem::Sink;
use super::secret::SecretRef;
use secrecy::SecretString;
use std::path::{Path, PathBuf};

/// The keys this module reads, for the server table's deny-unknown-fields list.
pub(super) const LOGIN_KEYS: &[&str] = &[
    "login",
    "master_user",
    "master_separator",
    "oauth_token_file",
    "oauth_token_url",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
];

/// How to authenticate to a server, the same for every mailbox on it.
#[derive(Debug, Clone)]
pub enum Login {
    /// `login = "password"` (the default): `LOGIN` as the mailbox's own user with its
    /// own password (RFC 3501 §6.2.3). For EWS: HTTP Basic as the mailbox's own user.
    Password,
    /// `login = "master"`: SASL PLAIN (RFC 4616) with authzid = the mailbox user,
    /// authcid = `user`, password = the server's `password`. Dovecot master users, Cyrus
    /// and Zimbra proxy authentication.
    ///
    /// For EWS, `login = "impersonation"`: an admin acting for each mailbox, i.e. HTTP
    /// Basic as `user` (the manifest's `service_user`) with the server's `password`, and
    /// an `ExchangeImpersonation` header naming the mailbox's address.
    Master {
        /// The master (admin) login name; EWS's service account.
        user: String,
    },
    /// `login = "master-star"`: Dovecot's `LOGIN "mailbox<separator>master"` form with
    /// the server's `password`.
    MasterStar {
        /// The master (admin) login name.
        user: String,
        /// Dovecot's `auth_master_user_separator`; `*` unless the manifest says otherwise.
        separator: char,
    },
    /// `login = "xoauth2"`: SASL XOAUTH2 with the mailbox user and a bearer token.
    ///
    /// For Graph (always) and EWS `login = "oauth"`: the app's bearer token from the
    /// client credentials grant ([`TokenSource::ClientCredentials`]); EWS adds an
    /// `ExchangeImpersonation` header naming the mailbox.
    XOAuth2(TokenSource),
}

impl Login {
    /// The manifest spelling of the method, for messages: `password`, `master`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Login::Password => "password",
            Login::Master { .. } => "master",
            Login::MasterStar { .. } => "master-star",
            Login::XOAuth2(_) => "xoauth2",
        }
    }

    /// Whether each mailbox needs a password of its own (only for [`Login::Password`]).
    pub fn needs_mailbox_password(&self) -> bool {
        matches!(self, Login::Password)
    }
}

/// Where an XOAUTH2 bearer token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// `oauth_token_file`: a file holding the token (resolved against the manifest's
    /// directory), re-read whenever the token is refused or expires.
    File(PathBuf),
    /// OAuth 2.0 client credentials grant (RFC 6749 §4.4) against `url`.
    ClientCredentials {
        /// The token endpoint, `https://...` (plain `http` only for loopback hosts).
        url: String,
        /// `oauth_client_id`.
        client_id: String,
        /// `oauth_client_secret`: `env:NAME` or `file:PATH`.
        client_secret: SecretRef,
        /// `oauth_scope`, e.g. `https://outlook.office365.com/.default`.
        scope: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Password,
    Master,
    MasterStar,
    XOAuth2,
}

/// What [`read_login`] found.
pub(super) struct LoginRead {
    /// The login, if every key it needs was present and well-formed.
    pub(super) login: Option<Login>,
    /// Whether mailboxes must carry a password (or inherit the server's); `false` when
    /// the login method itself could not be read, so mailboxes are not blamed for it.
    pub(super) mailbox_password_needed: bool,
}

/// Reads `login` and its companion keys. `has_password`: the server table has a
/// `password` key (well-formed or not; a bad one is reported by its own reader).
pub(super) fn read_login(
    f: &Fields<'_, '_>,
    sink: &mut Sink,
    base_dir: &Path,
    has_password: bool,
) -> LoginRead {
    let choices = [
        ("password", Kind::Password),
        ("master", Kind::Master),
        ("master-star", Kind::MasterStar),
        ("xoauth2", Kind::XOAuth2),
    ];
    let kind = match f.get("login") {
        None => Some(Kind::Password),
        Some(_) => f.choice(sink, "login", &choices),
    };
    let unused = |sink: &mut Sink, key: &str, with: &str| {
        if let Some((_, at)) = f.get(key) {
            let name = f.name(key);
            sink.at(
                Some(at),
                format!("{name}: only used with {with}; remove it"),
            );
        }
    };
    let master = matches!(kind, Some(Kind::Master | Kind::MasterStar));
    let oauth = kind == Some(Kind::XOAuth2);
    if kind.is_some() {
        if !master {
            unused(sink, "master_user", "login = \"master\" or \"master-star\"");
        }
        if kind != Some(Kind::MasterStar) {
            unused(sink, "master_separator", "login = \"master-star\"");
        }
        if !oauth {
            for key in LOGIN_KEYS.iter().filter(|k| k.starts_with("oauth_")) {
                unused(sink, key, "login = \"xoauth2\"");
            }
        }
    }
    let login = match kind {
        None => None,
        Some(Kind::Password) => Some(Login::Password),
        Some(Kind::Master | Kind::MasterStar) => read_master(f, sink, kind, has_password),
        Some(Kind::XOAuth2) => read_token_source(f, sink, base_dir).map(Login::XOAuth2),
    };
    LoginRead {
        login,
        mailbox_password_needed: kind == Some(Kind::Password),
    }
}

fn read_master(
    f: &Fields<'_, '_>,
    sink: &mut Sink,
    kind: Option<Kind>,
    has_password: bool,
) -> Option<Login> {
    let user = f.nonblank(sink, "master_user", "the master user's login name");
    if f.get("master_user").is_none() {
        f.missing(sink, "master_user", "\"admin\"");
    }
    if !has_password {
        f.missing(
            sink,
            "password",
            "\"env:NAME\" (the master user's password)",
        );
    }
    let separator = match f.nonblank(sink, "master_separator", "one character, like \"*\"") {
        None => Some('*'),
        Some((s, at)) => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => {
                    let why = "must be one character, Dovecot's auth_master_user_separator";
                    sink.at(
                        Some(at),
                        format!("{}: \"{s}\" {why}", f.name("master_separator")),
                    );
                    None
                }
            }
        }
    };
    let (user, _) = user?;
    if !has_password {
        return None;
    }
    match kind {
        Some(Kind::MasterStar) => Some(Login::MasterStar {
            user,
            separator: separator?,
        }),
        _ => Some(Login::Master { user }),
    }
}

fn read_token_source(f: &Fields<'_, '_>, sink: &mut Sink, base_dir: &Path) -> Option<TokenSource> {
    const FLOW: [&str; 3] = ["oauth_client_id", "oauth_client_secret", "oauth_scope"];
    let file = f.nonblank(sink, "oauth_token_file", "the token file's path");
    let url = f.nonblank(sink, "oauth_token_url", "the token endpoint's URL");
    match (f.get("oauth_token_file"), f.get("oauth_token_url")) {
        (None, None) => {
            f.missing(
                sink,
                "oauth_token_file",
                "\"token.txt\" (or set oauth_token_url with oauth_client_id, \
                 oauth_client_secret and oauth_scope)",
            );
            return None;
        }
        (Some(_), Some((_, at))) => {
            let why = "set together with oauth_token_file; keep exactly one token source";
            sink.at(Some(at), format!("{}: {why}", f.name("oauth_token_url")));
            return None;
        }
        (Some(_), None) => {
            for key in FLOW {
                if let Some((_, at)) = f.get(key) {
                    let why = "only used with oauth_token_url; remove it";
                    sink.at(Some(at), format!("{}: {why}", f.name(key)));
                }
            }
            return file.map(|(p, _)| TokenSource::File(base_dir.join(p)));
        }
        (None, Some(_)) => {}
    }
    let url = url.and_then(|(u, at)| match check_url(&u) {
        Ok(()) => Some(u),
        Err(why) => {
            sink.at(Some(at), format!("{}: {why}", f.name("oauth_token_url")));
            None
        }
    });
    let client_id = f.nonblank(sink, "oauth_client_id", "the application (client) id");
    let client_secret = f.secret(sink, "oauth_client_secret", base_dir);
    let scope = f.nonblank(sink, "oauth_scope", "the scope to ask for");
    let examples = [
        "\"00000000-0000-0000-0000-000000000000\"",
        "\"env:OAUTH_SECRET\"",
        "\"https://outlook.office365.com/.default\"",
    ];
    for (key, example) in FLOW.into_iter().zip(examples) {
        if f.get(key).is_none() {
            f.missing(sink, key, example);
        }
    }
    Some(TokenSource::ClientCredentials {
        url: url?,
        client_id: client_id?.0,
        client_secret: client_secret?,
        scope: scope?.0,
    })
}

/// The mailbox password default for logins that use none: an empty inline secret, so
/// mailboxes without a password of their own still resolve (and callers that resolve it
/// get an empty string they never send).
pub(super) fn unused_password() -> SecretRef {
    SecretRef::Inline(SecretString::from(String::new()))
}

/// A token endpoint must be `https`; plain `http` would send the client secret in the
/// clear, so it is allowed only to a loopback host (tests, local proxies).
pub(super) fn check_url(url: &str) -> Result<(), String> {
    if let Some(rest) = url.strip_prefix("https://") {
        return if rest.is_empty() {
            Err(format!("\"{url}\" has no host"))
        } else {
            Ok(())
        };
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host_port = rest.split('/').next().unwrap_or("");
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host_port.split(':').next().unwrap_or(""),
        };
        return if matches!(host, "localhost" | "127.0.0.1" | "::1") {
            Ok(())
        } else {
            Err(format!(
                "\"{url}\" is plain http, which would send the client secret in the clear; \
                 write https://"
            ))
        };
    }
    Err(format!(
        "\"{url}\" is not an http(s) URL; write the token endpoint, like \
         \"https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token\""
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Manifest;
    use super::*;

    /// A manifest whose `[source]` has the extra lines `source`; the one mailbox has no
    /// source password of its own, the target gives the default.
    fn manifest(source: &str) -> Result<Manifest, Vec<String>> {
        let text = format!(
            "tenant = \"T\"\n\
             [source]\nkind = \"imap\"\nhost = \"s\"\n{source}\n\
             [target]\nkind = \"imap\"\nhost = \"t\"\npassword = \"env:T\"\n\
             [[mailbox]]\nemail = \"a@b\"\n"
        );
        Manifest::parse(&text, Path::new("m.toml"))
            .map(|(m, _)| m)
            .map_err(|p| p.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn logins_parse() {
        let m = manifest("password = \"env:S\"").expect("valid");
        assert!(matches!(m.source.login, Login::Password));
        assert!(matches!(m.target.login, Login::Password));

        let m = manifest("login = \"master\"\nmaster_user = \"admin\"\npassword = \"env:M\"")
            .expect("valid");
        assert!(matches!(&m.source.login, Login::Master { user } if user == "admin"));
        // The mailbox falls back to the master password, which the connector ignores.
        assert_eq!(m.mailboxes[0].source_password.to_string(), "env:M");

        let m = manifest("login = \"master-star\"\nmaster_user = \"admin\"\npassword = \"env:M\"")
            .expect("valid");
        assert!(matches!(
            &m.source.login,
            Login::MasterStar { user, separator: '*' } if user == "admin"
        ));
        let m = manifest(
            "login = \"master-star\"\nmaster_user = \"admin\"\nmaster_separator = \"%\"\n\
             password = \"env:M\"",
        )
        .expect("valid");
        assert!(matches!(
            &m.source.login,
            Login::MasterStar { separator: '%', .. }
        ));

        let m = manifest("login = \"xoauth2\"\noauth_token_file = \"tok.txt\"").expect("valid");
        assert!(matches!(
            &m.source.login,
            Login::XOAuth2(TokenSource::File(p)) if p == Path::new("tok.txt")
        ));
        assert_eq!(
            m.mailboxes[0].source_password.to_string(),
            "inline password"
        );

        let m = manifest(
            "login = \"xoauth2\"\noauth_token_url = \"https://login.example/t\"\n\
             oauth_client_id = \"id\"\noauth_client_secret = \"env:CS\"\n\
             oauth_scope = \"https://outlook.office365.com/.default\"",
        )
        .expect("valid");
        let Login::XOAuth2(TokenSource::ClientCredentials {
            url,
            client_id,
            client_secret,
            scope,
        }) = &m.source.login
        else {
            panic!("client credentials: {:?}", m.source.login)
        };
        assert_eq!(
            (url.as_str(), client_id.as_str(), scope.as_str()),
            (
                "https://login.example/t",
                "id",
                "https://outlook.office365.com/.default"
            )
        );
        assert_eq!(client_secret.to_string(), "env:CS");
    }

    #[test]
    fn problems_are_all_reported_with_lines() {
        // Line 2 is [source], line 5 the first extra line.
        let cases: &[(&str, &[&str])] = &[
            (
                "login = \"kerberos\"",
                &[
                    "m.toml:5: source.login: unknown value \"kerberos\"; allowed: \"password\", \
                   \"master\", \"master-star\", \"xoauth2\"",
                ],
            ),
            (
                "login = \"master\"",
                &[
                    "m.toml:2: source.master_user: missing; add master_user = \"admin\" to [source]",
                    "m.toml:2: source.password: missing; add password = \"env:NAME\" (the \
                     master user's password) to [source]",
                ],
            ),
            (
                "login = \"master-star\"\nmaster_user = \"a\"\nmaster_separator = \"**\"\n\
                 password = \"env:M\"",
                &[
                    "m.toml:7: source.master_separator: \"**\" must be one character, Dovecot's \
                   auth_master_user_separator",
                ],
            ),
            (
                "password = \"env:P\"\nmaster_user = \"a\"\noauth_scope = \"s\"",
                &[
                    "m.toml:6: source.master_user: only used with login = \"master\" or \
                     \"master-star\"; remove it",
                    "m.toml:7: source.oauth_scope: only used with login = \"xoauth2\"; remove it",
                ],
            ),
            (
                "login = \"xoauth2\"",
                &[
                    "m.toml:2: source.oauth_token_file: missing; add oauth_token_file = \
                   \"token.txt\" (or set oauth_token_url with oauth_client_id, \
                   oauth_client_secret and oauth_scope) to [source]",
                ],
            ),
            (
                "login = \"xoauth2\"\noauth_token_file = \"t\"\noauth_token_url = \"https://x/t\"",
                &[
                    "m.toml:7: source.oauth_token_url: set together with oauth_token_file; keep \
                   exactly one token source",
                ],
            ),
            (
                "login = \"xoauth2\"\noauth_token_file = \"t\"\noauth_client_id = \"i\"",
                &["m.toml:7: source.oauth_client_id: only used with oauth_token_url; remove it"],
            ),
            (
                "login = \"xoauth2\"\noauth_token_url = \"http://idp.example/t\"\n\
                 oauth_client_secret = \"hunter2\"",
                &[
                    "m.toml:2: source.oauth_client_id: missing; add oauth_client_id = \
                     \"00000000-0000-0000-0000-000000000000\" to [source]",
                    "m.toml:2: source.oauth_scope: missing; add oauth_scope = \
                     \"https://outlook.office365.com/.default\" to [source]",
                    "m.toml:6: source.oauth_token_url: \"http://idp.example/t\" is plain http, \
                     which would send the client secret in the clear; write https://",
                    "m.toml:7: source.oauth_client_secret is plaintext; write \"env:NAME\" or \
                     \"file:PATH\", or put it in the CSV",
                ],
            ),
        ];
        for (extra, want) in cases {
            let mut got = manifest(extra).expect_err(extra);
            got.sort();
            let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
            want.sort();
            assert_eq!(got, want, "{extra}");
        }
    }

    #[test]
    fn plain_logins_still_need_mailbox_passwords() {
        let got = manifest("").expect_err("no source password");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("no source password"), "{got:?}");
    }

    #[test]
    fn token_urls() {
        for ok in [
            "https://login.microsoftonline.com/t/oauth2/v2.0/token",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]:9/t",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in ["http://example.com/token", "ftp://x", "https://", "token"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
