//! Host tools, stage invitations, reactions and polls over a real WebSocket: who may, the
//! bounds, and what each side receives.

use crate::common::{expect_error, raw_join, send, wait_type, TestServer};
use serde_json::json;

#[tokio::test]
async fn host_tools_invitations_reactions_and_polls() {
    let server = TestServer::start().await;
    let (mut host, m) = raw_join(&server, "tools", "Host", json!({"role": "host"})).await;
    assert_eq!(m["you"]["role"], "host", "{m}");
    let settings = wait_type(&mut host, "room_settings").await;
    assert_eq!(
        settings["join_muted_above"], 6,
        "the default threshold: {settings}"
    );
    let (mut bo, m) = raw_join(&server, "tools", "Bo", json!({"role": "audience"})).await;
    let bo_id = m["you"]["id"].as_u64().expect("an id");
    wait_type(&mut host, "participant_joined").await;

    // Not a host: refused with a clear error, nothing happens.
    for msg in [
        json!({"type": "create_poll", "question": "Q", "kind": "mood"}),
        json!({"type": "spotlight", "participant": bo_id}),
        json!({"type": "mute_all"}),
        json!({"type": "invite_to_stage", "participant": bo_id}),
        json!({"type": "ask_unmute", "participant": bo_id, "source": "microphone"}),
        json!({"type": "set_join_muted", "above": 3}),
    ] {
        send(&mut bo, &msg.to_string()).await;
        expect_error(&mut bo, "forbidden").await;
    }
    // Shapes and sets are checked.
    send(&mut bo, r#"{"type":"react","emoji":"👍","extra":1}"#).await;
    expect_error(&mut bo, "bad_message").await;
    send(&mut bo, r#"{"type":"react","emoji":"🍕"}"#).await;
    expect_error(&mut bo, "bad_message").await;
    send(&mut bo, r#"{"type":"react","emoji":"👍"}"#).await;
    let r = wait_type(&mut host, "reaction").await;
    assert_eq!(
        (r["participant"].as_u64(), r["emoji"].as_str()),
        (Some(bo_id), Some("👍"))
    );

    // The stage is an invitation Bo answers.
    send(&mut bo, r#"{"type":"stage_answer","accept":true}"#).await;
    expect_error(&mut bo, "bad_message").await;
    let invite = json!({"type": "invite_to_stage", "participant": bo_id});
    send(&mut host, &invite.to_string()).await;
    wait_type(&mut bo, "stage_invite").await;
    send(&mut bo, r#"{"type":"stage_answer","accept":true}"#).await;
    let up = wait_type(&mut bo, "participant_updated").await;
    assert_eq!(up["participant"]["role"], "presenter", "{up}");
    let answered = wait_type(&mut host, "stage_answered").await;
    assert_eq!(answered["accept"], true);

    // Asking to unmute reaches Bo as a request.
    let ask = json!({"type": "ask_unmute", "participant": bo_id, "source": "microphone"});
    send(&mut host, &ask.to_string()).await;
    let req = wait_type(&mut bo, "unmute_request").await;
    assert_eq!(req["source"], "microphone");

    // Polls: bounded; votes reach the host as counts with voters (not anonymous).
    let choices: Vec<String> = (0..11).map(|i| format!("c{i}")).collect();
    let too_many =
        json!({"type": "create_poll", "question": "Q", "kind": "choice", "choices": choices});
    send(&mut host, &too_many.to_string()).await;
    expect_error(&mut host, "bad_message").await;
    let poll = json!({"type": "create_poll", "question": "Pizza or salad?", "kind": "choice",
        "choices": ["pizza", "salad"], "anonymous": false});
    send(&mut host, &poll.to_string()).await;
    let p = wait_type(&mut bo, "poll").await;
    assert_eq!(p["open"], true);
    let id = p["id"].as_u64().expect("a poll id");
    send(
        &mut bo,
        &json!({"type": "poll_vote", "poll": id, "choice": 1}).to_string(),
    )
    .await;
    let r = wait_type(&mut host, "poll_results").await;
    assert_eq!(r["counts"], json!([0, 1]), "{r}");
    assert_eq!(r["voters"], json!([[bo_id, 1]]), "{r}");
    let r = wait_type(&mut bo, "poll_results").await;
    assert!(r.get("voters").is_none(), "only hosts see voters: {r}");
    send(&mut host, r#"{"type":"close_poll"}"#).await;
    let closed = wait_type(&mut bo, "poll").await;
    assert_eq!(
        (closed["open"].as_bool(), &closed["counts"]),
        (Some(false), &json!([0, 1]))
    );
}
