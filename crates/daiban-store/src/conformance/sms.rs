//! Cases of the SMS records: queueing, sending, delivery reports and
//! replies.

use std::time::Duration;

use super::fixture::{Fixture, agent, at, create, join_all};
use crate::sms::{
    DeliveryReport, InboundSms, ReportOutcome, ReportTarget, SendResult, SmsId, SmsRecipient,
    SmsState,
};
use crate::{AnnouncementKind, Store};

const LEASE: Duration = Duration::from_secs(30);

fn recipients(ids: &[&str]) -> Vec<SmsRecipient> {
    ids.iter()
        .map(|id| SmsRecipient::Agent(agent(id)))
        .collect()
}

/// Returns the state of each SMS of the order, by recipient.
async fn states(store: &dyn Store, order: &daiban_domain::OrderId) -> Vec<(String, SmsState)> {
    store
        .order_sms(order)
        .await
        .expect("order SMS can be read")
        .into_iter()
        .map(|sms| (sms.id.recipient.to_string(), sms.state))
        .collect()
}

pub async fn sms_queued_once_per_offer(store: &dyn Store) {
    let fixture = Fixture::new();
    let order = create(store, fixture.order()).await;
    let audience = recipients(&["A1", "A2"]);
    let queued = store
        .queue_sms(
            Some(AnnouncementKind::Submitted),
            &order.id,
            "submitted",
            &audience,
            at(0),
        )
        .await
        .expect("SMS can be queued");
    assert_eq!(queued, 2, "one SMS per recipient");
    let announcements = store
        .take_announcements(&fixture.county, at(0), Duration::from_secs(2), 10)
        .await
        .expect("announcements can be taken");
    assert!(
        announcements.is_empty(),
        "queueing deletes the announcement, got {announcements:?}"
    );

    // A second dispatcher that took the same announcement queues nothing.
    let again = store
        .queue_sms(
            Some(AnnouncementKind::Submitted),
            &order.id,
            "submitted",
            &recipients(&["A1", "A2", "A3"]),
            at(0),
        )
        .await
        .expect("SMS can be queued");
    assert_eq!(again, 1, "only the new recipient is queued");

    // Another offer of the same order is a new SMS.
    let widened = store
        .queue_sms(None, &order.id, "widened", &audience, at(10))
        .await
        .expect("SMS can be queued");
    assert_eq!(widened, 2, "a later offer queues again");
    let all = store.order_sms(&order.id).await.expect("readable");
    assert_eq!(all.len(), 5, "three submitted and two widened SMS");
    assert!(
        all.iter()
            .all(|sms| sms.state == SmsState::Queued && sms.attempts == 0),
        "new SMS are queued and untried: {all:?}"
    );
    assert_eq!(all[0].queue_time, at(0), "queue time is kept");
}

pub async fn sms_taken_once_and_finished(store: &dyn Store) {
    let fixture = Fixture::new();
    let order = create(store, fixture.order()).await;
    store
        .queue_sms(
            None,
            &order.id,
            "submitted",
            &recipients(&["A1", "A2"]),
            at(0),
        )
        .await
        .expect("SMS can be queued");
    assert_eq!(
        store.next_sms_due(&fixture.county).await.expect("readable"),
        Some(at(0)),
        "the queued SMS are due at once"
    );

    let takers = (0..4)
        .map(|_| store.take_sms(&fixture.county, at(0), LEASE, 10))
        .collect();
    let taken: Vec<_> = join_all(takers)
        .await
        .into_iter()
        .flat_map(|result| result.expect("SMS can be taken"))
        .collect();
    assert_eq!(taken.len(), 2, "each SMS is taken by one caller");
    assert!(
        taken
            .iter()
            .all(|sms| sms.state == SmsState::Sending && sms.attempts == 1),
        "taken SMS are sending, first try: {taken:?}"
    );

    let first = taken[0].id.clone();
    let second = taken[1].id.clone();
    store
        .finish_sms(
            &first,
            SendResult::Sent {
                provider_id: Some("biz-1".into()),
            },
            at(0),
        )
        .await
        .expect("finish succeeds");
    store
        .finish_sms(
            &second,
            SendResult::Retry {
                at: at(1),
                error: "HTTP 503".into(),
            },
            at(0),
        )
        .await
        .expect("finish succeeds");
    assert_eq!(
        store
            .take_sms(&fixture.county, at(0), LEASE, 10)
            .await
            .expect("SMS can be taken"),
        [],
        "a retry waits for its time"
    );
    let retried = store
        .take_sms(&fixture.county, at(1), LEASE, 10)
        .await
        .expect("SMS can be taken");
    assert_eq!(retried.len(), 1, "the retry is due");
    assert_eq!(retried[0].id, second);
    assert_eq!(retried[0].attempts, 2, "the second try is counted");
    assert_eq!(retried[0].error, "HTTP 503", "the last error is kept");

    store
        .finish_sms(
            &second,
            SendResult::Failed {
                error: "isv.MOBILE_NUMBER_ILLEGAL".into(),
            },
            at(1),
        )
        .await
        .expect("finish succeeds");
    let all = store.order_sms(&order.id).await.expect("readable");
    let sent = all.iter().find(|sms| sms.id == first).expect("first SMS");
    assert_eq!(sent.state, SmsState::Sent);
    assert_eq!(sent.provider_id.as_deref(), Some("biz-1"));
    assert_eq!(sent.send_time, Some(at(0)));
    let failed = store
        .failed_sms(&fixture.county, 10)
        .await
        .expect("readable");
    assert_eq!(failed.len(), 1, "one failure is listed");
    assert_eq!(failed[0].id, second);
    assert_eq!(failed[0].error, "isv.MOBILE_NUMBER_ILLEGAL");
    assert_eq!(
        store.next_sms_due(&fixture.county).await.expect("readable"),
        None,
        "nothing is left in the queue"
    );
}

pub async fn sms_lease_expiry_is_not_resent(store: &dyn Store) {
    let fixture = Fixture::new();
    let order = create(store, fixture.order()).await;
    store
        .queue_sms(None, &order.id, "submitted", &recipients(&["A1"]), at(0))
        .await
        .expect("SMS can be queued");
    let taken = store
        .take_sms(&fixture.county, at(0), LEASE, 10)
        .await
        .expect("SMS can be taken");
    assert_eq!(taken.len(), 1);

    // The sender died: after the lease the SMS is unknown, never resent.
    let later = at(0) + chrono::Duration::seconds(31);
    let retaken = store
        .take_sms(&fixture.county, later, LEASE, 10)
        .await
        .expect("SMS can be taken");
    assert_eq!(retaken, [], "an SMS whose sender died is not sent again");
    assert_eq!(
        states(store, &order.id).await,
        [("A1".to_owned(), SmsState::Unknown)]
    );

    // Its delivery report still settles it.
    let outcome = store
        .report_sms(
            &fixture.county,
            &DeliveryReport {
                target: ReportTarget::Sms(taken[0].id.clone()),
                delivered: true,
                error: String::new(),
                time: later,
            },
            later,
        )
        .await
        .expect("report succeeds");
    assert_eq!(outcome, ReportOutcome::Recorded(taken[0].id.clone()));
    assert_eq!(
        states(store, &order.id).await,
        [("A1".to_owned(), SmsState::Delivered)]
    );
}

pub async fn sms_reports_match_once(store: &dyn Store) {
    let fixture = Fixture::new();
    let order = create(store, fixture.order()).await;
    store
        .queue_sms(
            None,
            &order.id,
            "submitted",
            &recipients(&["A1", "A2"]),
            at(0),
        )
        .await
        .expect("SMS can be queued");
    let taken = store
        .take_sms(&fixture.county, at(0), LEASE, 10)
        .await
        .expect("SMS can be taken");
    for (sms, provider_id) in taken.iter().zip(["serial-1", "serial-2"]) {
        store
            .finish_sms(
                &sms.id,
                SendResult::Sent {
                    provider_id: Some(provider_id.into()),
                },
                at(0),
            )
            .await
            .expect("finish succeeds");
    }

    let delivered = DeliveryReport {
        target: ReportTarget::Provider("serial-1".into()),
        delivered: true,
        error: String::new(),
        time: at(1),
    };
    let first = store
        .report_sms(&fixture.county, &delivered, at(1))
        .await
        .expect("report succeeds");
    assert_eq!(first, ReportOutcome::Recorded(taken[0].id.clone()));
    let second = store
        .report_sms(&fixture.county, &delivered, at(2))
        .await
        .expect("report succeeds");
    assert_eq!(
        second,
        ReportOutcome::Duplicate(taken[0].id.clone()),
        "the same report twice changes nothing"
    );

    let undelivered = DeliveryReport {
        target: ReportTarget::Sms(taken[1].id.clone()),
        delivered: false,
        error: "MK:0001 用户关机".into(),
        time: at(1),
    };
    assert_eq!(
        store
            .report_sms(&fixture.county, &undelivered, at(1))
            .await
            .expect("report succeeds"),
        ReportOutcome::Recorded(taken[1].id.clone())
    );
    assert_eq!(
        store
            .report_sms(&fixture.county, &undelivered, at(2))
            .await
            .expect("report succeeds"),
        ReportOutcome::Duplicate(taken[1].id.clone())
    );
    let all = store.order_sms(&order.id).await.expect("readable");
    let failed = all.iter().find(|sms| sms.id == taken[1].id).expect("found");
    assert_eq!(failed.state, SmsState::Failed);
    assert_eq!(
        failed.error, "MK:0001 用户关机",
        "the carrier's error is kept"
    );
    assert_eq!(failed.report_time, Some(at(1)), "the first report's time");

    // A send result that comes after the report does not undo it.
    store
        .finish_sms(
            &taken[0].id,
            SendResult::Sent {
                provider_id: Some("serial-1".into()),
            },
            at(3),
        )
        .await
        .expect("finish succeeds");
    assert_eq!(
        states(store, &order.id).await,
        [
            ("A1".to_owned(), SmsState::Delivered),
            ("A2".to_owned(), SmsState::Failed)
        ]
    );

    for target in [
        ReportTarget::Provider("no-such-serial".into()),
        ReportTarget::Sms(SmsId::new(
            order.id.clone(),
            "widened",
            SmsRecipient::DutyDesk,
        )),
    ] {
        let unmatched = DeliveryReport {
            target,
            delivered: true,
            error: String::new(),
            time: at(1),
        };
        assert_eq!(
            store
                .report_sms(&fixture.county, &unmatched, at(1))
                .await
                .expect("report succeeds"),
            ReportOutcome::Unmatched,
            "{unmatched:?}"
        );
    }
}

pub async fn sms_withdrawn_and_uncertain(store: &dyn Store) {
    let fixture = Fixture::new();
    let order = create(store, fixture.order()).await;
    store
        .queue_sms(
            None,
            &order.id,
            "submitted",
            &recipients(&["A1", "A2"]),
            at(0),
        )
        .await
        .expect("SMS can be queued");
    let taken = store
        .take_sms(&fixture.county, at(0), LEASE, 10)
        .await
        .expect("SMS can be taken");
    store
        .finish_sms(&taken[0].id, SendResult::Withdrawn, at(0))
        .await
        .expect("finish succeeds");
    store
        .finish_sms(
            &taken[1].id,
            SendResult::Uncertain {
                error: "timed out".into(),
            },
            at(0),
        )
        .await
        .expect("finish succeeds");
    assert_eq!(
        states(store, &order.id).await,
        [
            ("A1".to_owned(), SmsState::Withdrawn),
            ("A2".to_owned(), SmsState::Unknown)
        ]
    );
    assert_eq!(
        store
            .take_sms(&fixture.county, at(60), LEASE, 10)
            .await
            .expect("SMS can be taken"),
        [],
        "neither is sent again"
    );
}

pub async fn sms_deferred_keeps_attempts(store: &dyn Store) {
    let fixture = Fixture::new();
    let order = create(store, fixture.order()).await;
    store
        .queue_sms(None, &order.id, "submitted", &recipients(&["A1"]), at(0))
        .await
        .expect("SMS can be queued");
    let taken = store
        .take_sms(&fixture.county, at(0), LEASE, 10)
        .await
        .expect("SMS can be taken");
    store
        .finish_sms(&taken[0].id, SendResult::Defer { at: at(2) }, at(0))
        .await
        .expect("finish succeeds");
    assert_eq!(
        store.next_sms_due(&fixture.county).await.expect("readable"),
        Some(at(2)),
        "a deferred SMS is due at its new time"
    );
    let again = store
        .take_sms(&fixture.county, at(2), LEASE, 10)
        .await
        .expect("SMS can be taken");
    assert_eq!(again.len(), 1, "the deferred SMS is taken again");
    assert_eq!(again[0].attempts, 1, "a deferral is not counted as a try");
}

pub async fn replies_handled_once(store: &dyn Store) {
    let fixture = Fixture::new();
    let phone = daiban_domain::PhoneNumber::parse("13812341234").expect("valid phone");
    let reply = InboundSms {
        key: "aliyun:42".into(),
        phone: phone.clone(),
        text: "123456".into(),
        time: at(0),
        agent: Some(agent("A1")),
    };
    let results = join_all(
        (0..3)
            .map(|_| store.start_reply(&fixture.county, &reply, at(0)))
            .collect(),
    )
    .await;
    let fresh = results
        .into_iter()
        .filter(|result| *result.as_ref().expect("reply can be started"))
        .count();
    assert_eq!(fresh, 1, "a reply pushed several times is handled once");

    // A handler that died leaves the reply to a later push.
    let later = at(0) + chrono::Duration::seconds(61);
    assert!(
        store
            .start_reply(&fixture.county, &reply, later)
            .await
            .expect("reply can be started"),
        "an unfinished reply may be handled again after its claim"
    );
    store
        .finish_reply(&fixture.county, &reply, "claimed", later)
        .await
        .expect("reply can be finished");
    assert!(
        !store
            .start_reply(&fixture.county, &reply, at(60))
            .await
            .expect("reply can be started"),
        "a finished reply is a repeat"
    );

    let interval = Duration::from_secs(3600);
    assert!(
        store
            .allow_help_answer(&fixture.county, &phone, at(0), interval)
            .await
            .expect("readable"),
        "the first help answer is allowed"
    );
    assert!(
        !store
            .allow_help_answer(&fixture.county, &phone, at(1), interval)
            .await
            .expect("readable"),
        "a second help answer within the interval is not"
    );
}
