//! SMS records that a build before the offer codes queued under the
//! offers' names, read and changed by this build's `RedisStore`, on a
//! private `redis-server`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use daiban_domain::{CountyCode, OrderId};
use daiban_store::RedisStore;
use daiban_store::sms::{
    DeliveryReport, ReportOutcome, ReportTarget, SendResult, SmsId, SmsState, SmsStore,
};
use daiban_tests::redis::RedisServer;

const PREFIX: &str = "daiban:{431127}:";

fn county() -> CountyCode {
    CountyCode::parse("431127").expect("valid county code")
}

fn order() -> OrderId {
    OrderId::parse("431127-00000042").expect("valid order id")
}

/// Returns the id of SMS `field`, `<offer name>.<recipient>`, of
/// `order()`.
fn sms(field: &str) -> SmsId {
    SmsId::parse(&format!("{}.{field}", order())).expect("valid SMS id")
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_764_000_000_000 + seconds * 1000).expect("valid time")
}

fn report(target: ReportTarget, delivered: bool, error: &str) -> DeliveryReport {
    DeliveryReport {
        target,
        delivered,
        error: error.to_owned(),
        time: at(5),
    }
}

/// Runs `command` on `server`.
async fn query<T: redis::FromRedisValue>(server: &RedisServer, command: &redis::Cmd) -> T {
    let client = redis::Client::open(server.url()).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test server");
    command
        .query_async(&mut connection)
        .await
        .unwrap_or_else(|err| panic!("{command:?}: {err}"))
}

#[tokio::test]
async fn sms_queued_with_offer_names_still_work() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .expect("connect to the test server");
    let hash = format!("{PREFIX}sms:42");
    let due_key = format!("{PREFIX}smsdue");
    let named = ["widened.A0001", "released-1.A0002", "escalated.duty_desk"];
    for field in named {
        let record = format!("queued|0|{}||||", at(0).timestamp_millis());
        let member = format!("42.{field}");
        let () = query(
            &server,
            redis::cmd("HSET").arg(&hash).arg(field).arg(record),
        )
        .await;
        let () = query(
            &server,
            redis::cmd("ZADD")
                .arg(&due_key)
                .arg(at(0).timestamp_millis())
                .arg(member),
        )
        .await;
    }
    let (widened, released, escalated) = (sms(named[0]), sms(named[1]), sms(named[2]));
    let coded = sms("widened.A0003");

    // Queueing the same offer again skips the recipient queued with the
    // offer's name and queues the new one with the offer's code.
    let recipients = [&widened, &coded].map(|id| id.recipient.clone());
    let queued = store
        .queue_sms(None, &order(), "widened", &recipients, at(1))
        .await
        .expect("queue_sms");
    assert_eq!(queued, 1, "SMS queued");

    let leased = store
        .take_sms(&county(), at(2), Duration::from_secs(60), 10)
        .await
        .expect("take_sms");
    let mut ids: Vec<String> = leased.iter().map(|sms| sms.id.to_string()).collect();
    ids.sort();
    let mut expected = [&widened, &released, &escalated, &coded].map(ToString::to_string);
    expected.sort();
    assert_eq!(ids, expected, "SMS leased");
    assert!(
        leased.iter().all(|sms| sms.state == SmsState::Sending),
        "leased SMS are sending: {leased:?}"
    );

    let finishes = [
        (
            &widened,
            SendResult::Sent {
                provider_id: Some("BIZ-1".to_owned()),
            },
        ),
        (
            &released,
            SendResult::Retry {
                at: at(3),
                error: "busy".to_owned(),
            },
        ),
        (&escalated, SendResult::Sent { provider_id: None }),
        (
            &coded,
            SendResult::Sent {
                provider_id: Some("BIZ-2".to_owned()),
            },
        ),
    ];
    for (id, result) in finishes {
        store
            .finish_sms(id, result, at(2))
            .await
            .expect("finish_sms");
    }
    // Each SMS keeps the field it was queued with.
    let stored_fields = [
        "W.A0003",
        "escalated.duty_desk",
        "released-1.A0002",
        "widened.A0001",
    ];
    let mut fields: Vec<String> = query(&server, redis::cmd("HKEYS").arg(&hash)).await;
    fields.sort();
    assert_eq!(fields, stored_fields, "fields after finish_sms");
    let due: Vec<String> = query(&server, redis::cmd("ZRANGE").arg(&due_key).arg(0).arg(-1)).await;
    assert_eq!(due, ["42.released-1.A0002"], "SMS due after a retry");
    let provider_member: Option<String> = query(
        &server,
        redis::cmd("GET").arg(format!("{PREFIX}smsid:BIZ-1")),
    )
    .await;
    assert_eq!(
        provider_member.as_deref(),
        Some("42.widened.A0001"),
        "member of provider id BIZ-1"
    );

    let retaken = store
        .take_sms(&county(), at(3), Duration::from_secs(60), 10)
        .await
        .expect("take_sms after the retry");
    let retaken: Vec<(SmsId, u32)> = retaken
        .into_iter()
        .map(|sms| (sms.id, sms.attempts))
        .collect();
    assert_eq!(
        retaken,
        [(released.clone(), 2)],
        "SMS leased after the retry"
    );
    let failed = SendResult::Failed {
        error: "rejected".to_owned(),
    };
    store
        .finish_sms(&released, failed, at(4))
        .await
        .expect("finish_sms of the failure");
    let failures = store.failed_sms(&county(), 10).await.expect("failed_sms");
    let failures: Vec<(SmsId, SmsState)> = failures
        .into_iter()
        .map(|sms| (sms.id, sms.state))
        .collect();
    assert_eq!(
        failures,
        [(released.clone(), SmsState::Failed)],
        "failed SMS"
    );

    let reports = [
        (
            ReportTarget::Provider("BIZ-1".to_owned()),
            true,
            "",
            ReportOutcome::Recorded(widened.clone()),
        ),
        (
            ReportTarget::Sms(escalated.clone()),
            true,
            "",
            ReportOutcome::Recorded(escalated.clone()),
        ),
        (
            ReportTarget::Sms(escalated.clone()),
            true,
            "",
            ReportOutcome::Duplicate(escalated.clone()),
        ),
        (
            ReportTarget::Provider("BIZ-2".to_owned()),
            true,
            "",
            ReportOutcome::Recorded(coded.clone()),
        ),
        (
            ReportTarget::Sms(coded.clone()),
            true,
            "",
            ReportOutcome::Duplicate(coded.clone()),
        ),
        (
            ReportTarget::Sms(released.clone()),
            false,
            "UNDELIV",
            ReportOutcome::Recorded(released.clone()),
        ),
    ];
    for (target, delivered, error, expected) in reports {
        let outcome = store
            .report_sms(&county(), &report(target.clone(), delivered, error), at(5))
            .await
            .expect("report_sms");
        assert_eq!(outcome, expected, "report for {target:?}");
    }

    let records = store.order_sms(&order()).await.expect("order_sms");
    let states: Vec<(SmsId, SmsState)> =
        records.into_iter().map(|sms| (sms.id, sms.state)).collect();
    assert_eq!(
        states,
        [
            (escalated, SmsState::Delivered),
            (released, SmsState::Failed),
            (widened, SmsState::Delivered),
            (coded, SmsState::Delivered),
        ],
        "order_sms"
    );
    let mut fields: Vec<String> = query(&server, redis::cmd("HKEYS").arg(&hash)).await;
    fields.sort();
    assert_eq!(fields, stored_fields, "fields after the reports");
    let next = store.next_sms_due(&county()).await.expect("next_sms_due");
    assert_eq!(next, None, "next SMS due");
}

#[tokio::test]
async fn thousands_of_recipients_skip_named_fields() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .expect("connect to the test server");
    let hash = format!("{PREFIX}sms:42");
    // The script looks the named fields up a thousand at a time, so these
    // fall in the first and the third look-up.
    let named = ["widened.A0007", "widened.A2400"];
    for field in named {
        let record = format!("queued|0|{}||||", at(0).timestamp_millis());
        let () = query(
            &server,
            redis::cmd("HSET").arg(&hash).arg(field).arg(record),
        )
        .await;
    }

    let recipients: Vec<_> = (1..=2500)
        .map(|n| sms(&format!("widened.A{n:04}")).recipient)
        .collect();
    let queued = store
        .queue_sms(None, &order(), "widened", &recipients, at(1))
        .await
        .expect("queue_sms");
    assert_eq!(queued, 2498, "SMS queued");

    for field in ["W.A0007", "W.A2400"] {
        let exists: bool = query(&server, redis::cmd("HEXISTS").arg(&hash).arg(field)).await;
        assert!(!exists, "{field} queued although its named field exists");
    }
    let fields: usize = query(&server, redis::cmd("HLEN").arg(&hash)).await;
    assert_eq!(fields, 2500, "fields of the hash");
    let due: usize = query(&server, redis::cmd("ZCARD").arg(format!("{PREFIX}smsdue"))).await;
    assert_eq!(due, 2498, "SMS due");
}
