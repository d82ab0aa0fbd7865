//! The order lifecycle through gRPC, on a service with its own Redis.

use daiban_proto::v1 as pb;
use daiban_tests::service::{ADMIN_KEY, APP_KEY, EXPORT_KEY};
use daiban_tests::{
    Config, agents_outside, grid_agents, precise_request, spawn_app, wait_for_state, with_bearer,
};

const GRID: &str = "431127100008";

#[tokio::test]
async fn precise_order_lives_from_submit_to_points() {
    let app = spawn_app(Config::default()).await;
    let agent = grid_agents(GRID).remove(0);
    let token = app.token(&agent);

    let order = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "life-1"),
            APP_KEY,
        ))
        .await
        .expect("submit succeeds")
        .into_inner();
    assert_eq!(order.state, pb::WorkOrderState::OfferedToGrid as i32);
    assert_eq!(order.grid_code, GRID);
    assert!(order.grid_resolved);
    assert!(!order.widened);
    assert_eq!(order.county_code, "431127");
    assert_eq!(order.matter.as_ref().map(|m| m.matter_class), Some(2));
    assert_eq!(order.claim_code.len(), 6);
    let phase = order.widen_time.unwrap().seconds - order.create_time.unwrap().seconds;
    assert_eq!(phase, 600, "the default grid phase is ten minutes");

    let open = app
        .agent_api()
        .list_open_orders(with_bearer(pb::ListOpenOrdersRequest::default(), &token))
        .await
        .expect("list succeeds")
        .into_inner();
    let listed = open
        .work_orders
        .iter()
        .find(|o| o.order_id == order.order_id)
        .expect("grid agent sees the order");
    assert_eq!(
        listed.applicant.as_ref().unwrap().phone,
        "139****5678",
        "open offers mask the phone"
    );

    let claimed = app
        .agent_api()
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id.clone(),
            },
            &token,
        ))
        .await
        .expect("grid agent claims")
        .into_inner();
    assert_eq!(claimed.state, pb::WorkOrderState::Claimed as i32);
    assert_eq!(claimed.agent_id, agent);
    assert!(claimed.claim_time.is_some());
    assert_eq!(
        claimed.applicant.as_ref().unwrap().phone,
        "13912345678",
        "the holder sees the phone"
    );

    let completed = app
        .agent_api()
        .complete_work_order(with_bearer(
            pb::CompleteWorkOrderRequest {
                order_id: order.order_id.clone(),
                result_text: "营业执照已办好".into(),
                result_reference: "91431127MA4L000000".into(),
                matter_code: String::new(),
            },
            &token,
        ))
        .await
        .expect("holder completes")
        .into_inner();
    assert_eq!(completed.state, pb::WorkOrderState::Completed as i32);
    assert_eq!(
        completed.result.as_ref().unwrap().reference,
        "91431127MA4L000000"
    );

    let rated = app
        .work_orders()
        .rate_work_order(with_bearer(
            pb::RateWorkOrderRequest {
                order_id: order.order_id.clone(),
                rating: pb::Rating::VerySatisfied as i32,
                comment: "很快".into(),
            },
            APP_KEY,
        ))
        .await
        .expect("applicant rates")
        .into_inner();
    assert_eq!(
        rated.state,
        pb::WorkOrderState::Completed as i32,
        "rating records; the points consumer settles"
    );
    assert_eq!(rated.rating, pb::Rating::VerySatisfied as i32);
    let settled = wait_for_state(&app, &order.order_id, pb::WorkOrderState::Settled).await;
    assert_eq!(
        settled.points_tenths, 30,
        "class 2 earns 2 points, satisfied adds 1"
    );
    assert_eq!(
        settled.settle_time, rated.rate_time,
        "a rated order settles as of its rating"
    );

    let points = app
        .points()
        .get_agent_points(with_bearer(
            pb::GetAgentPointsRequest {
                agent_id: agent.clone(),
            },
            EXPORT_KEY,
        ))
        .await
        .expect("export key reads points")
        .into_inner();
    assert_eq!(points.months.len(), 1);
    let month = &points.months[0];
    assert_eq!(month.class2_orders, 1);
    assert_eq!(month.satisfied, 1);
    assert_eq!(month.points_tenths, 30);
    assert_eq!(month.bonus_fen, 3000);

    let own = app
        .points()
        .get_agent_points(with_bearer(pb::GetAgentPointsRequest::default(), &token))
        .await
        .expect("agent reads own points")
        .into_inner();
    assert_eq!(own.months, points.months);
}

#[tokio::test]
async fn fuzzy_order_from_address_needs_matter_at_completion() {
    let app = spawn_app(Config::default()).await;
    let mut request = precise_request("", "", "fuzzy-1");
    request.request_text = "孩子刚出生，上户口要准备什么".into();
    request.address = "蓝山县塔峰镇友谊村大塘边".into();
    let order = app
        .work_orders()
        .submit_request(with_bearer(request, APP_KEY))
        .await
        .expect("fuzzy submit succeeds")
        .into_inner();
    assert!(order.matter.is_none());
    assert!(order.grid_resolved);
    assert_eq!(order.address, "蓝山县塔峰镇友谊村大塘边");
    let agent = grid_agents(&order.grid_code).remove(0);
    let token = app.token(&agent);

    app.agent_api()
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id.clone(),
            },
            &token,
        ))
        .await
        .expect("grid agent claims");
    let complete = |matter_code: &str| pb::CompleteWorkOrderRequest {
        order_id: order.order_id.clone(),
        result_text: "户口已登记".into(),
        result_reference: String::new(),
        matter_code: matter_code.into(),
    };
    let missing = app
        .agent_api()
        .complete_work_order(with_bearer(complete(""), &token))
        .await
        .expect_err("completion without a matter fails");
    assert_eq!(missing.code(), tonic::Code::InvalidArgument);
    assert_eq!(daiban_tests::bad_fields(&missing), ["matter_code"]);

    let done = app
        .agent_api()
        .complete_work_order(with_bearer(complete("M004"), &token))
        .await
        .expect("completion with a matter succeeds")
        .into_inner();
    assert_eq!(done.matter.as_ref().map(|m| m.code.as_str()), Some("M004"));
    assert_eq!(done.matter.as_ref().map(|m| m.matter_class), Some(1));
}

#[tokio::test]
async fn unresolved_address_goes_county_wide_at_once() {
    let app = spawn_app(Config::default()).await;
    let mut request = precise_request("", "M001", "unresolved-1");
    request.address = "广东省东莞市长安镇".into();
    let order = app
        .work_orders()
        .submit_request(with_bearer(request, APP_KEY))
        .await
        .expect("unresolved address is accepted")
        .into_inner();
    assert_eq!(order.state, pb::WorkOrderState::OfferedToCounty as i32);
    assert!(!order.grid_resolved);
    assert!(order.widened);
    assert_eq!(order.grid_code, "");
    assert_eq!(order.widen_time, order.create_time);

    let outsider = agents_outside(GRID, 1).remove(0);
    app.agent_api()
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id,
            },
            &app.token(&outsider),
        ))
        .await
        .expect("any county agent may claim at once");
}

#[tokio::test]
async fn grid_without_active_agent_skips_grid_phase() {
    let app = spawn_app(Config::default()).await;
    // 南岭林场虚拟社区, a farm community with no agents.
    let farm = "431127402498";
    assert!(grid_agents(farm).is_empty());
    let order = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(farm, "M010", "farm-1"),
            APP_KEY,
        ))
        .await
        .expect("submit succeeds")
        .into_inner();
    assert_eq!(order.state, pb::WorkOrderState::OfferedToCounty as i32);
    assert!(order.grid_resolved);
    assert_eq!(order.grid_code, farm);
}

#[tokio::test]
async fn retry_with_same_request_id_returns_first_order() {
    let app = spawn_app(Config::default()).await;
    let first = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "retry-1"),
            APP_KEY,
        ))
        .await
        .expect("first submit succeeds")
        .into_inner();
    for _ in 0..3 {
        let again = app
            .work_orders()
            .submit_request(with_bearer(
                precise_request(GRID, "M003", "retry-1"),
                APP_KEY,
            ))
            .await
            .expect("retry succeeds")
            .into_inner();
        assert_eq!(again, first);
    }
    let other = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "retry-2"),
            APP_KEY,
        ))
        .await
        .expect("another request succeeds")
        .into_inner();
    assert_ne!(other.order_id, first.order_id);

    // Ten concurrent retries of a new request create one order.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let mut client = app.work_orders();
        tasks.spawn(async move {
            client
                .submit_request(with_bearer(
                    precise_request(GRID, "M003", "retry-3"),
                    APP_KEY,
                ))
                .await
                .map(|r| r.into_inner().order_id)
        });
    }
    let mut ids = std::collections::HashSet::new();
    while let Some(result) = tasks.join_next().await {
        ids.insert(result.unwrap().expect("concurrent retry succeeds"));
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test]
async fn release_offers_order_county_wide() {
    let app = spawn_app(Config::default()).await;
    let holder = grid_agents(GRID).remove(0);
    let order = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "release-1"),
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    let claim = pb::ClaimWorkOrderRequest {
        order_id: order.order_id.clone(),
    };
    app.agent_api()
        .claim_work_order(with_bearer(claim.clone(), &app.token(&holder)))
        .await
        .unwrap();

    let released = app
        .agent_api()
        .release_work_order(with_bearer(
            pb::ReleaseWorkOrderRequest {
                order_id: order.order_id.clone(),
                reason: "临时外出".into(),
            },
            &app.token(&holder),
        ))
        .await
        .expect("holder releases")
        .into_inner();
    assert_eq!(released.state, pb::WorkOrderState::OfferedToCounty as i32);
    assert_eq!(released.agent_id, "");
    assert!(released.widened);

    let outsider = agents_outside(GRID, 1).remove(0);
    let reclaimed = app
        .agent_api()
        .claim_work_order(with_bearer(claim, &app.token(&outsider)))
        .await
        .expect("an agent of another grid claims the released order")
        .into_inner();
    assert_eq!(reclaimed.agent_id, outsider);
}

#[tokio::test]
async fn cancelled_order_cannot_be_claimed() {
    let app = spawn_app(Config::default()).await;
    let order = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "cancel-1"),
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    let cancelled = app
        .work_orders()
        .cancel_work_order(with_bearer(
            pb::CancelWorkOrderRequest {
                order_id: order.order_id.clone(),
                reason: "已自行办理".into(),
            },
            APP_KEY,
        ))
        .await
        .expect("cancel succeeds")
        .into_inner();
    assert_eq!(cancelled.state, pb::WorkOrderState::Cancelled as i32);
    assert_eq!(cancelled.cancel_reason, "已自行办理");

    let agent = grid_agents(GRID).remove(0);
    let err = app
        .agent_api()
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id,
            },
            &app.token(&agent),
        ))
        .await
        .expect_err("claim of a cancelled order fails");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(daiban_tests::reason(&err), "ORDER_STATE_CONFLICT");
}

#[tokio::test]
async fn directory_and_matters_are_listed() {
    let app = spawn_app(Config::default()).await;
    let matters = app
        .work_orders()
        .list_matters(with_bearer(pb::ListMattersRequest {}, APP_KEY))
        .await
        .unwrap()
        .into_inner()
        .matters;
    assert_eq!(matters.len(), 100);
    let grids = app
        .directory()
        .list_grids(with_bearer(
            pb::ListGridsRequest {
                county_code: "431127".into(),
            },
            ADMIN_KEY,
        ))
        .await
        .unwrap()
        .into_inner()
        .grids;
    assert_eq!(grids.len(), 228);
    let agents = app
        .directory()
        .list_agents(with_bearer(
            pb::ListAgentsRequest {
                county_code: String::new(),
                grid_code: GRID.into(),
            },
            ADMIN_KEY,
        ))
        .await
        .unwrap()
        .into_inner()
        .agents;
    assert_eq!(agents.len(), grid_agents(GRID).len());
}

#[tokio::test]
async fn development_mode_needs_no_api_key() {
    let app = spawn_app(Config {
        production: false,
        redis: false,
        ..Config::default()
    })
    .await;
    let order = app
        .work_orders()
        .submit_request(tonic::Request::new(precise_request(GRID, "M003", "dev-1")))
        .await
        .expect("no key is needed in development mode")
        .into_inner();
    let agent = grid_agents(GRID).remove(0);
    let no_token = app
        .agent_api()
        .claim_work_order(tonic::Request::new(pb::ClaimWorkOrderRequest {
            order_id: order.order_id.clone(),
        }))
        .await
        .expect_err("agents still need a token");
    assert_eq!(no_token.code(), tonic::Code::Unauthenticated);
    app.agent_api()
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id,
            },
            &app.token(&agent),
        ))
        .await
        .expect("a development token works");
    app.stop().await;
}
