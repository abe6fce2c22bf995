//! Whole-manifest tests of Graph and EWS targets: every key, the defaults, and every
//! problem reported at once with its line.

use super::*;

/// A manifest whose `[target]` (line 6) holds `lines` from line 7 on; the one mailbox
/// (`a@x`, target address `a@contoso.com`) has no target password of its own.
pub(super) fn manifest(lines: &str) -> Result<Manifest, Vec<String>> {
    let text = format!(
        "tenant = \"T\"\n[source]\nkind = \"imap\"\nhost = \"s\"\npassword = \"env:S\"\n\
         [target]\n{lines}\n\
         [[mailbox]]\nemail = \"a@x\"\ntarget_email = \"a@contoso.com\"\n"
    );
    Manifest::parse(&text, Path::new("m.toml"))
        .map(|(m, _)| m)
        .map_err(|p| p.0.iter().map(ToString::to_string).collect())
}

/// The client credentials of a login, as `(url, client_id, secret, scope)`.
fn credentials(login: &Login) -> (&str, &str, String, &str) {
    match login {
        Login::XOAuth2(TokenSource::ClientCredentials {
            url,
            client_id,
            client_secret,
            scope,
        }) => (url, client_id, client_secret.to_string(), scope),
        other => panic!("client credentials expected, got {other:?}"),
    }
}

#[test]
fn full_graph_target() {
    let m = manifest(
        r#"kind = "graph"
url = "http://127.0.0.1:8081/"
oauth_token_url = "http://127.0.0.1:8081/tenant/oauth2/v2.0/token"
oauth_client_id = "11111111-2222-3333-4444-555555555555"
oauth_client_secret = "env:GRAPH_SECRET"
oauth_scope = "https://graph.microsoft.com/.default"
login = "oauth"
upload = "import-mime"
max_connections_per_mailbox = 2
max_requests_per_10min = 5000
max_upload_per_5min = "100MB"
tls_verify = false"#,
    )
    .expect("valid");
    let t = &m.target;
    assert_eq!(t.kind, ServerKind::Graph);
    assert_eq!(t.kind.to_string(), "graph");
    assert_eq!(
        (t.host.as_str(), t.port, t.tls, t.tls_verify),
        ("127.0.0.1", 8081, TlsMode::None, false)
    );
    assert_eq!(t.max_connections_per_mailbox.get(), 2);
    assert_eq!(
        t.http,
        Some(HttpTarget {
            url: "http://127.0.0.1:8081".into(),
            upload: GraphUpload::ImportMime,
            server_version: String::new(),
            batch_items: 1,
            max_requests_per_10min: 5000,
            max_upload_bytes_per_5min: 100_000_000,
            fidelity: ExchangeFidelity::default(),
        })
    );
    assert_eq!(
        credentials(&t.login),
        (
            "http://127.0.0.1:8081/tenant/oauth2/v2.0/token",
            "11111111-2222-3333-4444-555555555555",
            "env:GRAPH_SECRET".to_owned(),
            "https://graph.microsoft.com/.default"
        )
    );
    // No target password anywhere: Graph needs none. The mailbox is its address.
    let a = &m.mailboxes[0];
    assert_eq!(a.target_password.to_string(), "inline password");
    assert_eq!(
        (a.target_email.as_str(), a.target_user.as_str()),
        ("a@contoso.com", "a@contoso.com")
    );
}

#[test]
fn graph_defaults() {
    let m = manifest(
        "kind = \"graph\"\ntenant = \"contoso.onmicrosoft.com\"\n\
         oauth_client_id = \"id\"\noauth_client_secret = \"file:graph.secret\"",
    )
    .expect("valid");
    let t = &m.target;
    assert_eq!(
        (t.host.as_str(), t.port, t.tls, t.tls_verify),
        ("graph.microsoft.com", 443, TlsMode::Implicit, true)
    );
    assert_eq!(t.max_connections_per_mailbox.get(), 4);
    assert_eq!(
        t.http,
        Some(HttpTarget {
            url: "https://graph.microsoft.com".into(),
            upload: GraphUpload::Json,
            server_version: String::new(),
            batch_items: 1,
            max_requests_per_10min: 10_000,
            max_upload_bytes_per_5min: 150 << 20,
            fidelity: ExchangeFidelity::default(),
        })
    );
    assert_eq!(
        credentials(&t.login),
        (
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
            "id",
            "file:graph.secret".to_owned(),
            "https://graph.microsoft.com/.default"
        )
    );
    assert!(m.source.http.is_none(), "imap has no http settings");
}

#[test]
fn ews_targets_of_each_login() {
    // login = "password" (the default): each mailbox's own password, `password` the default.
    let m = manifest(
        "kind = \"ews\"\nurl = \"https://mail.contoso.com/EWS/Exchange.asmx\"\n\
         password = \"env:EWS_PW\"",
    )
    .expect("valid");
    let t = &m.target;
    assert_eq!(
        (t.kind, t.kind.to_string()),
        (ServerKind::Ews, "ews".into())
    );
    assert_eq!(
        (t.host.as_str(), t.port, t.tls),
        ("mail.contoso.com", 443, TlsMode::Implicit)
    );
    assert!(matches!(t.login, Login::Password));
    assert_eq!(t.max_connections_per_mailbox.get(), 4);
    assert_eq!(
        t.http,
        Some(HttpTarget {
            url: "https://mail.contoso.com/EWS/Exchange.asmx".into(),
            upload: GraphUpload::Json,
            server_version: "Exchange2013_SP1".into(),
            batch_items: 10,
            max_requests_per_10min: u32::MAX,
            max_upload_bytes_per_5min: u64::MAX,
            fidelity: ExchangeFidelity::default(),
        })
    );
    assert_eq!(m.mailboxes[0].target_password.to_string(), "env:EWS_PW");

    // Impersonation: the service account acts for every mailbox.
    let m = manifest(
        "kind = \"ews\"\nurl = \"https://mail.contoso.com/EWS/Exchange.asmx\"\n\
         login = \"impersonation\"\nservice_user = \"svc-migrate@contoso.com\"\n\
         password = \"env:EWS_SVC_PASSWORD\"\nserver_version = \"Exchange2016\"\n\
         batch_items = 100\nmax_connections_per_mailbox = 8\nca_file = \"ca.pem\"",
    )
    .expect("valid");
    let t = &m.target;
    assert!(matches!(&t.login, Login::Master { user } if user == "svc-migrate@contoso.com"));
    assert_eq!(
        t.password.as_ref().map(ToString::to_string).as_deref(),
        Some("env:EWS_SVC_PASSWORD")
    );
    let http = t.http.as_ref().expect("http");
    assert_eq!(
        (http.server_version.as_str(), http.batch_items),
        ("Exchange2016", 100)
    );
    assert_eq!(
        t.max_connections_per_mailbox.get(),
        8,
        "graph's cap is not ews's"
    );
    assert_eq!(t.ca_file.as_deref(), Some(Path::new("ca.pem")));

    // OAuth: client credentials with EWS's scope, and no password at all.
    let m = manifest(
        "kind = \"ews\"\nurl = \"https://outlook.office365.com/EWS/Exchange.asmx\"\n\
         login = \"oauth\"\ntenant = \"contoso.onmicrosoft.com\"\n\
         oauth_client_id = \"id\"\noauth_client_secret = \"env:S\"",
    )
    .expect("valid");
    assert_eq!(
        credentials(&m.target.login),
        (
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
            "id",
            "env:S".to_owned(),
            "https://outlook.office365.com/.default"
        )
    );
    assert_eq!(
        m.mailboxes[0].target_password.to_string(),
        "inline password"
    );
}

#[test]
fn ews_password_logins_need_mailbox_passwords() {
    let got = manifest("kind = \"ews\"\nurl = \"https://mail.contoso.com/EWS/Exchange.asmx\"")
        .expect_err("no target password");
    assert_eq!(
        got,
        [
            "m.toml:9: mailbox \"a@x\": no target password; add target_password = \"env:NAME\" \
          to this [[mailbox]], or set password in [target]"
        ]
    );
}

#[test]
fn every_graph_problem_at_once() {
    let got = manifest(
        r#"kind = "graph"
url = "http://graph.contoso.example/"
host = "graph.microsoft.com"
tls = "none"
master_user = "admin"
oauth_token_file = "token.txt"
max_connections_per_mailbox = 5
upload = "eml"
server_version = "Exchange2016"
password = "env:X""#,
    )
    .expect_err("invalid");
    let want = [
        "m.toml:6: target.tenant: missing; add tenant = \"contoso.onmicrosoft.com\" (or set \
         oauth_token_url) to [target]",
        "m.toml:6: target.oauth_client_id: missing; add oauth_client_id = \
         \"00000000-0000-0000-0000-000000000000\" to [target]",
        "m.toml:6: target.oauth_client_secret: missing; add oauth_client_secret = \
         \"env:OAUTH_SECRET\" to [target]",
        "m.toml:8: target.url: \"http://graph.contoso.example/\" is plain http, which would send \
         credentials and mail in the clear; use https:// (plain http is only for 127.0.0.1, ::1 \
         or localhost)",
        "m.toml:9: target.host: graph and ews targets take url instead; remove it",
        "m.toml:10: target.tls: graph and ews targets take url instead; remove it",
        "m.toml:11: target.master_user: only used with kind = \"imap\"; remove it",
        "m.toml:12: target.oauth_token_file: only used with kind = \"imap\"; remove it",
        "m.toml:13: target.max_connections_per_mailbox: 5 is over Graph's limit of 4 concurrent \
         requests per mailbox; write 1 to 4",
        "m.toml:14: target.upload: unknown value \"eml\"; allowed: \"json\", \"import-mime\"",
        "m.toml:15: target.server_version: only used with kind = \"ews\"; remove it",
        "m.toml:16: target.password: only used with kind = \"imap\" or \"ews\" (graph logs in \
         with oauth_client_secret); remove it",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn every_ews_problem_at_once() {
    let got = manifest(
        r#"kind = "ews"
url = "mail.contoso.com/EWS/Exchange.asmx"
login = "impersonation"
password = "env:SVC"
server_version = "Exchange2019"
batch_items = 0
port = 443
master_user = "admin"
upload = "json"
tenant = "contoso.onmicrosoft.com""#,
    )
    .expect_err("invalid");
    let want = [
        "m.toml:6: target.service_user: missing; add service_user = \
         \"svc-migrate@contoso.com\" to [target]",
        "m.toml:8: target.url: \"mail.contoso.com/EWS/Exchange.asmx\" is not a URL (relative \
         URL without a base); write it like \"https://mail.contoso.com/EWS/Exchange.asmx\"",
        "m.toml:11: target.server_version: unknown value \"Exchange2019\"; allowed: \
         \"Exchange2007\", \"Exchange2007_SP1\", \"Exchange2010\", \"Exchange2010_SP1\", \
         \"Exchange2010_SP2\", \"Exchange2013\", \"Exchange2013_SP1\", \"Exchange2016\"",
        "m.toml:12: target.batch_items: 0 is not allowed; write 1 to 100 (messages per \
         CreateItem request), or leave it out for the default 10",
        "m.toml:13: target.port: graph and ews targets take url instead; remove it",
        "m.toml:14: target.master_user: only used with kind = \"imap\" (ews impersonation \
         takes service_user); remove it",
        "m.toml:15: target.upload: only used with kind = \"graph\"; remove it",
        "m.toml:16: target.tenant: only used with login = \"oauth\"; remove it",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn http_keys_on_imap_servers_are_reported() {
    let got = manifest(
        "kind = \"imap\"\nhost = \"t\"\npassword = \"env:T\"\nurl = \"https://x\"\n\
         tenant = \"c\"\nmax_requests_per_10min = 1\nbatch_items = 3",
    )
    .expect_err("invalid");
    let want = [
        "m.toml:10: target.url: only used with kind = \"graph\" or \"ews\"; remove it",
        "m.toml:11: target.tenant: only used with kind = \"graph\" or \"ews\"; remove it",
        "m.toml:12: target.max_requests_per_10min: only used with kind = \"graph\"; remove it",
        "m.toml:13: target.batch_items: only used with kind = \"ews\"; remove it",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn single_problems() {
    const GRAPH: &str =
        "kind = \"graph\"\noauth_client_id = \"id\"\noauth_client_secret = \"env:S\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "tenant = \"t\"\noauth_token_url = \"https://login.example/t\"",
            "m.toml:11: target.oauth_token_url: set together with tenant, which names the token \
             endpoint already; keep one",
        ),
        (
            "tenant = \"contoso/../x\"",
            "m.toml:10: target.tenant: \"contoso/../x\" is not a tenant; write its domain (like \
             contoso.onmicrosoft.com) or its id (a GUID)",
        ),
        (
            "oauth_token_url = \"http://login.example/t\"",
            "m.toml:10: target.oauth_token_url: \"http://login.example/t\" is plain http, which \
             would send the client secret in the clear; write https://",
        ),
        (
            "tenant = \"t\"\nlogin = \"password\"",
            "m.toml:11: target.login: unknown value \"password\"; allowed: \"oauth\"",
        ),
        (
            "tenant = \"t\"\nurl = \"http://127.0.0.1:9\"\nca_file = \"ca.pem\"",
            "m.toml:12: target.ca_file: has no effect with an http:// url; remove it or use \
             https://",
        ),
        (
            "tenant = \"t\"\nurl = \"https://graph.microsoft.com/v1.0\"",
            "m.toml:11: target.url: \"https://graph.microsoft.com/v1.0\" names the API version; \
             leave out /v1.0, like \"https://graph.microsoft.com\" (mailhaul picks the version \
             per request)",
        ),
        (
            "tenant = \"t\"\nmax_upload_per_5min = \"lots\"",
            "m.toml:11: target.max_upload_per_5min: \"lots\" is not a size",
        ),
    ];
    for (extra, want) in cases {
        let got = manifest(&format!("{GRAPH}{extra}")).expect_err(extra);
        assert!(
            got.len() == 1 && got[0].starts_with(want),
            "{extra}: want {want:?}, got\n{}",
            got.join("\n")
        );
    }

    const EWS: &str = "kind = \"ews\"\nurl = \"https://mail.x/EWS/Exchange.asmx\"\n";
    let cases: &[(&str, &[&str])] = &[
        (
            "login = \"oauth\"\ntenant = \"t\"\noauth_client_id = \"i\"\n\
             oauth_client_secret = \"env:S\"\npassword = \"env:P\"",
            &[
                "m.toml:13: target.password: only used with login = \"password\" or \
               \"impersonation\"; remove it",
            ],
        ),
        (
            "login = \"impersonation\"",
            &[
                "m.toml:6: target.service_user: missing; add service_user = \
                 \"svc-migrate@contoso.com\" to [target]",
                "m.toml:6: target.password: missing; add password = \"env:NAME\" (the service \
                 account's password) to [target]",
            ],
        ),
        (
            "password = \"env:P\"\nservice_user = \"svc\"\noauth_client_id = \"i\"",
            &[
                "m.toml:10: target.service_user: only used with login = \"impersonation\"; \
                 remove it",
                "m.toml:11: target.oauth_client_id: only used with login = \"oauth\"; remove it",
            ],
        ),
        (
            "login = \"oauth\"",
            &[
                "m.toml:6: target.tenant: missing; add tenant = \"contoso.onmicrosoft.com\" (or \
                 set oauth_token_url) to [target]",
                "m.toml:6: target.oauth_client_id: missing; add oauth_client_id = \
                 \"00000000-0000-0000-0000-000000000000\" to [target]",
                "m.toml:6: target.oauth_client_secret: missing; add oauth_client_secret = \
                 \"env:OAUTH_SECRET\" to [target]",
            ],
        ),
        (
            "login = \"master\"",
            &[
                "m.toml:9: target.login: unknown value \"master\"; allowed: \"password\", \
               \"impersonation\", \"oauth\"",
            ],
        ),
    ];
    for (extra, want) in cases {
        let got = manifest(&format!("{EWS}{extra}")).expect_err(extra);
        assert_eq!(got, *want, "{extra}:\n{}", got.join("\n"));
    }

    let got = manifest("kind = \"ews\"\npassword = \"env:P\"").expect_err("no url");
    assert_eq!(
        got,
        ["m.toml:6: target.url: missing; add url = \
          \"https://mail.contoso.com/EWS/Exchange.asmx\" to [target]"]
    );
}

#[test]
fn graph_and_ews_are_targets_only() {
    let text = "tenant = \"T\"\n[source]\nkind = \"graph\"\nurl = \"https://graph.microsoft.com\"\n\
                [target]\nkind = \"imap\"\nhost = \"t\"\npassword = \"env:T\"\n\
                [[mailbox]]\nemail = \"a@x\"\npassword = \"env:A\"\n";
    let err = Manifest::parse(text, Path::new("m.toml")).expect_err("source graph");
    assert_eq!(
        err.to_string(),
        "m.toml:3: source.kind: \"graph\" is a target only: mail is read over \"imap\", \"pop3\" or from \"pst\" files"
    );
    let err = Manifest::parse(&text.replace("\"graph\"", "\"grpah\""), Path::new("m.toml"))
        .expect_err("typo");
    assert_eq!(
        err.to_string(),
        "m.toml:3: source.kind: unknown value \"grpah\"; allowed: \"imap\", \"pop3\", \"pst\"",
        "a url, so no complaint about host"
    );
}

#[test]
fn default_ports() {
    for (kind, tls, port) in [
        (ServerKind::Graph, TlsMode::Implicit, 443),
        (ServerKind::Ews, TlsMode::None, 80),
        (ServerKind::Imap, TlsMode::Implicit, 993),
        (ServerKind::Pop3, TlsMode::None, 110),
    ] {
        assert_eq!(kind.default_port(tls), port, "{kind} {tls}");
    }
    assert!(ServerKind::Graph.is_http() && ServerKind::Ews.is_http());
    assert!(!ServerKind::Imap.is_http() && !ServerKind::Pop3.is_http());
}

#[test]
fn urls() {
    const GRAPH: &str = "kind = \"graph\"\ntenant = \"t\"\noauth_client_id = \"i\"\n\
                         oauth_client_secret = \"env:S\"\n";
    const EWS: &str = "kind = \"ews\"\npassword = \"env:P\"\n";
    // (kind lines, url, stored url, host, port, tls)
    let good = [
        (
            GRAPH,
            "https://graph.microsoft.com/",
            "https://graph.microsoft.com",
            "graph.microsoft.com",
            443,
            TlsMode::Implicit,
        ),
        (
            GRAPH,
            "http://localhost:1/",
            "http://localhost:1",
            "localhost",
            1,
            TlsMode::None,
        ),
        (
            EWS,
            "http://[::1]/EWS/Exchange.asmx",
            "http://[::1]/EWS/Exchange.asmx",
            "::1",
            80,
            TlsMode::None,
        ),
        (
            EWS,
            "https://Mail.Contoso.com:8443/EWS/Exchange.asmx",
            "https://Mail.Contoso.com:8443/EWS/Exchange.asmx",
            "mail.contoso.com",
            8443,
            TlsMode::Implicit,
        ),
    ];
    for (lines, url, stored, host, port, tls) in good {
        let m = manifest(&format!("{lines}url = \"{url}\"")).expect(url);
        let t = &m.target;
        assert_eq!((t.host.as_str(), t.port, t.tls), (host, port, tls), "{url}");
        assert_eq!(
            t.http.as_ref().map(|h| h.url.as_str()),
            Some(stored),
            "{url}"
        );
    }
    let bad = [
        (GRAPH, "graph.microsoft.com", "is not a URL"),
        (EWS, "ftp://x.example", "is not an http(s) URL"),
        (EWS, "https://", "is not a URL"),
        (EWS, "http://mail.contoso.com/EWS", "use https://"),
        (GRAPH, "http://127.0.0.2/", "use https://"),
        (
            GRAPH,
            "https://graph.microsoft.com/v1.0/",
            "leave out /v1.0",
        ),
        (GRAPH, "https://graph.microsoft.com/beta", "leave out /beta"),
        (
            EWS,
            "https://u:hunter2@mail.x/EWS",
            "holds a user name or password",
        ),
        (
            EWS,
            "  ",
            "target.url: empty; write the service's https:// URL",
        ),
    ];
    for (lines, url, want) in bad {
        let got = manifest(&format!("{lines}url = \"{url}\"")).expect_err(url);
        assert!(got.len() == 1 && got[0].contains(want), "{url}: {got:?}");
        assert!(!got[0].contains("hunter2"), "{got:?}");
    }
}
