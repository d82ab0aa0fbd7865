//! The send queue: retries, permanent failures, spacing per phone and a
//! full queue, around a scripted notifier.

// The scripted notifier runs only inside tests, where a panic is the
// report.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use daiban_dispatch::{Message, Notifier, NotifyError, Recipient, Sms, Template};
use daiban_domain::{AgentId, CountyCode, OrderId, PhoneNumber};
use daiban_sms::{QueuePolicy, SendQueue};
use tokio::time::Instant;

/// Outcome of one call to the scripted notifier.
#[derive(Clone, Copy)]
enum Outcome {
    Sent,
    Transient,
    Permanent,
}

#[derive(Default)]
struct Scripted {
    script: Mutex<VecDeque<Outcome>>,
    /// The phone and the time of every call.
    calls: Mutex<Vec<(String, Instant)>>,
    delay: Duration,
}

#[async_trait]
impl Notifier for Scripted {
    async fn send(&self, sms: Sms) -> Result<(), NotifyError> {
        tokio::time::sleep(self.delay).await;
        let Recipient::Agent { phone, .. } = &sms.recipient else {
            panic!("expected an agent");
        };
        self.calls
            .lock()
            .unwrap()
            .push((phone.as_str().to_owned(), Instant::now()));
        let outcome = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Outcome::Sent);
        let recipient = sms.recipient_label();
        match outcome {
            Outcome::Sent => Ok(()),
            Outcome::Transient => Err(NotifyError::Transient {
                recipient,
                reason: "scripted".into(),
            }),
            Outcome::Permanent => Err(NotifyError::Permanent {
                recipient,
                reason: "scripted".into(),
            }),
        }
    }
}

fn sms(phone: &str) -> Sms {
    Sms {
        recipient: Recipient::Agent {
            id: AgentId::parse("A0001").unwrap(),
            phone: PhoneNumber::parse(phone).unwrap(),
        },
        order: OrderId::new(CountyCode::parse("431127").unwrap(), 1),
        message: Message {
            template: Template::Escalation,
            params: vec![
                ("number", "20261123-0001".into()),
                ("matter", "我要开餐馆".into()),
                ("grid", "塔峰镇友谊村".into()),
            ],
        },
    }
}

fn policy() -> QueuePolicy {
    QueuePolicy {
        capacity: 8,
        concurrency: 4,
        max_attempts: 3,
        first_backoff: Duration::from_millis(20),
        phone_interval: Duration::from_millis(1),
    }
}

async fn wait_for_calls(scripted: &Scripted, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while scripted.calls.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "expected {count} calls");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn transient_failure_retried_with_backoff() {
    let scripted = Arc::new(Scripted::default());
    scripted
        .script
        .lock()
        .unwrap()
        .extend([Outcome::Transient, Outcome::Transient]);
    let queue = SendQueue::start(scripted.clone(), policy());

    queue.send(sms("13812341234")).await.unwrap();
    wait_for_calls(&scripted, 3).await;

    let calls = scripted.calls.lock().unwrap().clone();
    assert!(calls[1].1 - calls[0].1 >= Duration::from_millis(20));
    assert!(calls[2].1 - calls[1].1 >= Duration::from_millis(40));
}

#[tokio::test]
async fn transient_failure_stops_at_max_attempts() {
    let scripted = Arc::new(Scripted::default());
    scripted
        .script
        .lock()
        .unwrap()
        .extend([Outcome::Transient; 5]);
    let queue = SendQueue::start(scripted.clone(), policy());

    queue.send(sms("13812341234")).await.unwrap();
    wait_for_calls(&scripted, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(scripted.calls.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn permanent_failure_not_retried() {
    let scripted = Arc::new(Scripted::default());
    scripted
        .script
        .lock()
        .unwrap()
        .push_back(Outcome::Permanent);
    let queue = SendQueue::start(scripted.clone(), policy());

    queue.send(sms("13812341234")).await.unwrap();
    wait_for_calls(&scripted, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert_eq!(scripted.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn same_phone_spaced_other_phone_not() {
    let scripted = Arc::new(Scripted::default());
    let mut policy = policy();
    policy.phone_interval = Duration::from_millis(150);
    let queue = SendQueue::start(scripted.clone(), policy);

    queue.send(sms("13812341234")).await.unwrap();
    queue.send(sms("13812341234")).await.unwrap();
    queue.send(sms("13912345678")).await.unwrap();
    wait_for_calls(&scripted, 3).await;

    let calls = scripted.calls.lock().unwrap().clone();
    let times = |phone: &str| -> Vec<Instant> {
        calls
            .iter()
            .filter(|(p, _)| p == phone)
            .map(|(_, at)| *at)
            .collect()
    };
    let same = times("13812341234");
    assert!(same[1] - same[0] >= Duration::from_millis(150));
    let other = times("13912345678");
    assert!(other[0] < same[1], "the other phone waited for the first");
}

#[tokio::test]
async fn send_returns_before_slow_provider() {
    let scripted = Arc::new(Scripted {
        delay: Duration::from_secs(2),
        ..Scripted::default()
    });
    let queue = SendQueue::start(scripted.clone(), policy());

    let started = Instant::now();
    queue.send(sms("13812341234")).await.unwrap();

    assert!(started.elapsed() < Duration::from_millis(100));
}

#[tokio::test]
async fn full_queue_fails_at_once() {
    let scripted = Arc::new(Scripted {
        delay: Duration::from_secs(5),
        ..Scripted::default()
    });
    let mut policy = policy();
    policy.capacity = 1;
    policy.concurrency = 1;
    let queue = SendQueue::start(scripted.clone(), policy);

    let mut results = Vec::new();
    for _ in 0..4 {
        results.push(queue.send(sms("13812341234")).await);
    }

    let full = results.iter().filter(|r| r.is_err()).count();
    assert!(full >= 1, "no send was turned away");
    let err = results.into_iter().find_map(Result::err).unwrap();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("queue full"), "{err}");
    assert!(!err.to_string().contains("13812341234"), "{err}");
}
