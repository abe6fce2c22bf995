//! RabbitMQ implementation of the bus (lapin 4 on tokio).

use crate::delivery::{Acker, TaskDelivery, TaskStream};
use crate::topology::{Topology, sh};
use crate::trace::TraceHeaders;
use crate::{BusError, Result, amqp};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use mailhaul_proto::task::FolderTask;
use std::time::Duration;

/// Header carrying why a task was dead-lettered by a worker.
const REASON_HEADER: &str = "x-mailhaul-reason";

/// A connection to RabbitMQ with a confirm-mode publishing channel, made again when the
/// broker went away: every call that finds the link broken (a broker restart, a dropped
/// connection) reconnects first, so a caller that keeps calling rides out an outage of
/// any length; a call made while the broker is down fails fast with the reason.
pub struct RabbitBus {
    /// The AMQP URL; it may hold a password, so it is never logged or shown.
    url: String,
    name: String,
    topo: Topology,
    link: tokio::sync::Mutex<Option<Link>>,
}

/// One live connection and its publishing channel.
struct Link {
    conn: Connection,
    publisher: Channel,
}

impl Link {
    fn alive(&self) -> bool {
        self.conn.status().connected() && self.publisher.status().connected()
    }
}

impl std::fmt::Debug for RabbitBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitBus")
            .field("topology", &self.topo)
            .finish_non_exhaustive()
    }
}

impl RabbitBus {
    pub(crate) async fn connect(url: &str, topo: Topology, name: &str) -> Result<Self> {
        let bus = RabbitBus {
            url: url.to_owned(),
            name: name.to_owned(),
            topo,
            link: tokio::sync::Mutex::new(None),
        };
        bus.publisher().await?;
        Ok(bus)
    }

    /// The live link, connected (and the topology declared) again if it was broken.
    async fn link(&self) -> Result<tokio::sync::MappedMutexGuard<'_, Link>> {
        let mut guard = self.link.lock().await;
        if !guard.as_ref().is_some_and(Link::alive) {
            let reconnect = guard.is_some();
            if let Some(old) = guard.take() {
                let _ = old.conn.close(200, sh("reconnecting")).await;
            }
            *guard = Some(self.open().await?);
            if reconnect {
                tracing::warn!("Connected to RabbitMQ again.");
            }
        }
        Ok(tokio::sync::MutexGuard::map(guard, |l| {
            l.as_mut().expect("set above")
        }))
    }

    async fn open(&self) -> Result<Link> {
        let props = ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let conn = Connection::connect(&self.url, props)
            .await
            .map_err(amqp("connecting to RabbitMQ"))?;
        let publisher = conn
            .create_channel()
            .await
            .map_err(amqp("opening a channel"))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp("enabling publisher confirms"))?;
        declare(&publisher, &self.topo).await?;
        Ok(Link { conn, publisher })
    }

    /// The confirm-mode publishing channel of the live link.
    async fn publisher(&self) -> Result<Channel> {
        Ok(self.link().await?.publisher.clone())
    }

    /// A new channel on the live link.
    async fn channel(&self, what: &'static str) -> Result<Channel> {
        let link = self.link().await?;
        link.conn.create_channel().await.map_err(amqp(what))
    }

    async fn publish_raw(
        &self,
        queue: &str,
        payloads: &[(Vec<u8>, BasicProperties)],
    ) -> Result<()> {
        let publisher = self.publisher().await?;
        // Publish a window, then wait for its confirms: pipelined, but bounded in memory.
        for window in payloads.chunks(256) {
            let mut confirms = Vec::with_capacity(window.len());
            for (body, props) in window {
                let c = publisher
                    .basic_publish(
                        sh(""),
                        sh(queue),
                        BasicPublishOptions::default(),
                        body,
                        props.clone(),
                    )
                    .await
                    .map_err(amqp("publishing a task"))?;
                confirms.push(c);
            }
            for c in confirms {
                let confirmation = c.await.map_err(amqp("waiting for a publisher confirm"))?;
                if !confirmation.is_ack() {
                    return Err(BusError::NotConfirmed(queue.to_owned()));
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn publish(&self, tasks: &[FolderTask]) -> Result<()> {
        let trace = TraceHeaders::current();
        let payloads: Vec<_> = tasks
            .iter()
            .map(|t| (t.to_json(), props(t, &trace)))
            .collect();
        self.publish_raw(&self.topo.tasks(), &payloads).await
    }

    pub(crate) async fn retry_later(&self, task: &FolderTask, delay: Duration) -> Result<()> {
        let tier = Topology::tier_for(delay);
        let trace = TraceHeaders::current();
        self.publish_raw(
            &self.topo.retry(tier),
            &[(task.to_json(), props(task, &trace))],
        )
        .await
    }

    pub(crate) async fn dead_letter(&self, raw: &[u8], reason: &str) -> Result<()> {
        let mut headers = FieldTable::default();
        headers.insert(
            sh(REASON_HEADER),
            AMQPValue::LongString(LongString::from(reason)),
        );
        TraceHeaders::current().write_to(&mut headers);
        let p = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers);
        self.publish_raw(&self.topo.dead(), &[(raw.to_vec(), p)])
            .await
    }

    pub(crate) async fn consume(&self, prefetch: u16, tag: &str) -> Result<TaskStream> {
        let ch = self.channel("opening a consumer channel").await?;
        ch.basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(amqp("setting the prefetch"))?;
        let consumer = ch
            .basic_consume(
                sh(&self.topo.tasks()),
                sh(tag),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp("starting to consume tasks"))?;
        Ok(TaskStream::rabbit(ch, consumer, tag))
    }

    pub(crate) async fn peek_dead(&self, max: usize) -> Result<Vec<(Vec<u8>, String)>> {
        // A private channel: whatever we get stays unacked until the channel closes,
        // and closing hands it all back to the queue, untouched.
        let ch = self.channel("opening a channel").await?;
        let mut out = Vec::new();
        while out.len() < max {
            let got = ch
                .basic_get(sh(&self.topo.dead()), BasicGetOptions { no_ack: false })
                .await
                .map_err(amqp("reading the dead-letter queue"))?;
            let Some(msg) = got else { break };
            let reason = dead_reason(msg.delivery.properties.headers());
            out.push((msg.delivery.data.clone(), reason));
        }
        let _ = ch.close(200, sh("peek done")).await;
        Ok(out)
    }

    pub(crate) async fn queue_stats(&self) -> Result<crate::QueueStats> {
        let q = self
            .declared(&self.topo.tasks(), "reading the task queue's counts")
            .await?;
        let mut retrying = 0;
        for tier in crate::topology::RETRY_TIERS {
            retrying += self
                .declared(&self.topo.retry(tier), "reading a retry queue's counts")
                .await?
                .message_count();
        }
        Ok(crate::QueueStats {
            ready: q.message_count(),
            consumers: q.consumer_count(),
            retrying,
        })
    }

    /// A passive declare: answers with the queue's counts and creates nothing. The
    /// queues are declared with the topology, so it finds them (a missing one would
    /// close the channel).
    async fn declared(&self, queue: &str, what: &'static str) -> Result<lapin::Queue> {
        self.publisher()
            .await?
            .queue_declare(
                sh(queue),
                QueueDeclareOptions {
                    passive: true,
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp(what))
    }

    pub(crate) async fn close(&self) {
        if let Some(link) = self.link.lock().await.take() {
            let _ = link.publisher.close(200, sh("bye")).await;
            let _ = link.conn.close(200, sh("bye")).await;
        }
    }
}

/// Declares the namespace's exchange and queues (idempotent; see [`Topology`]).
async fn declare(ch: &Channel, t: &Topology) -> Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        sh(&t.dlx()),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .map_err(amqp("declaring the dead-letter exchange"))?;
    ch.queue_declare(sh(&t.dead()), durable, t.dead_args())
        .await
        .map_err(amqp("declaring the dead-letter queue"))?;
    ch.queue_bind(
        sh(&t.dead()),
        sh(&t.dlx()),
        sh(&t.dead()),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(amqp("binding the dead-letter queue"))?;
    ch.queue_declare(sh(&t.tasks()), durable, t.tasks_args())
        .await
        .map_err(amqp("declaring the task queue"))?;
    for tier in crate::topology::RETRY_TIERS {
        ch.queue_declare(sh(&t.retry(tier)), durable, t.retry_args(tier))
            .await
            .map_err(amqp("declaring a retry queue"))?;
    }
    Ok(())
}

fn props(t: &FolderTask, trace: &TraceHeaders) -> BasicProperties {
    let p = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(sh("application/json"))
        .with_message_id(sh(t.task_id.as_str()));
    if trace.traceparent.is_none() {
        return p;
    }
    let mut headers = FieldTable::default();
    trace.write_to(&mut headers);
    p.with_headers(headers)
}

fn header<'a>(headers: &'a Option<FieldTable>, name: &str) -> Option<&'a AMQPValue> {
    headers.as_ref()?.inner().get(name)
}

pub(crate) fn as_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn as_int(v: &AMQPValue) -> Option<i64> {
    match *v {
        AMQPValue::LongLongInt(n) => Some(n),
        AMQPValue::LongInt(n) => Some(n.into()),
        AMQPValue::ShortInt(n) => Some(n.into()),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::ShortShortInt(n) => Some(n.into()),
        _ => None,
    }
}

fn dead_reason(headers: &Option<FieldTable>) -> String {
    if let Some(r) = header(headers, REASON_HEADER).and_then(as_text) {
        return r;
    }
    match header(headers, "x-first-death-reason")
        .and_then(as_text)
        .as_deref()
    {
        Some("delivery_limit") => crate::embedded::DELIVERY_LIMIT_REASON.to_owned(),
        Some(other) => format!("dead-lettered by the broker ({other})"),
        None => "dead-lettered".to_owned(),
    }
}

/// Turns a RabbitMQ delivery into the bus's.
pub(crate) fn delivery(d: lapin::message::Delivery) -> TaskDelivery {
    TaskDelivery {
        task: FolderTask::from_json(&d.data),
        delivery_count: header(d.properties.headers(), "x-delivery-count")
            .and_then(as_int)
            .unwrap_or(0)
            .max(0) as u32,
        redelivered: d.redelivered,
        trace: TraceHeaders::from_table(d.properties.headers()),
        raw: d.data,
        acker: Acker::Rabbit(d.acker),
    }
}

/// Acks a RabbitMQ delivery (`true`) or hands it back to the queue now (`false`).
pub(crate) async fn answer(acker: lapin::Acker, ack: bool) -> Result<()> {
    if ack {
        acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(amqp("acking a task"))?;
    } else {
        acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .map_err(amqp("requeueing a task"))?;
    }
    Ok(())
}

/// Stops a RabbitMQ consumer.
pub(crate) async fn cancel(channel: &Channel, tag: &str) {
    let _ = channel
        .basic_cancel(sh(tag), BasicCancelOptions::default())
        .await;
}
