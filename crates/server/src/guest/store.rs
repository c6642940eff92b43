//! Guest invitations and guest credentials in SQLite (migration 4).
//!
//! Both secrets are 32 random bytes in base64url, stored only as SHA-256
//! hashes, like access tokens. A credential is valid while its invitation is
//! neither expired nor revoked, so revoking an invitation also ends every
//! guest who joined through it.

use hearth_proto::chat::ConversationId;
use hearth_proto::guest::{GuestCredential, GuestInvitation, GuestInvitationId};
use sqlx::SqlitePool;

use crate::secret::Secret;
use crate::tokens::{hash_token, random_token};

pub const GUEST_TABLES: &str = "CREATE TABLE guest_invitations (
        id TEXT PRIMARY KEY,
        secret_hash BLOB NOT NULL UNIQUE,
        conversation_id TEXT NOT NULL REFERENCES conversations(id),
        created_by TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX guest_invitations_conversation ON guest_invitations(conversation_id);
    CREATE TABLE guest_credentials (
        token_hash BLOB PRIMARY KEY,
        invitation_id TEXT NOT NULL REFERENCES guest_invitations(id),
        guest_id TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );";

/// The reason an invitation secret or a guest credential was rejected.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("the guest invitation is unknown; check the link or ask a member for a new one")]
    UnknownInvitation,
    #[error("guest invitation {id} expired; ask a member of the conversation for a new link")]
    Expired { id: GuestInvitationId },
    #[error("guest invitation {id} was revoked; ask a member of the conversation for a new link")]
    Revoked { id: GuestInvitationId },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The access that a valid guest credential grants.
#[derive(Debug, Clone)]
pub struct GuestSession {
    pub invitation_id: GuestInvitationId,
    pub conversation_id: ConversationId,
    /// The guest's name in the room: `guest:<guest id>:<display name>`.
    pub user: String,
}

/// An invitation as stored, without its secret.
#[derive(Debug, Clone)]
pub struct StoredInvitation {
    pub id: GuestInvitationId,
    pub conversation_id: ConversationId,
    pub expires_at_ms: i64,
    pub revoked: bool,
}

#[derive(Clone)]
pub struct GuestStore {
    pool: SqlitePool,
}

/// Returns the room name of a guest, which no account name can equal because
/// account names never contain `:`.
pub fn guest_user(guest_id: &str, display_name: &str) -> String {
    format!("guest:{guest_id}:{display_name}")
}

fn now_ms() -> i64 {
    crate::chat::now_ms()
}

fn parse_id(text: &str) -> GuestInvitationId {
    // Only this module writes the column, always from a UUID.
    text.parse().expect("guest_invitations.id contains a UUID")
}

impl GuestStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Stores a new invitation and returns it with its page path, which
    /// contains the secret. The caller checked that `created_by` is a member.
    pub async fn create(
        &self,
        conversation_id: ConversationId,
        created_by: &str,
        ttl_secs: u64,
    ) -> Result<GuestInvitation, sqlx::Error> {
        let id = uuid::Uuid::new_v4();
        let secret = Secret::new(random_token());
        let now = now_ms();
        let ttl_ms = i64::try_from(ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_at_ms = now.saturating_add(ttl_ms);
        sqlx::query(
            "INSERT INTO guest_invitations
                (id, secret_hash, conversation_id, created_by, created_at_ms, expires_at_ms)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(hash_token(secret.expose()))
        .bind(conversation_id.to_string())
        .bind(created_by)
        .bind(now)
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(GuestInvitation {
            id,
            conversation_id,
            page_path: format!(
                "{}/{}",
                hearth_proto::guest::GUEST_PAGE_PATH,
                secret.expose()
            ),
            expires_at_ms: u64::try_from(expires_at_ms).unwrap_or(0),
        })
    }

    /// Returns an invitation by id, revoked and expired ones included.
    pub async fn invitation(
        &self,
        id: GuestInvitationId,
    ) -> Result<Option<StoredInvitation>, sqlx::Error> {
        let row: Option<(String, i64, bool)> = sqlx::query_as(
            "SELECT conversation_id, expires_at_ms, revoked FROM guest_invitations WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(conversation_id, expires_at_ms, revoked)| StoredInvitation {
                id,
                conversation_id: conversation_id
                    .parse()
                    .expect("guest_invitations.conversation_id contains a UUID"),
                expires_at_ms,
                revoked,
            },
        ))
    }

    pub async fn revoke(&self, id: GuestInvitationId) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE guest_invitations SET revoked = 1 WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Exchanges a valid invitation secret and a checked display name for a
    /// new guest credential.
    pub async fn issue_credential(
        &self,
        invitation_secret: &Secret,
        display_name: &str,
    ) -> Result<GuestCredential, GuestError> {
        let row: Option<(String, String, i64, bool)> = sqlx::query_as(
            "SELECT id, conversation_id, expires_at_ms, revoked FROM guest_invitations
             WHERE secret_hash = ?",
        )
        .bind(hash_token(invitation_secret.expose()))
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, conversation_id, expires_at_ms, revoked)) = row else {
            return Err(GuestError::UnknownInvitation);
        };
        let invitation_id = parse_id(&id);
        check_valid(invitation_id, expires_at_ms, revoked)?;

        let credential = Secret::new(random_token());
        let guest_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        sqlx::query(
            "INSERT INTO guest_credentials
                (token_hash, invitation_id, guest_id, display_name, created_at_ms)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(hash_token(credential.expose()))
        .bind(&id)
        .bind(&guest_id)
        .bind(display_name)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(GuestCredential {
            credential: credential.expose().to_owned(),
            conversation_id: conversation_id
                .parse()
                .expect("guest_invitations.conversation_id contains a UUID"),
            user: guest_user(&guest_id, display_name),
            expires_at_ms: u64::try_from(expires_at_ms).unwrap_or(0),
        })
    }

    /// Returns what a guest credential grants, or why it grants nothing.
    pub async fn authenticate(&self, credential: &Secret) -> Result<GuestSession, GuestError> {
        let row: Option<(String, String, i64, bool, String, String)> = sqlx::query_as(
            "SELECT i.id, i.conversation_id, i.expires_at_ms, i.revoked, c.guest_id, c.display_name
             FROM guest_credentials c JOIN guest_invitations i ON i.id = c.invitation_id
             WHERE c.token_hash = ?",
        )
        .bind(hash_token(credential.expose()))
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, conversation_id, expires_at_ms, revoked, guest_id, display_name)) = row
        else {
            return Err(GuestError::UnknownInvitation);
        };
        let invitation_id = parse_id(&id);
        check_valid(invitation_id, expires_at_ms, revoked)?;
        Ok(GuestSession {
            invitation_id,
            conversation_id: conversation_id
                .parse()
                .expect("guest_invitations.conversation_id contains a UUID"),
            user: guest_user(&guest_id, &display_name),
        })
    }
}

fn check_valid(id: GuestInvitationId, expires_at_ms: i64, revoked: bool) -> Result<(), GuestError> {
    if revoked {
        return Err(GuestError::Revoked { id });
    }
    if expires_at_ms <= now_ms() {
        return Err(GuestError::Expired { id });
    }
    Ok(())
}
