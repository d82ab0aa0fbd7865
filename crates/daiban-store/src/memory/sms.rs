//! The in-memory SMS records, kept beside each county's orders under the
//! store's one mutex. Nothing expires: the process keeps nothing across
//! restarts anyway.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use daiban_domain::{CountyCode, OrderId, PhoneNumber};

use super::MemoryStore;
use crate::sms::{
    DeliveryReport, FAILED_SMS_KEPT, InboundSms, REPLY_CLAIM, ReportOutcome, ReportTarget,
    SendResult, SmsDelivery, SmsId, SmsRecipient, SmsState, SmsStore,
};
use crate::{AnnouncementKind, StoreError, to_millis};

/// A county's SMS records and their queue.
#[derive(Default)]
pub(super) struct SmsBook {
    /// Each order's SMS, in the order they were queued.
    records: HashMap<u64, Vec<SmsDelivery>>,
    /// (due time in ms, id) of queued and leased SMS.
    due: BTreeSet<(i64, String)>,
    /// The due time of each SMS in `due`, by id.
    due_at: HashMap<String, i64>,
    /// Provider message ids, mapped to the SMS they were given for.
    provider_ids: HashMap<String, SmsId>,
    /// The latest failed SMS, newest last.
    failed: VecDeque<SmsId>,
    /// Replies by key: whether handled, and until when (in ms) a reply
    /// being handled blocks a repeat.
    replies: HashMap<String, (bool, i64)>,
    /// When each phone last got a help answer, in ms.
    helped: HashMap<PhoneNumber, i64>,
}

impl SmsBook {
    fn schedule(&mut self, id: &SmsId, at: i64) {
        let key = id.to_string();
        if let Some(old) = self.due_at.insert(key.clone(), at) {
            self.due.remove(&(old, key.clone()));
        }
        self.due.insert((at, key));
    }

    fn unschedule(&mut self, id: &SmsId) {
        let key = id.to_string();
        if let Some(old) = self.due_at.remove(&key) {
            self.due.remove(&(old, key));
        }
    }

    fn record_mut(&mut self, id: &SmsId) -> Option<&mut SmsDelivery> {
        self.records
            .get_mut(&id.order.sequence())?
            .iter_mut()
            .find(|record| record.id == *id)
    }

    fn note_failure(&mut self, id: &SmsId) {
        self.failed.retain(|failed| failed != id);
        self.failed.push_back(id.clone());
        if self.failed.len() > FAILED_SMS_KEPT {
            self.failed.pop_front();
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl SmsStore for MemoryStore {
    async fn queue_sms(
        &self,
        announcement: Option<AnnouncementKind>,
        order: &OrderId,
        offer: &str,
        recipients: &[SmsRecipient],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let now = to_millis(now);
        self.with_county(order.county(), |county| {
            let mut queued = 0;
            for recipient in recipients {
                let id = SmsId::new(order.clone(), offer, recipient.clone());
                let records = county.sms.records.entry(order.sequence()).or_default();
                if records.iter().any(|record| record.id == id) {
                    continue;
                }
                records.push(SmsDelivery {
                    id: id.clone(),
                    state: SmsState::Queued,
                    attempts: 0,
                    provider_id: None,
                    error: String::new(),
                    queue_time: now,
                    send_time: None,
                    report_time: None,
                });
                county.sms.schedule(&id, now.timestamp_millis());
                queued += 1;
            }
            if let Some(kind) = announcement {
                county.outbox.remove(&(kind, order.sequence()));
            }
            Ok(queued)
        })
    }

    async fn take_sms(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<SmsDelivery>, StoreError> {
        let now = to_millis(now).timestamp_millis();
        let lease_until = now.saturating_add(millis(lease));
        self.with_county(county, |county| {
            let book = &mut county.sms;
            let due: Vec<String> = book
                .due
                .iter()
                .take_while(|(at, _)| *at <= now)
                .map(|(_, id)| id.clone())
                .collect();
            let mut taken = Vec::new();
            for key in due {
                if taken.len() == limit {
                    break;
                }
                let Some(id) = SmsId::parse(&key) else {
                    continue;
                };
                let Some(record) = book.record_mut(&id) else {
                    book.unschedule(&id);
                    continue;
                };
                match record.state {
                    SmsState::Queued => {
                        record.state = SmsState::Sending;
                        record.attempts += 1;
                        taken.push(record.clone());
                        book.schedule(&id, lease_until);
                    }
                    SmsState::Sending => {
                        record.state = SmsState::Unknown;
                        record.error = "the sender stopped during the send".into();
                        book.unschedule(&id);
                    }
                    _ => book.unschedule(&id),
                }
            }
            Ok(taken)
        })
    }

    async fn finish_sms(
        &self,
        id: &SmsId,
        result: SendResult,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = to_millis(now);
        self.with_county(id.order.county(), |county| {
            let book = &mut county.sms;
            let Some(record) = book.record_mut(id) else {
                return Ok(());
            };
            if matches!(record.state, SmsState::Delivered | SmsState::Failed)
                && record.report_time.is_some()
            {
                book.unschedule(id);
                return Ok(());
            }
            match result {
                SendResult::Sent { provider_id } => {
                    record.state = SmsState::Sent;
                    record.send_time = Some(now);
                    record.error.clear();
                    if let Some(provider_id) = &provider_id {
                        book.provider_ids.insert(provider_id.clone(), id.clone());
                    }
                    let record = book.record_mut(id).expect("record found above");
                    record.provider_id = provider_id;
                    book.unschedule(id);
                }
                SendResult::Retry { at, error } => {
                    record.state = SmsState::Queued;
                    record.error = error;
                    book.schedule(id, to_millis(at).timestamp_millis());
                }
                SendResult::Failed { error } => {
                    record.state = SmsState::Failed;
                    record.error = error;
                    book.unschedule(id);
                    book.note_failure(id);
                }
                SendResult::Uncertain { error } => {
                    record.state = SmsState::Unknown;
                    record.error = error;
                    book.unschedule(id);
                }
                SendResult::Withdrawn => {
                    record.state = SmsState::Withdrawn;
                    book.unschedule(id);
                }
                SendResult::Defer { at } => {
                    record.state = SmsState::Queued;
                    record.attempts = record.attempts.saturating_sub(1);
                    book.schedule(id, to_millis(at).timestamp_millis());
                }
            }
            Ok(())
        })
    }

    async fn report_sms(
        &self,
        county: &CountyCode,
        report: &DeliveryReport,
        now: DateTime<Utc>,
    ) -> Result<ReportOutcome, StoreError> {
        let now = to_millis(now);
        let code = county.clone();
        self.with_county(county, |county| {
            let book = &mut county.sms;
            let id = match &report.target {
                ReportTarget::Sms(id) if *id.order.county() == code => Some(id.clone()),
                ReportTarget::Sms(_) => None,
                ReportTarget::Provider(provider_id) => book.provider_ids.get(provider_id).cloned(),
            };
            let Some(id) = id else {
                return Ok(ReportOutcome::Unmatched);
            };
            let Some(record) = book.record_mut(&id) else {
                return Ok(ReportOutcome::Unmatched);
            };
            let repeated = record.state == SmsState::Delivered
                || (!report.delivered
                    && record.state == SmsState::Failed
                    && record.error == report.error);
            if repeated {
                return Ok(ReportOutcome::Duplicate(id));
            }
            record.report_time = Some(now);
            if report.delivered {
                record.state = SmsState::Delivered;
                record.error.clear();
                book.unschedule(&id);
            } else {
                record.state = SmsState::Failed;
                record.error = report.error.clone();
                book.unschedule(&id);
                book.note_failure(&id);
            }
            Ok(ReportOutcome::Recorded(id))
        })
    }

    async fn order_sms(&self, order: &OrderId) -> Result<Vec<SmsDelivery>, StoreError> {
        Ok(self.peek_county(order.county(), |county| {
            county
                .sms
                .records
                .get(&order.sequence())
                .cloned()
                .unwrap_or_default()
        }))
    }

    async fn failed_sms(
        &self,
        county: &CountyCode,
        limit: usize,
    ) -> Result<Vec<SmsDelivery>, StoreError> {
        Ok(self.peek_county(county, |county| {
            let book = &mut county.sms;
            let ids: Vec<SmsId> = book.failed.iter().rev().take(limit).cloned().collect();
            ids.iter()
                .filter_map(|id| book.record_mut(id).map(|record| record.clone()))
                .collect()
        }))
    }

    async fn next_sms_due(&self, county: &CountyCode) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.peek_county(county, |county| {
            county
                .sms
                .due
                .first()
                .and_then(|(at, _)| DateTime::from_timestamp_millis(*at))
        }))
    }

    async fn start_reply(
        &self,
        county: &CountyCode,
        reply: &InboundSms,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = now.timestamp_millis();
        Ok(self.peek_county(county, |county| {
            let seen = county.sms.replies.get(&reply.key);
            if seen.is_some_and(|&(handled, until)| handled || until > now) {
                return false;
            }
            let until = now.saturating_add(millis(REPLY_CLAIM));
            county.sms.replies.insert(reply.key.clone(), (false, until));
            true
        }))
    }

    async fn finish_reply(
        &self,
        county: &CountyCode,
        reply: &InboundSms,
        _outcome: &str,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.peek_county(county, |county| {
            county
                .sms
                .replies
                .insert(reply.key.clone(), (true, i64::MAX));
        });
        Ok(())
    }

    async fn allow_help_answer(
        &self,
        county: &CountyCode,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        interval: Duration,
    ) -> Result<bool, StoreError> {
        let now = now.timestamp_millis();
        Ok(self.peek_county(county, |county| {
            let last = county.sms.helped.get(phone).copied();
            let allowed = last.is_none_or(|last| now.saturating_sub(last) >= millis(interval));
            if allowed {
                county.sms.helped.insert(phone.clone(), now);
            }
            allowed
        }))
    }
}
