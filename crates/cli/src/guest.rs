//! `hearth guest-link`: invite someone without an account into a
//! conversation's group call, or revoke such an invitation.

use clap::Args;

use crate::auth::SessionArgs;

#[derive(Args)]
pub struct GuestLinkArgs {
    /// The conversation, by name or id.
    conversation: Option<String>,
    /// How long the link works, in minutes (1 to 10080, 7 days). The server's
    /// default is 24 hours.
    #[arg(long)]
    minutes: Option<u64>,
    /// Revoke the invitation with this id instead of creating one. Guests
    /// who joined through it leave the call.
    #[arg(long, conflicts_with_all = ["conversation", "minutes"])]
    revoke: Option<hearth_proto::guest::GuestInvitationId>,
    #[command(flatten)]
    session: SessionArgs,
}

pub async fn run(args: GuestLinkArgs) -> anyhow::Result<()> {
    let session = crate::chat::open_online(&args.session).await?;
    let result = guest_link(&session, &args).await;
    session.close().await;
    result
}

async fn guest_link(
    session: &hearth_client::session::Session,
    args: &GuestLinkArgs,
) -> anyhow::Result<()> {
    if let Some(id) = args.revoke {
        session.revoke_guest_invitation(id).await?;
        println!("revoked guest invitation {id}");
        return Ok(());
    }
    let Some(conversation) = &args.conversation else {
        anyhow::bail!("missing CONVERSATION; name the conversation whose call the guest joins");
    };
    let conversation_id = session.resolve_conversation(conversation).await?;
    let ttl_secs = args.minutes.map(|minutes| minutes.saturating_mul(60));
    let invitation = session
        .create_guest_invitation(conversation_id, ttl_secs)
        .await?;
    let minutes_left = minutes_until(invitation.expires_at_ms);
    // The link is the one output a user needs, so it goes alone on stdout.
    println!("{}", session.guest_page_url(&invitation.page_path));
    eprintln!(
        "invitation {} expires in {minutes_left} minutes; revoke it with \
         `hearth guest-link --revoke {}`",
        invitation.id, invitation.id
    );
    Ok(())
}

/// Returns the whole minutes from now until a Unix time in milliseconds.
fn minutes_until(unix_ms: u64) -> u64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let left_ms = u128::from(unix_ms).saturating_sub(now_ms);
    u64::try_from(left_ms / 60_000).unwrap_or(u64::MAX)
}
