//! The merged WebSocket reader (`WsReader`): messages and commands through one channel.

use super::*;

/// A text frame as the WebSocket stream yields it.
type Frame = Result<Message, tungstenite::Error>;

fn text(s: &str) -> Message {
    Message::Text(s.to_string().into())
}

fn parse(s: &str) -> Result<String, BotError> {
    Ok(s.to_string())
}

#[tokio::test]
async fn messages_and_commands_come_through_one_channel_and_the_end_is_seen() {
    let (cmd_tx, cmds) = mpsc::unbounded_channel();
    let (ws_tx, ws_rx) = mpsc::unbounded_channel();
    let stream = tokio_stream_from(ws_rx);
    let mut inbox = WsReader::spawn(stream, cmds, parse, None);
    ws_tx.send(Ok(text("one"))).expect("send");
    assert!(matches!(inbox.recv().await, Some(Inbound::Msg(Ok(m))) if m == "one"));
    // Nothing queued: a poll does not touch the channel, yet a later message wakes it.
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        ws_tx.send(Ok(text("two"))).expect("send");
        ws_tx
    });
    let got = tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await;
    assert!(matches!(got, Ok(Some(Inbound::Msg(Ok(m)))) if m == "two"));
    let ws_tx = late.await.expect("sender");
    cmd_tx.send(BotCmd::RestartIce).expect("cmd");
    assert!(matches!(
        inbox.recv().await,
        Some(Inbound::Cmd(BotCmd::RestartIce))
    ));
    // Frozen: the WebSocket is no longer read; the end comes when the handle goes.
    cmd_tx.send(BotCmd::Freeze).expect("cmd");
    assert!(matches!(
        inbox.recv().await,
        Some(Inbound::Cmd(BotCmd::Freeze))
    ));
    let _ = ws_tx.send(Ok(text("unread")));
    drop(cmd_tx);
    let end = tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await;
    assert!(
        matches!(end, Ok(None)),
        "the reader ends once the handle is gone"
    );
}

fn tokio_stream_from(
    mut rx: mpsc::UnboundedReceiver<Frame>,
) -> impl Stream<Item = Frame> + Unpin + Send + 'static {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}
