//! Live audit events (`AuditService.WatchEvents`), read from the audit table
//! so that a cursor (the last event id processed) resumes with no gap and no
//! duplicate, across restarts and replicas.
//!
//! Ids follow commit order: SQLite has a single writer, and on PostgreSQL
//! [`Core::record`] takes a transaction-level advisory lock before inserting,
//! so a transaction cannot take an id while an earlier id is uncommitted.
//!
//! Each watcher has a producer task that reads a batch after its cursor,
//! hands it over through a bounded channel (the watcher's pace bounds the
//! memory it uses), and then waits for a wake-up: [`Core::commit`] wakes
//! watchers at once after a local commit, and [`Core::poll_new_events`]
//! (every [`WATCH_POLL`]) after another replica's commit.
use std::{
    collections::HashMap,
    pin::Pin,
    sync::atomic::{AtomicI64, Ordering},
    task::{Context, Poll},
    time::Duration,
};

use provisioning_proto::{ERROR_DOMAIN, pb::ErrorReason};
use sea_orm::{
    ColumnTrait as _, DatabaseTransaction, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::Stream;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};
use uuid::Uuid;

use super::{Core, Ctx};
use crate::{
    db::{
        Db,
        entities::{account, audit_event},
    },
    error::{Error, Result},
};

/// How often each server looks for events committed through other replicas
/// (one cheap query per server, and only while someone watches).
pub const WATCH_POLL: Duration = Duration::from_millis(200);

/// Wakes watchers: a generation bumped whenever new events may be visible,
/// and a flag raised at shutdown.
pub(crate) struct EventBus {
    generation: watch::Sender<u64>,
    closed: watch::Sender<bool>,
    /// The newest event id the poller saw.
    polled_max: AtomicI64,
}

impl EventBus {
    pub(crate) fn new() -> Self {
        Self {
            generation: watch::Sender::new(0),
            closed: watch::Sender::new(false),
            polled_max: AtomicI64::new(-1),
        }
    }

    fn wake(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }
}

/// One delivered event and the slug of its account ("" for none).
#[derive(Debug)]
pub struct Watched {
    pub event: audit_event::Model,
    pub account: String,
}

impl Core {
    /// Commits a transaction that recorded audit events and wakes the
    /// watchers of this server at once.
    pub async fn commit(&self, txn: DatabaseTransaction) -> Result<()> {
        txn.commit().await?;
        self.events.wake();
        Ok(())
    }

    /// Wakes watchers when another replica committed events. Cheap, and a
    /// no-op while nobody watches.
    pub async fn poll_new_events(&self) -> Result<()> {
        if self.events.generation.receiver_count() == 0 {
            return Ok(());
        }
        let max: Option<Option<i64>> = audit_event::Entity::find()
            .select_only()
            .column_as(audit_event::Column::Id.max(), "max")
            .into_tuple()
            .one(&self.db.read)
            .await?;
        let max = max.flatten().unwrap_or(0);
        if self.events.polled_max.swap(max, Ordering::AcqRel) != max {
            self.events.wake();
        }
        Ok(())
    }

    /// Ends every watch (with UNAVAILABLE: resume elsewhere or later).
    pub fn close_watchers(&self) {
        self.events.closed.send_replace(true);
    }

    /// Watchers connected to this server.
    pub fn watcher_count(&self) -> usize {
        self.events.generation.receiver_count()
    }

    /// Starts a watch of one account (`slug`) or of all (empty `slug`),
    /// from after `cursor`, or from now.
    pub async fn watch_events(
        &self,
        ctx: &Ctx,
        slug: &str,
        cursor: i64,
        from_now: bool,
    ) -> Result<EventWatch> {
        ctx.require_admin()?;
        if cursor < 0 {
            return Err(Error::invalid("cursor", "must not be negative"));
        }
        let scope = if slug.is_empty() {
            Scope::All(HashMap::new())
        } else {
            let account = self.account_by_slug(&self.db.read, slug).await?;
            Scope::Account(account.id, account.slug)
        };
        let generation = self.events.generation.subscribe();
        let cursor = if from_now {
            let newest = scope
                .query(0)
                .select_only()
                .column_as(audit_event::Column::Id.max(), "max")
                .into_tuple::<Option<i64>>()
                .one(&self.db.read)
                .await?;
            newest.flatten().unwrap_or(0)
        } else {
            cursor
        };
        let buffer = self.watch_buffer.max(1);
        let (tx, rx) = mpsc::channel(buffer);
        let (end_tx, end_rx) = oneshot::channel();
        let producer = Producer {
            db: self.db.clone(),
            scope,
            cursor,
            batch: buffer as u64,
            stall: self.watch_stall,
            generation,
            closed: self.events.closed.subscribe(),
            tx,
        };
        tokio::spawn(async move {
            if let Err(status) = producer.run().await {
                let _ = end_tx.send(status);
            }
        });
        metrics::gauge!("provisioning_watchers").increment(1.0);
        Ok(EventWatch {
            rx,
            end: Some(end_rx),
        })
    }
}

enum Scope {
    Account(Uuid, String),
    /// Every account; slugs cached by account id (slugs never change).
    All(HashMap<Uuid, String>),
}

impl Scope {
    fn query(&self, after: i64) -> sea_orm::Select<audit_event::Entity> {
        let query = audit_event::Entity::find().filter(audit_event::Column::Id.gt(after));
        match self {
            Self::Account(id, _) => query.filter(audit_event::Column::AccountId.eq(*id)),
            Self::All(_) => query,
        }
    }

    async fn slug(&mut self, db: &Db, account_id: Option<Uuid>) -> Result<String> {
        match (self, account_id) {
            (Self::Account(_, slug), _) => Ok(slug.clone()),
            (Self::All(_), None) => Ok(String::new()),
            (Self::All(cache), Some(id)) => {
                if let Some(slug) = cache.get(&id) {
                    return Ok(slug.clone());
                }
                let slug = account::Entity::find_by_id(id)
                    .one(&db.read)
                    .await?
                    .map(|a| a.slug)
                    .unwrap_or_default();
                cache.insert(id, slug.clone());
                Ok(slug)
            }
        }
    }
}

struct Producer {
    db: Db,
    scope: Scope,
    cursor: i64,
    batch: u64,
    stall: Duration,
    generation: watch::Receiver<u64>,
    closed: watch::Receiver<bool>,
    tx: mpsc::Sender<Watched>,
}

impl Producer {
    /// Ok when the watcher hung up; Err ends the stream with that status.
    async fn run(mut self) -> std::result::Result<(), Status> {
        loop {
            self.generation.borrow_and_update();
            if *self.closed.borrow() {
                return Err(shutting_down());
            }
            let events = self
                .scope
                .query(self.cursor)
                .order_by_asc(audit_event::Column::Id)
                .limit(self.batch)
                .all(&self.db.read)
                .await
                .map_err(|e| Status::from(Error::from(e)))?;
            let full = events.len() as u64 == self.batch;
            for event in events {
                let account = self
                    .scope
                    .slug(&self.db, event.account_id)
                    .await
                    .map_err(Status::from)?;
                let id = event.id;
                let send = self.tx.send_timeout(Watched { event, account }, self.stall);
                tokio::select! {
                    sent = send => match sent {
                        Ok(()) => self.cursor = id,
                        Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                            metrics::counter!("provisioning_watch_lagging_total").increment(1);
                            return Err(lagging(self.stall));
                        }
                        Err(mpsc::error::SendTimeoutError::Closed(_)) => return Ok(()),
                    },
                    () = raised(&mut self.closed) => return Err(shutting_down()),
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                changed = self.generation.changed() => {
                    if changed.is_err() {
                        return Err(shutting_down());
                    }
                }
                () = raised(&mut self.closed) => return Err(shutting_down()),
                () = self.tx.closed() => return Ok(()),
            }
        }
    }
}

async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

fn shutting_down() -> Status {
    Status::with_error_details(
        Code::Unavailable,
        "the server is shutting down; reconnect with the id of the last event you processed as cursor",
        ErrorDetails::with_error_info(
            ErrorReason::Unavailable.as_str_name(),
            ERROR_DOMAIN,
            HashMap::new(),
        ),
    )
}

fn lagging(stall: Duration) -> Status {
    Status::with_error_details(
        Code::Aborted,
        format!(
            "the stream was not read for {}s while events waited; reconnect with the id of the last event you processed as cursor",
            stall.as_secs()
        ),
        ErrorDetails::with_error_info(
            ErrorReason::WatchLagging.as_str_name(),
            ERROR_DOMAIN,
            HashMap::new(),
        ),
    )
}

/// The stream of one watch: buffered events, then the status that ended it
/// (if the server ended it).
pub struct EventWatch {
    rx: mpsc::Receiver<Watched>,
    end: Option<oneshot::Receiver<Status>>,
}

impl Stream for EventWatch {
    type Item = std::result::Result<Watched, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                metrics::counter!("provisioning_watch_events_delivered_total").increment(1);
                return Poll::Ready(Some(Ok(event)));
            }
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }
        let Some(end) = self.end.as_mut() else {
            return Poll::Ready(None);
        };
        let ended = match Pin::new(end).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(ended) => ended,
        };
        self.end = None;
        Poll::Ready(ended.ok().map(Err))
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        metrics::gauge!("provisioning_watchers").decrement(1.0);
    }
}
