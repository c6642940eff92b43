//! Publishes presence changes to the users who share a conversation with the
//! user whose presence changed.

use std::collections::HashMap;
use std::sync::Arc;

use hearth_proto::ServerMessage;
use hearth_proto::chat::Presence;
use sqlx::SqlitePool;

use super::store;
use crate::signal::Hub;

/// Runs until the server's runtime stops.
pub async fn run(pool: SqlitePool, hub: Arc<Hub>) {
    // The presence each user was last published with; absent means offline.
    let mut published: HashMap<String, Presence> = HashMap::new();
    loop {
        for (user, presence) in hub.presence_changes().await {
            let previous = published.get(&user).copied().unwrap_or_default();
            if previous == presence {
                continue;
            }
            if presence == Presence::Offline {
                published.remove(&user);
            } else {
                published.insert(user.clone(), presence);
            }
            publish(&pool, &hub, user, presence).await;
        }
    }
}

async fn publish(pool: &SqlitePool, hub: &Hub, user: String, presence: Presence) {
    let audience = match pool.acquire().await {
        Ok(mut conn) => store::co_members(&mut conn, &user).await,
        Err(error) => Err(error),
    };
    let audience = match audience {
        Ok(audience) => audience,
        Err(error) => {
            tracing::warn!(%user, %error, "failed to look up who sees this user's presence");
            return;
        }
    };
    tracing::debug!(%user, ?presence, watchers = audience.len(), "presence changed");
    hub.push_to_users(
        audience.iter().map(String::as_str),
        ServerMessage::Presence { user, presence },
    );
}
