//! End to end into Exchange through EWS (the emulator, as Exchange Online takes it: the
//! app's token and impersonation): real Dovecot source; RabbitMQ, Redis and workers, or
//! the embedded mode.
//!
//! Every message exactly once, in the right folder, not a draft, with the MIME as sent,
//! the received date, read state, flag and categories — through `ErrorServerBusy`
//! back-offs and 503s, with the emulator never seeing more than 4 requests at once per
//! mailbox; a second pass adds nothing.

use mailhaul_tests::both_backends;
use mailhaul_tests::corpus::{self, Corpus};
use mailhaul_tests::exchange::{Emulator, EmulatorConfig, Fault};
use mailhaul_tests::exchange_check::{
    Compare, assert_exchange_same, ews_reader, exchange_path, expected, message_count,
};
use mailhaul_tests::harness::{Backend, Env, email};
use std::time::Duration;

/// EWS keeps both the MIME and the received date.
const EWS: Compare = Compare {
    received: true,
    mime: true,
    drafts_by_json: false,
};

both_backends!(
    ews_tenant_migrates_exactly_once_through_server_busy,
    ews_tenant
);

async fn ews_tenant(backend: Backend) -> anyhow::Result<()> {
    let users = ["gina", "hank"];
    let env = Env::new("ews", &users, "slice_messages = 20")?.on(backend);
    let emu = Emulator::start(EmulatorConfig {
        latency: Duration::from_millis(10),
        ..EmulatorConfig::default()
    })
    .await?;
    env.use_exchange("ews", &emu, "batch_items = 8")?;
    let corpora: Vec<Corpus> = vec![corpus::standard(41, 16), corpus::standard(42, 16)];
    for (u, c) in users.iter().zip(&corpora) {
        env.seed(u, c).await?;
    }
    let storm = || {
        emu.inject(Fault::EwsServerBusy {
            count: 6,
            back_off_ms: 700,
        });
        emu.inject(Fault::Ews503 {
            count: 3,
            retry_after: None,
        });
        emu.inject(Fault::Ews503 {
            count: 2,
            retry_after: Some(Duration::from_secs(1)),
        });
    };
    match backend {
        Backend::Distributed => {
            // Plan first, so the storm hits the workers, not the coordinator.
            tokio::task::block_in_place(|| env.publish_pass());
            storm();
            env.workers(2, &["--concurrency", "3"]);
            env.wait_pass_done(Duration::from_secs(300)).await?;
        }
        Backend::Embedded => {
            // One process plans and copies: the storm hits whoever asks first.
            storm();
            env.workers(2, &["--concurrency", "3"]);
            tokio::task::block_in_place(|| env.migrate_ok());
        }
    }
    for (u, c) in users.iter().zip(&corpora) {
        let reader = ews_reader(&emu, &email(u));
        assert_exchange_same(&expected(c, &exchange_path, EWS), &reader, EWS).await?;
        let peak = emu.ews_peak_concurrency(&email(u));
        assert!(
            peak <= 4,
            "{u}: the emulator saw {peak} EWS requests at once"
        );
    }

    let mut before = 0;
    for u in &users {
        before += message_count(&ews_reader(&emu, &email(u))).await?;
    }
    tokio::task::block_in_place(|| env.migrate_ok());
    let mut after = 0;
    for u in &users {
        after += message_count(&ews_reader(&emu, &email(u))).await?;
    }
    assert_eq!(before, after, "the second pass created items");
    Ok(())
}
