//! mailhaul's test crate: the kit that runs real servers, the test corpus, and
//! mailbox snapshots for end-to-end assertions.
//!
//! * [`kit`]: a private Dovecot per test; RabbitMQ and Redis per test process; unique
//!   namespaces; paths of the workspace binaries.
//! * [`corpus`]: deterministic mailboxes (the edge-case corpus and benchmark profiles)
//!   and seeding them over IMAP.
//! * [`snapshot`]: what an IMAP account holds, and a readable comparison of two.
//! * [`harness`]: a whole migration environment for one end-to-end test.
//! * [`exchange`]: the Exchange Online emulator; [`exchange_read`]: reading an Exchange
//!   mailbox back through Graph or EWS, as a user's client would.
//!
//! Nothing here depends on the code under test for the facts it checks: the kit speaks
//! IMAP through async-imap directly and has its own modified UTF-7 codec.

pub mod corpus;
pub mod exchange;
pub mod exchange_check;
pub mod exchange_read;
pub mod fixtures;
pub mod harness;
pub mod kit;
pub mod snapshot;
