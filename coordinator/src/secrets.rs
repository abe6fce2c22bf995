//! `mailhaul validate`'s look at the secrets a manifest references: every `env:`
//! variable must be set (and not empty) and every `file:` must exist and be readable
//! here, or the workers would find out one login at a time, mid-pass.

use mailhaul_connectors::config::resolve_secret;
use mailhaul_proto::manifest::{Login, Manifest, SecretRef, ServerConfig, TokenSource};
use std::collections::BTreeSet;

/// Every `env:`/`file:` secret of `m` that cannot be read, once each, with who uses it
/// and what to do; empty when all can. Never holds a secret's value.
pub fn problems(m: &Manifest) -> Vec<String> {
    let mut refs: Vec<(SecretRef, String)> = Vec::new();
    for (side, server) in [("[source]", &m.source), ("[target]", &m.target)] {
        server_refs(side, server, &mut refs);
    }
    for b in &m.mailboxes {
        refs.push((
            b.source_password.clone(),
            format!("mailbox {} (source)", b.id),
        ));
        refs.push((
            b.target_password.clone(),
            format!("mailbox {} (target)", b.id),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (r, user) in refs {
        if matches!(r, SecretRef::Inline(_)) || !seen.insert(r.to_string()) {
            continue;
        }
        if let Err(err) = resolve_secret(&r) {
            out.push(format!("{err} (used by {user})"));
        }
    }
    out
}

fn server_refs(side: &str, s: &ServerConfig, refs: &mut Vec<(SecretRef, String)>) {
    if let Some(p) = &s.password {
        refs.push((p.clone(), format!("{side} password")));
    }
    match &s.login {
        Login::XOAuth2(TokenSource::File(path)) => {
            refs.push((
                SecretRef::File(path.clone()),
                format!("{side} oauth_token_file"),
            ));
        }
        Login::XOAuth2(TokenSource::ClientCredentials { client_secret, .. }) => {
            refs.push((client_secret.clone(), format!("{side} oauth_client_secret")));
        }
        _ => {}
    }
}
