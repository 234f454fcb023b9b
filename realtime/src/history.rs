//! What the hub keeps in the store: channel messages (the history of
//! `GET /v2/channel/{id}`) and notifications (`GET /v2/notification`), in
//! the core collections `realtime_messages` and `realtime_notifications`.
//! Both are ordered by `seq`, a per-node increasing microsecond stamp, which
//! is also the cursor.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use elements_identity::time::{now_ms, rfc3339};
use elements_store::{CollectionName, DocumentStore, Filter, IndexSpec, Namespace, Query, Update};
use serde_json::{Value, json};

use crate::error::RealtimeError;
use crate::protocol::{ChannelMessage, Notification};

/// Most items one page may hold (Nakama's bound).
pub const MAX_PAGE: u64 = 100;

/// A page of channel history.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    /// The messages, in the order asked for.
    pub messages: Vec<ChannelMessage>,
    /// Where the next page starts, when there is one.
    pub next_cursor: Option<String>,
    /// Where this page started (to page back), when it didn't start at an end.
    pub prev_cursor: Option<String>,
}

/// A page of notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationPage {
    /// Oldest first.
    pub notifications: Vec<Notification>,
    /// Pass it back to get only what came after this page.
    pub cacheable_cursor: Option<String>,
}

pub(crate) struct History {
    store: Arc<dyn DocumentStore>,
    messages: CollectionName,
    notifications: CollectionName,
    last_seq: AtomicI64,
}

impl History {
    pub(crate) async fn open(store: Arc<dyn DocumentStore>) -> Result<History, RealtimeError> {
        let core = Namespace::core();
        let messages = core.collection("realtime_messages")?;
        let notifications = core.collection("realtime_notifications")?;
        store
            .ensure_index(&messages, &IndexSpec::non_unique(&["channel_id", "seq"])?)
            .await?;
        store
            .ensure_index(&notifications, &IndexSpec::non_unique(&["user_id", "seq"])?)
            .await?;
        Ok(History {
            store,
            messages,
            notifications,
            last_seq: AtomicI64::new(0),
        })
    }

    /// The next stamp: the clock in microseconds, but always above the last.
    fn next_seq(&self) -> i64 {
        let now = now_ms().saturating_mul(1000);
        let mut last = self.last_seq.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last_seq
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// A new message (not yet stored): its id and times.
    pub(crate) fn new_message(&self, mut message: ChannelMessage) -> (i64, ChannelMessage) {
        let seq = self.next_seq();
        let time = rfc3339(seq / 1000);
        message.message_id = uuid::Uuid::new_v4().to_string();
        message.create_time = time.clone();
        message.update_time = time;
        (seq, message)
    }

    pub(crate) async fn store_message(&self, seq: i64, m: &ChannelMessage) -> Result<(), RealtimeError> {
        let doc = json!({
            "_id": m.message_id, "seq": seq, "channel_id": m.channel_id, "code": m.code,
            "sender_id": m.sender_id, "username": m.username, "content": m.content,
            "create_time": m.create_time, "update_time": m.update_time,
            "room_name": m.room_name, "user_id_one": m.user_id_one, "user_id_two": m.user_id_two,
        });
        self.store.insert(&self.messages, doc).await?;
        Ok(())
    }

    /// A stored message of `channel_id`.
    pub(crate) async fn message(
        &self,
        channel_id: &str,
        message_id: &str,
    ) -> Result<Option<ChannelMessage>, RealtimeError> {
        Ok(self
            .store
            .get(&self.messages, message_id)
            .await?
            .filter(|d| d["channel_id"] == channel_id)
            .map(|d| message_of(&d)))
    }

    pub(crate) async fn update_message(
        &self,
        message_id: &str,
        content: &str,
    ) -> Result<String, RealtimeError> {
        let time = rfc3339(now_ms());
        let update = Update::parse(&json!({"$set": {"content": content, "update_time": time}}))?;
        self.store
            .update_by_id(&self.messages, message_id, &update, None)
            .await?;
        Ok(time)
    }

    pub(crate) async fn remove_message(&self, message_id: &str) -> Result<(), RealtimeError> {
        self.store.delete_by_id(&self.messages, message_id, None).await?;
        Ok(())
    }

    pub(crate) async fn list_messages(
        &self,
        channel_id: &str,
        limit: u64,
        forward: bool,
        cursor: Option<&str>,
    ) -> Result<MessagePage, RealtimeError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let after = cursor.map(parse_cursor).transpose()?;
        let mut filter = json!({ "channel_id": channel_id });
        if let Some(seq) = after {
            filter["seq"] = if forward {
                json!({ "$gt": seq })
            } else {
                json!({ "$lt": seq })
            };
        }
        let query = Query::new(Filter::parse(&filter)?);
        let query = if forward {
            query.sort_asc("seq")?
        } else {
            query.sort_desc("seq")?
        }
        .limit(limit + 1);
        let mut docs = self.store.find(&self.messages, &query).await?;
        let more = docs.len() as u64 > limit;
        docs.truncate(limit as usize);
        let next_cursor = more
            .then(|| docs.last().and_then(|d| d["seq"].as_i64()))
            .flatten()
            .map(|s| s.to_string());
        let prev_cursor = after
            .and(docs.first())
            .and_then(|d| d["seq"].as_i64())
            .map(|s| s.to_string());
        Ok(MessagePage {
            messages: docs.iter().map(message_of).collect(),
            next_cursor,
            prev_cursor,
        })
    }

    /// Stores a notification for `user_id`; returns it as sent.
    pub(crate) fn new_notification(&self, n: &crate::NewNotification) -> (i64, Notification) {
        let seq = self.next_seq();
        let notification = Notification {
            id: uuid::Uuid::new_v4().to_string(),
            subject: n.subject.clone(),
            content: n.content.to_string(),
            code: n.code,
            sender_id: n.sender_id.clone(),
            create_time: rfc3339(seq / 1000),
            persistent: n.persistent,
        };
        (seq, notification)
    }

    pub(crate) async fn store_notification(
        &self,
        user_id: &str,
        seq: i64,
        n: &Notification,
    ) -> Result<(), RealtimeError> {
        let doc = json!({
            "_id": n.id, "seq": seq, "user_id": user_id, "subject": n.subject, "content": n.content,
            "code": n.code, "sender_id": n.sender_id, "create_time": n.create_time,
        });
        self.store.insert(&self.notifications, doc).await?;
        Ok(())
    }

    pub(crate) async fn list_notifications(
        &self,
        user_id: &str,
        limit: u64,
        cursor: Option<&str>,
    ) -> Result<NotificationPage, RealtimeError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let after = cursor.map(parse_cursor).transpose()?;
        let mut filter = json!({ "user_id": user_id });
        if let Some(seq) = after {
            filter["seq"] = json!({ "$gt": seq });
        }
        let query = Query::new(Filter::parse(&filter)?).sort_asc("seq")?.limit(limit);
        let docs = self.store.find(&self.notifications, &query).await?;
        let cacheable_cursor = docs
            .last()
            .and_then(|d| d["seq"].as_i64())
            .map(|s| s.to_string())
            .or_else(|| cursor.map(str::to_owned));
        Ok(NotificationPage {
            notifications: docs
                .iter()
                .map(|d| Notification {
                    id: text(d, "_id"),
                    subject: text(d, "subject"),
                    content: text(d, "content"),
                    code: d["code"].as_i64().unwrap_or(0) as i32,
                    sender_id: text(d, "sender_id"),
                    create_time: text(d, "create_time"),
                    persistent: true,
                })
                .collect(),
            cacheable_cursor,
        })
    }

    /// Deletes the user's notifications among `ids`; others' are untouched.
    pub(crate) async fn delete_notifications(
        &self,
        user_id: &str,
        ids: &[String],
    ) -> Result<(), RealtimeError> {
        if ids.is_empty() {
            return Ok(());
        }
        let filter = Filter::parse(&json!({ "user_id": user_id, "_id": { "$in": ids } }))?;
        self.store.delete_many(&self.notifications, &filter).await?;
        Ok(())
    }
}

fn parse_cursor(cursor: &str) -> Result<i64, RealtimeError> {
    cursor
        .parse()
        .map_err(|_| RealtimeError::InvalidArgument("Malformed cursor was used.".into()))
}

fn text(d: &Value, field: &str) -> String {
    d[field].as_str().unwrap_or_default().to_owned()
}

fn message_of(d: &Value) -> ChannelMessage {
    ChannelMessage {
        channel_id: text(d, "channel_id"),
        message_id: text(d, "_id"),
        code: d["code"].as_i64().unwrap_or(0) as i32,
        sender_id: text(d, "sender_id"),
        username: text(d, "username"),
        content: text(d, "content"),
        create_time: text(d, "create_time"),
        update_time: text(d, "update_time"),
        persistent: true,
        room_name: text(d, "room_name"),
        user_id_one: text(d, "user_id_one"),
        user_id_two: text(d, "user_id_two"),
    }
}
