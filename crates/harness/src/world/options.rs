//! What a test may set before its world's services start: the broker and database server, each
//! service's configuration (the production defaults, placed in the world), and how many senders.

use clap::Parser;
use std::time::Duration;

use crate::names::Names;
use crate::service::HANDOFF_KEY;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const TOKEN: &str = "5f0c8e2b9a41d7e3c6b08f5a2d9e7c14";

/// Knobs a test may turn before the services start.
pub struct Options {
    /// The broker every part of the world uses (the machine's by default).
    pub amqp_url: String,
    pub dispatcher: webhooks_dispatcher::Config,
    pub sender: webhooks_sender::Config,
    pub senders: usize,
    /// The PostgreSQL server (no database name) the world's database is created on (the
    /// machine's by default).
    pub pg_server: String,
}

impl Options {
    /// The production defaults of every setting, timings included, in the world `names`: a test
    /// that shortens one says why, and shortens the settings it interacts with in proportion.
    /// Time-driven rules (retries, the breaker, the disable window) follow the world's clock,
    /// which a test moves forward instead.
    pub(super) fn defaults(names: &Names) -> Self {
        let mut dispatcher = webhooks_dispatcher::Config::parse_from(["webhooks-dispatcher"]);
        dispatcher.common.amqp_prefix = names.prefix.clone();
        // Many worlds run at once against one PostgreSQL (100 connections).
        dispatcher.common.database_pool_size = 4;
        dispatcher.http_addr = "127.0.0.1:0".parse().expect("addr");
        dispatcher.admin_token = Some(TOKEN.into());
        dispatcher.handoff_key = Some(HANDOFF_KEY.into());
        dispatcher.events_exchange = names.exchange.clone();
        // The receiver listens on loopback.
        dispatcher.allowed_targets = vec!["127.0.0.0/8".parse().expect("cidr")];

        let mut sender = webhooks_sender::Config::parse_from(["webhooks-sender"]);
        sender.common = dispatcher.common.clone();
        sender.http_addr = "127.0.0.1:0".parse().expect("addr");
        sender.allowed_targets = dispatcher.allowed_targets.clone();
        sender.handoff_key = Some(HANDOFF_KEY.into());
        Self {
            amqp_url: AMQP_URL.to_owned(),
            dispatcher,
            sender,
            senders: 1,
            pg_server: PG_SERVER.to_owned(),
        }
    }

    /// Points both services at the broker and the database server chosen (after a test's
    /// adjustments); returns the database's URL.
    pub(super) fn place(&mut self, names: &Names) -> String {
        let database_url = names.database_url(&self.pg_server);
        for common in [&mut self.dispatcher.common, &mut self.sender.common] {
            common.database_url = database_url.as_str().into();
            common.amqp_url = self.amqp_url.as_str().into();
        }
        database_url
    }

    /// A shorter `DELIVERY_TIMEOUT`, for tests whose endpoints hang (the timeout runs on real
    /// time). The hand-off lease keeps the room over the timeout that production has (30 s over
    /// 15 s), so fresh deliveries are still carried, not claimed.
    pub fn delivery_timeout(&mut self, timeout: Duration) {
        self.sender.delivery_timeout = timeout;
        self.dispatcher.handoff_grace = timeout + Duration::from_secs(15);
    }

    /// Retries after 200 ms (at most 1 s apart), for services run as processes of their own:
    /// those run on the system clock, which a test cannot move. The breaker's pause follows
    /// `RETRY_INITIAL` down.
    pub fn quick_retries(&mut self) {
        self.sender.retry_initial = Duration::from_millis(200);
        self.sender.retry_max = Duration::from_secs(1);
    }
}
