//! Proves the test kit against real servers: a private Dovecot seeded with the standard
//! corpus reads back exactly as the corpus says, its TLS and POP3 listeners work with
//! the test CA, and the shared RabbitMQ and Redis accept clients.

use std::sync::Arc;

use anyhow::Context as _;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use mailhaul_tests::corpus;
use mailhaul_tests::kit::{self, Dovecot};
use mailhaul_tests::snapshot::{self, MailboxSnapshot};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt as _, BufReader};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_corpus_reads_back_exactly() -> anyhow::Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("alice", "s3cret pass")?;
    let corpus = corpus::standard(1, 16);

    let started = std::time::Instant::now();
    corpus::seed(dovecot.imap_port(), "alice", "s3cret pass", &corpus).await?;
    eprintln!(
        "seeded {} messages, {} bytes in {:?}",
        corpus.message_count(),
        corpus.total_bytes(),
        started.elapsed()
    );
    let snap = snapshot::snapshot(dovecot.imap_port(), "alice", "s3cret pass").await?;

    let expected = MailboxSnapshot::from_corpus(&corpus);
    snapshot::assert_same(&expected, &snap);
    // Stricter than assert_same: exactly the corpus's folders, each in corpus (= UID) order.
    assert_eq!(snap, expected);
    assert_eq!(snap.message_count(), corpus.message_count());
    assert_eq!(snap.total_bytes(), corpus.total_bytes());

    // doveadm sees the same tree, with names decoded (a check independent of our LIST path).
    let listed = dovecot.doveadm(&["mailbox", "list", "-u", "alice"])?;
    for name in [
        "R&D",
        "Tom & Jerry",
        "Entwürfe/Ärger",
        "Отправленные",
        "日本語",
        "Archive/2023/Q1",
        "Old Projects",
        "Junk",
    ] {
        assert!(
            listed.lines().any(|l| l == name),
            "{name} not in doveadm's list:\n{listed}"
        );
    }

    // A tampered target is caught, and the report names the message.
    let mut tampered = snap.clone();
    let victim = tampered.folders.get_mut("R&D").context("R&D")?.remove(0);
    let report = snapshot::diff(&expected, &tampered).context("difference expected")?;
    assert!(
        report.contains("folder \"R&D\"") && report.contains(&victim.sha256[..12]),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn dovecot_speaks_tls_and_pop3() -> anyhow::Result<()> {
    let dovecot = Dovecot::start()?;
    dovecot.add_user("bob", "secret")?;
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dovecot.ca_pem())? {
        roots.add(cert?)?;
    }
    let tls = tokio_rustls::TlsConnector::from(Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ));
    for (port, greeting) in [
        (dovecot.imaps_port(), "* OK"),
        (dovecot.pop3s_port(), "+OK"),
    ] {
        for host in ["localhost", "127.0.0.1"] {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let stream = tls
                .connect(ServerName::try_from(host)?.to_owned(), tcp)
                .await?;
            let mut lines = BufReader::new(stream);
            assert!(
                read_line(&mut lines).await?.starts_with(greeting),
                "port {port} via {host}"
            );
        }
    }

    // IMAP STARTTLS, then the capabilities the migrator relies on after login.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", dovecot.imap_port())).await?;
    let mut plain = BufReader::new(tcp);
    assert!(read_line(&mut plain).await?.contains("STARTTLS"));
    plain.get_mut().write_all(b"a STARTTLS\r\n").await?;
    assert!(read_line(&mut plain).await?.starts_with("a OK"));
    let stream = tls
        .connect(ServerName::try_from("localhost")?, plain.into_inner())
        .await?;
    let mut imap = BufReader::new(stream);
    imap.get_mut().write_all(b"b LOGIN bob secret\r\n").await?;
    let login = read_line(&mut imap).await?;
    for cap in ["UIDPLUS", "MULTIAPPEND", "LITERAL+", "SPECIAL-USE"] {
        assert!(login.contains(cap), "{cap} missing after login: {login}");
    }

    // Plain POP3: a user added after start logs in at once; the maildrop is empty.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", dovecot.pop3_port())).await?;
    let mut pop = BufReader::new(tcp);
    assert!(read_line(&mut pop).await?.starts_with("+OK"));
    for (command, reply) in [
        ("USER bob", "+OK"),
        ("PASS secret", "+OK"),
        ("STAT", "+OK 0 0"),
        ("QUIT", "+OK"),
    ] {
        pop.get_mut()
            .write_all(format!("{command}\r\n").as_bytes())
            .await?;
        let line = read_line(&mut pop).await?;
        assert!(line.starts_with(reply), "{command}: {line}");
    }

    // Bad input to add_user is refused with a reason.
    let err = dovecot.add_user("eve:x", "pw").expect_err("':' is refused");
    assert!(err.to_string().contains("passwd-file"), "{err}");
    Ok(())
}

async fn read_line(r: &mut (impl AsyncBufReadExt + Unpin)) -> anyhow::Result<String> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    Ok(line)
}

#[tokio::test]
async fn shared_redis_answers() -> anyhow::Result<()> {
    let shared = kit::shared();
    let client = redis::Client::open(shared.redis_url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let pong: String = redis::cmd("PING").query_async(&mut con).await?;
    assert_eq!(pong, "PONG");
    let key = format!("{}:probe", kit::unique_namespace("shared_redis_answers"));
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .query_async(&mut con)
        .await?;
    let value: String = redis::cmd("GET").arg(&key).query_async(&mut con).await?;
    assert_eq!(value, "v");
    Ok(())
}

#[tokio::test]
async fn shared_rabbitmq_confirms_and_delivers() -> anyhow::Result<()> {
    // shared() is one instance per process, whichever thread asks first.
    let other = std::thread::spawn(|| kit::shared() as *const kit::Shared as usize);
    let shared = kit::shared();
    assert_eq!(
        other.join().expect("no panic"),
        shared as *const kit::Shared as usize
    );

    let conn = Connection::connect(&shared.amqp_url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let queue = kit::unique_namespace("shared_rabbitmq");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default(),
        )
        .await?
        .await?;
    assert!(confirm.is_ack());
    let got = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await?
        .context("the message we published")?;
    assert_eq!(got.delivery.data, b"hello");
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    conn.close(200, "bye".into()).await?;
    Ok(())
}
