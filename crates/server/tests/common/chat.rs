//! Chat helpers: REST calls with a bearer token and WebSocket reads that wait
//! for one kind of frame.

use std::time::Duration;

use hearth_proto::chat::{
    ApiError, ClientMessageId, Conversation, ConversationId, ConversationKind, CreateConversation,
    Event, EventBody, Seq,
};
use hearth_proto::{ClientMessage, ErrorCode, ServerMessage};

use super::{Socket, TestServer};

/// Path of one conversation.
pub fn conversation_path(id: ConversationId) -> String {
    format!("{}/{id}", hearth_proto::chat::CONVERSATIONS_PATH)
}

/// A signed-in user with one open session WebSocket.
pub struct ChatUser {
    pub name: String,
    pub token: String,
    pub socket: Socket,
}

impl TestServer {
    /// Signs in and returns the access token.
    pub async fn token(&self, user: &str) -> String {
        self.sign_in(user).await.access_token
    }

    /// Signs in as `user` and opens a WebSocket with the same token.
    pub async fn chat_user(&self, user: &str) -> ChatUser {
        let token = self.token(user).await;
        let mut socket = self.connect_with_token(&token).await.unwrap();
        let hello = socket.receive().await;
        assert!(
            matches!(hello, ServerMessage::Hello { .. }),
            "got {hello:?}"
        );
        ChatUser {
            name: user.to_owned(),
            token,
            socket,
        }
    }

    /// Opens another WebSocket for a user who is signed in already.
    pub async fn another_socket(&self, user: &ChatUser) -> Socket {
        let mut socket = self.connect_with_token(&user.token).await.unwrap();
        socket.receive().await;
        socket
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(
        &self,
        token: &str,
        path: &str,
        body: &impl serde::Serialize,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_json(
        &self,
        token: &str,
        path: &str,
        body: &impl serde::Serialize,
    ) -> reqwest::Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Creates a group owned by the token's user and returns it.
    pub async fn create_group(&self, token: &str, name: &str, members: &[&str]) -> Conversation {
        let request = CreateConversation {
            kind: ConversationKind::Group,
            name: Some(name.to_owned()),
            members: members.iter().map(|member| (*member).to_owned()).collect(),
        };
        let response = self
            .post_json(token, hearth_proto::chat::CONVERSATIONS_PATH, &request)
            .await;
        assert_eq!(response.status(), 201, "creating group {name} failed");
        response.json().await.unwrap()
    }

    /// Creates or returns the direct conversation with `other`.
    pub async fn create_direct(&self, token: &str, other: &str) -> Conversation {
        let request = CreateConversation {
            kind: ConversationKind::Direct,
            name: None,
            members: vec![other.to_owned()],
        };
        let response = self
            .post_json(token, hearth_proto::chat::CONVERSATIONS_PATH, &request)
            .await;
        assert!(
            response.status().is_success(),
            "creating a direct conversation with {other} failed: {}",
            response.status()
        );
        response.json().await.unwrap()
    }
}

/// Decodes an error body and checks its status.
pub async fn api_error(response: reqwest::Response, status: u16) -> ApiError {
    assert_eq!(response.status(), status, "unexpected status");
    response.json().await.unwrap()
}

impl Socket {
    /// Sends a message with a new client id and returns that id.
    pub async fn say(&mut self, conversation_id: ConversationId, text: &str) -> ClientMessageId {
        let client_id = ClientMessageId::new_v4();
        self.send_message(conversation_id, client_id, text).await;
        client_id
    }

    pub async fn send_message(
        &mut self,
        conversation_id: ConversationId,
        client_id: ClientMessageId,
        text: &str,
    ) {
        self.send(ClientMessage::SendMessage {
            conversation_id,
            client_id,
            text: text.to_owned(),
            reply_to: None,
            attachments: Vec::new(),
        })
        .await;
    }

    /// Returns the first frame for which `select` returns a value: from the
    /// skipped frames first, then from the connection. Frames it passes over
    /// stay queued for later reads.
    pub async fn receive_until<T>(
        &mut self,
        mut select: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> T {
        let position = self
            .pending
            .iter()
            .enumerate()
            .find_map(|(index, message)| select(message).map(|value| (index, value)));
        if let Some((index, value)) = position {
            self.pending.remove(index);
            return value;
        }
        loop {
            let message = self.receive_new().await;
            if let Some(value) = select(&message) {
                return value;
            }
            self.pending.push_back(message);
        }
    }

    /// Reads the next frame that is not a presence change.
    pub async fn receive_chat(&mut self) -> ServerMessage {
        loop {
            match self.receive().await {
                ServerMessage::Presence { .. } => continue,
                other => return other,
            }
        }
    }

    /// Waits for the acknowledgement of `client_id` and returns its sequence
    /// number. Fails on an error for that message.
    pub async fn ack_of(&mut self, client_id: ClientMessageId) -> Seq {
        self.receive_until(|message| match message {
            ServerMessage::MessageAck {
                client_id: acked,
                seq,
                ..
            } if *acked == client_id => Some(*seq),
            ServerMessage::Error {
                client_id: Some(failed),
                code,
                message,
                ..
            } if *failed == client_id => panic!("message {client_id} failed: {code}: {message}"),
            _ => None,
        })
        .await
    }

    /// Sends a message and waits for its acknowledgement.
    pub async fn send_acked(&mut self, conversation_id: ConversationId, text: &str) -> Seq {
        let client_id = self.say(conversation_id, text).await;
        self.ack_of(client_id).await
    }

    /// Waits for the next pushed event of a conversation.
    pub async fn next_event(&mut self, conversation_id: ConversationId) -> Event {
        self.receive_until(|message| match message {
            ServerMessage::Event { event } if event.conversation_id == conversation_id => {
                Some(event.clone())
            }
            _ => None,
        })
        .await
    }

    /// Waits for the pushed event with sequence number `seq`.
    pub async fn event_with_seq(&mut self, conversation_id: ConversationId, seq: Seq) -> Event {
        self.receive_until(|message| match message {
            ServerMessage::Event { event }
                if event.conversation_id == conversation_id && event.seq == seq =>
            {
                Some(event.clone())
            }
            _ => None,
        })
        .await
    }

    /// Waits for the next pushed message event of a conversation, passing over
    /// membership and other events.
    pub async fn next_message(&mut self, conversation_id: ConversationId) -> Event {
        self.receive_until(|message| match message {
            ServerMessage::Event { event }
                if event.conversation_id == conversation_id
                    && matches!(event.body, EventBody::Message { .. }) =>
            {
                Some(event.clone())
            }
            _ => None,
        })
        .await
    }

    /// Waits for the next `error` frame and returns it.
    pub async fn next_error(&mut self) -> (ErrorCode, ServerMessage) {
        self.receive_until(|message| match message {
            ServerMessage::Error { code, .. } => Some((*code, message.clone())),
            _ => None,
        })
        .await
    }

    /// Requests `sync` and collects every batch of the answer.
    pub async fn sync_all(
        &mut self,
        conversation_id: ConversationId,
        after: Seq,
        limit: Option<u32>,
    ) -> (Vec<Vec<Event>>, bool) {
        self.send(ClientMessage::Sync {
            conversation_id,
            after,
            limit,
        })
        .await;
        let mut batches = Vec::new();
        let mut total = 0u64;
        loop {
            let (events, complete) = self
                .receive_until(|message| match message {
                    ServerMessage::SyncBatch {
                        conversation_id: id,
                        events,
                        complete,
                    } if *id == conversation_id => Some((events.clone(), *complete)),
                    ServerMessage::Error { code, message, .. } => {
                        panic!("sync failed: {code}: {message}")
                    }
                    _ => None,
                })
                .await;
            total += events.len() as u64;
            batches.push(events);
            let limit_reached = limit.is_some_and(|limit| total >= u64::from(limit));
            if complete || limit_reached {
                return (batches, complete);
            }
        }
    }

    /// Checks that no new frame other than presence arrives within `wait`.
    /// Frames skipped earlier do not count.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return;
            }
            match tokio::time::timeout(remaining, self.receive_new()).await {
                Err(_) => return,
                Ok(ServerMessage::Presence { .. }) => continue,
                Ok(other) => panic!("expected no frame, got {other:?}"),
            }
        }
    }
}

/// Returns the text of a message event.
pub fn message_text(event: &Event) -> &str {
    match &event.body {
        EventBody::Message { text, .. } => text,
        other => panic!("expected a message, got {other:?}"),
    }
}
