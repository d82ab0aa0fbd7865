//! Every error of the contract, through gRPC: its code, its `ErrorInfo`
//! reason, the fields `BadRequest` names, and that a rejected call changes
//! nothing.

use daiban_proto::v1 as pb;
use daiban_tests::service::{APP_KEY, EXPORT_KEY, SMS_KEY};
use daiban_tests::{
    Config, TestApp, agents_outside, bad_fields, grid_agents, precise_request, reason, spawn_app,
    wait_for_state, with_bearer,
};
use tonic::Code;

const GRID: &str = "431127100008";

async fn submit(app: &TestApp, request_id: &str) -> pb::WorkOrder {
    app.work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M003", request_id),
            APP_KEY,
        ))
        .await
        .expect("valid submit succeeds")
        .into_inner()
}

async fn get(app: &TestApp, order_id: &str) -> pb::WorkOrder {
    app.work_orders()
        .get_work_order(with_bearer(
            pb::GetWorkOrderRequest {
                order_id: order_id.into(),
            },
            APP_KEY,
        ))
        .await
        .expect("get succeeds")
        .into_inner()
}

async fn submit_err(app: &TestApp, request: pb::SubmitRequestRequest) -> tonic::Status {
    app.work_orders()
        .submit_request(with_bearer(request, APP_KEY))
        .await
        .expect_err("invalid submit fails")
}

#[tokio::test]
async fn invalid_submit_fields_are_named() {
    let app = spawn_app(Config::default()).await;
    let valid = || precise_request(GRID, "M003", "");
    let cases: Vec<(&str, pb::SubmitRequestRequest, &str)> = vec![
        (
            "empty text",
            pb::SubmitRequestRequest {
                request_text: "  ".into(),
                ..valid()
            },
            "request_text",
        ),
        (
            "oversized text",
            pb::SubmitRequestRequest {
                request_text: "办".repeat(501),
                ..valid()
            },
            "request_text",
        ),
        (
            "unknown matter",
            pb::SubmitRequestRequest {
                matter_code: "M999".into(),
                ..valid()
            },
            "matter_code",
        ),
        (
            "malformed matter",
            pb::SubmitRequestRequest {
                matter_code: "M 1".into(),
                ..valid()
            },
            "matter_code",
        ),
        (
            "no applicant",
            pb::SubmitRequestRequest {
                applicant: None,
                ..valid()
            },
            "applicant",
        ),
        (
            "landline phone",
            pb::SubmitRequestRequest {
                applicant: Some(pb::Applicant {
                    name: "李四".into(),
                    phone: "0746-8881234".into(),
                }),
                ..valid()
            },
            "applicant.phone",
        ),
        (
            "empty name",
            pb::SubmitRequestRequest {
                applicant: Some(pb::Applicant {
                    name: String::new(),
                    phone: "13912345678".into(),
                }),
                ..valid()
            },
            "applicant.name",
        ),
        (
            "unknown grid",
            pb::SubmitRequestRequest {
                grid_code: "431127999999".into(),
                ..valid()
            },
            "grid_code",
        ),
        (
            "malformed grid",
            pb::SubmitRequestRequest {
                grid_code: "4311".into(),
                ..valid()
            },
            "grid_code",
        ),
        (
            "no grid nor address",
            pb::SubmitRequestRequest {
                grid_code: String::new(),
                ..valid()
            },
            "grid_code",
        ),
        (
            "no channel",
            pb::SubmitRequestRequest {
                channel: 0,
                ..valid()
            },
            "channel",
        ),
        (
            "unknown channel",
            pb::SubmitRequestRequest {
                channel: 42,
                ..valid()
            },
            "channel",
        ),
        (
            "oversized request id",
            pb::SubmitRequestRequest {
                request_id: "r".repeat(129),
                ..valid()
            },
            "request_id",
        ),
        (
            "unknown county",
            pb::SubmitRequestRequest {
                county_code: "110101".into(),
                ..valid()
            },
            "county_code",
        ),
    ];
    for (case, request, field) in cases {
        let status = submit_err(&app, request).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert_eq!(reason(&status), "INVALID_FIELD", "{case}");
        assert_eq!(bad_fields(&status), [field], "{case}: {}", status.message());
    }
}

#[tokio::test]
async fn several_invalid_fields_are_named_together() {
    let app = spawn_app(Config::default()).await;
    let request = pb::SubmitRequestRequest {
        request_text: String::new(),
        applicant: Some(pb::Applicant {
            name: "李四".into(),
            phone: "12345".into(),
        }),
        channel: 0,
        ..precise_request(GRID, "M003", "")
    };
    let status = submit_err(&app, request).await;
    assert_eq!(
        bad_fields(&status),
        ["request_text", "applicant.phone", "channel"]
    );
    assert!(
        !status.message().contains("12345"),
        "the message must not echo the phone: {}",
        status.message()
    );
}

#[tokio::test]
async fn huge_message_is_rejected_and_service_keeps_working() {
    let app = spawn_app(Config::default()).await;
    let request = pb::SubmitRequestRequest {
        request_text: "办".repeat(100_000),
        ..precise_request(GRID, "M003", "huge")
    };
    let status = submit_err(&app, request).await;
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    submit(&app, "after-huge").await;
}

#[tokio::test]
async fn unknown_order_is_not_found() {
    let app = spawn_app(Config::default()).await;
    let status = app
        .work_orders()
        .get_work_order(with_bearer(
            pb::GetWorkOrderRequest {
                order_id: "431127-99999999".into(),
            },
            APP_KEY,
        ))
        .await
        .expect_err("unknown order fails");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "ORDER_NOT_FOUND");

    let malformed = app
        .work_orders()
        .get_work_order(with_bearer(
            pb::GetWorkOrderRequest {
                order_id: "order-1".into(),
            },
            APP_KEY,
        ))
        .await
        .expect_err("malformed id fails");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&malformed), ["order_id"]);
}

#[tokio::test]
async fn grab_conflicts_carry_their_reasons() {
    let app = spawn_app(Config::default()).await;
    let order = submit(&app, "conflict-1").await;
    let claim = || pb::ClaimWorkOrderRequest {
        order_id: order.order_id.clone(),
    };
    let [winner, second, ..] = &grid_agents(GRID)[..] else {
        panic!("the test grid has two agents")
    };
    let outsider = agents_outside(GRID, 1).remove(0);

    let reserved = app
        .agent_api()
        .claim_work_order(with_bearer(claim(), &app.token(&outsider)))
        .await
        .expect_err("an outsider cannot claim in the grid phase");
    assert_eq!(reserved.code(), Code::FailedPrecondition);
    assert_eq!(reason(&reserved), "ORDER_RESERVED_FOR_GRID");

    app.agent_api()
        .claim_work_order(with_bearer(claim(), &app.token(winner)))
        .await
        .expect("grid agent claims");
    let taken = app
        .agent_api()
        .claim_work_order(with_bearer(claim(), &app.token(second)))
        .await
        .expect_err("a second grab fails");
    assert_eq!(taken.code(), Code::FailedPrecondition);
    assert_eq!(reason(&taken), "ORDER_ALREADY_CLAIMED");

    let not_holder = app
        .agent_api()
        .release_work_order(with_bearer(
            pb::ReleaseWorkOrderRequest {
                order_id: order.order_id.clone(),
                reason: "不想办".into(),
            },
            &app.token(second),
        ))
        .await
        .expect_err("only the holder releases");
    assert_eq!(not_holder.code(), Code::PermissionDenied);

    let no_reason = app
        .agent_api()
        .release_work_order(with_bearer(
            pb::ReleaseWorkOrderRequest {
                order_id: order.order_id.clone(),
                reason: " ".into(),
            },
            &app.token(winner),
        ))
        .await
        .expect_err("release needs a reason");
    assert_eq!(bad_fields(&no_reason), ["reason"]);

    let early_rating = app
        .work_orders()
        .rate_work_order(with_bearer(
            pb::RateWorkOrderRequest {
                order_id: order.order_id.clone(),
                rating: pb::Rating::Satisfied as i32,
                comment: String::new(),
            },
            APP_KEY,
        ))
        .await
        .expect_err("a claimed order cannot be rated");
    assert_eq!(reason(&early_rating), "ORDER_STATE_CONFLICT");

    let after = get(&app, &order.order_id).await;
    assert_eq!(
        after.state,
        pb::WorkOrderState::Claimed as i32,
        "rejected calls change nothing"
    );
    assert_eq!(&after.agent_id, winner);
}

#[tokio::test]
async fn second_rating_and_bad_rating_are_rejected() {
    let app = spawn_app(Config::default()).await;
    let order = submit(&app, "rating-1").await;
    let agent = grid_agents(GRID).remove(0);
    let token = app.token(&agent);
    app.agent_api()
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    app.agent_api()
        .complete_work_order(with_bearer(
            pb::CompleteWorkOrderRequest {
                order_id: order.order_id.clone(),
                result_text: "已办结".into(),
                result_reference: String::new(),
                matter_code: String::new(),
            },
            &token,
        ))
        .await
        .unwrap();
    let rate = |rating: i32| pb::RateWorkOrderRequest {
        order_id: order.order_id.clone(),
        rating,
        comment: String::new(),
    };

    for bad in [0, 9] {
        let status = app
            .work_orders()
            .rate_work_order(with_bearer(rate(bad), APP_KEY))
            .await
            .expect_err("bad rating fails");
        assert_eq!(bad_fields(&status), ["rating"], "rating {bad}");
    }
    app.work_orders()
        .rate_work_order(with_bearer(rate(pb::Rating::Unsatisfied as i32), APP_KEY))
        .await
        .expect("first rating succeeds");
    let second = app
        .work_orders()
        .rate_work_order(with_bearer(rate(pb::Rating::VerySatisfied as i32), APP_KEY))
        .await
        .expect_err("second rating fails");
    assert_eq!(second.code(), Code::FailedPrecondition);
    assert_eq!(reason(&second), "ALREADY_RATED");

    let after = wait_for_state(&app, &order.order_id, pb::WorkOrderState::Settled).await;
    assert_eq!(after.rating, pb::Rating::Unsatisfied as i32);
    assert_eq!(after.points_tenths, 0, "unsatisfied earns nothing");

    let cancel = app
        .work_orders()
        .cancel_work_order(with_bearer(
            pb::CancelWorkOrderRequest {
                order_id: order.order_id.clone(),
                reason: String::new(),
            },
            APP_KEY,
        ))
        .await
        .expect_err("a settled order cannot be cancelled");
    assert_eq!(reason(&cancel), "ORDER_STATE_CONFLICT");
}

#[tokio::test]
async fn credentials_are_checked() {
    let app = spawn_app(Config::default()).await;
    let request = || precise_request(GRID, "M003", "");

    let missing = app
        .work_orders()
        .submit_request(tonic::Request::new(request()))
        .await
        .expect_err("no key fails");
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(reason(&missing), "MISSING_CREDENTIAL");
    let unknown = app
        .work_orders()
        .submit_request(with_bearer(request(), "not-a-key-0123456789"))
        .await
        .expect_err("unknown key fails");
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(reason(&unknown), "UNKNOWN_API_KEY");
    let wrong_scope = app
        .work_orders()
        .submit_request(with_bearer(request(), SMS_KEY))
        .await
        .expect_err("sms key cannot submit");
    assert_eq!(wrong_scope.code(), Code::PermissionDenied);
    assert_eq!(reason(&wrong_scope), "SCOPE_MISSING");

    let bad_token = app
        .agent_api()
        .list_open_orders(with_bearer(pb::ListOpenOrdersRequest::default(), "a.b.c"))
        .await
        .expect_err("forged token fails");
    assert_eq!(bad_token.code(), Code::Unauthenticated);
    assert_eq!(reason(&bad_token), "INVALID_TOKEN");
    let key_as_token = app
        .agent_api()
        .list_open_orders(with_bearer(pb::ListOpenOrdersRequest::default(), APP_KEY))
        .await
        .expect_err("an API key is no agent token");
    assert_eq!(key_as_token.code(), Code::Unauthenticated);

    let inactive = daiban_tests::demo_directory()
        .agents()
        .find(|a| !a.active)
        .expect("the demo has inactive agents")
        .id
        .to_string();
    let status = app
        .agent_api()
        .list_open_orders(with_bearer(
            pb::ListOpenOrdersRequest::default(),
            &app.token(&inactive),
        ))
        .await
        .expect_err("inactive agent is refused");
    assert_eq!(status.code(), Code::PermissionDenied);

    let agent = grid_agents(GRID).remove(0);
    let other = agents_outside(GRID, 1).remove(0);
    let foreign = app
        .points()
        .get_agent_points(with_bearer(
            pb::GetAgentPointsRequest { agent_id: other },
            &app.token(&agent),
        ))
        .await
        .expect_err("an agent reads only its own points");
    assert_eq!(foreign.code(), Code::PermissionDenied);
    assert_eq!(reason(&foreign), "NOT_OWN_POINTS");
    let unknown_agent = app
        .points()
        .get_agent_points(with_bearer(
            pb::GetAgentPointsRequest {
                agent_id: "A9999".into(),
            },
            EXPORT_KEY,
        ))
        .await
        .expect_err("unknown agent");
    assert_eq!(unknown_agent.code(), Code::NotFound);
    assert_eq!(reason(&unknown_agent), "AGENT_NOT_FOUND");

    let page = app
        .agent_api()
        .list_open_orders(with_bearer(
            pb::ListOpenOrdersRequest { page_size: 1000 },
            &app.token(&agent),
        ))
        .await
        .expect_err("page too large");
    assert_eq!(bad_fields(&page), ["page_size"]);
}

#[tokio::test]
async fn reused_request_id_with_other_content_is_rejected() {
    let app = spawn_app(Config::default()).await;
    let first = submit(&app, "reuse-1").await;
    let mut other = precise_request(GRID, "M004", "reuse-1");
    other.applicant = Some(pb::Applicant {
        name: "王五".into(),
        phone: "13700001111".into(),
    });
    let status = submit_err(&app, other).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert!(
        status.message().contains(&first.order_id),
        "{}",
        status.message()
    );

    let same = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "reuse-1"),
            APP_KEY,
        ))
        .await
        .expect("the same request again returns the order")
        .into_inner();
    assert_eq!(same.order_id, first.order_id);
}

#[tokio::test]
async fn agent_over_budget_is_told_when_to_retry() {
    let config = Config {
        extra_env: vec![("DAIBAN_RATE_LIMIT_AGENT", "2")],
        ..Config::default()
    };
    let app = spawn_app(config).await;
    let [busy, other, ..] = &grid_agents(GRID)[..] else {
        panic!("the test grid has two agents")
    };
    let list = |agent: &str| with_bearer(pb::ListOpenOrdersRequest::default(), &app.token(agent));

    // Two calls a second with bursts of four: the fifth at once is over.
    for _ in 0..4 {
        app.agent_api()
            .list_open_orders(list(busy))
            .await
            .expect("within the burst");
    }
    let status = app
        .agent_api()
        .list_open_orders(list(busy))
        .await
        .expect_err("over budget");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "RATE_LIMITED");
    use tonic_types::StatusExt;
    let delay = status
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay);
    assert!(
        delay.is_some_and(|d| !d.is_zero()),
        "a retry delay is given: {delay:?}"
    );

    app.agent_api()
        .list_open_orders(list(other))
        .await
        .expect("another agent has its own budget");
    tokio::time::sleep(delay.unwrap()).await;
    app.agent_api()
        .list_open_orders(list(busy))
        .await
        .expect("the budget refills");
}
