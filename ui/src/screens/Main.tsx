import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { t } from "../i18n";
import { useEvent } from "../hooks";
import { Avatar, ErrorNote, PresenceDot } from "../components/common";
import { CameraIcon, ConversationView } from "./Conversation";
import { NewConversation } from "./NewConversation";
import type { Account, Connection, ConversationSummary, RoomSummary } from "../types";

/** How long "Reconnected" stays up after the connection returns. */
const RECONNECTED_NOTICE_MS = 3000;

type Props = {
  account: Account;
  connection: Connection;
  callActive: boolean;
  /** The group calls in progress, by conversation id. */
  rooms: Map<string, RoomSummary>;
  onOpenSettings: () => void;
  onCall: (conversation: ConversationSummary, video: boolean) => void;
  onJoinRoom: (conversation: ConversationSummary, video: boolean) => void;
};

/** The main window: account, connection and conversations on the left, chat on the right. */
export function Main({ account, connection, callActive, rooms, onOpenSettings, onCall, onJoinRoom }: Props) {
  const [conversations, setConversations] = useState<ConversationSummary[] | null>(null);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const refresh = async () => {
    try {
      setConversations(await api.listConversations());
      setError(null);
    } catch (err) {
      setError(err);
    }
  };

  useEffect(() => {
    void refresh();
  }, [account.server, account.user]);

  useEffect(() => {
    if (connection === "online") void refresh();
  }, [connection]);

  useEvent("onConversationsChanged", () => void refresh());

  const selected = conversations?.find((c) => c.id === selectedId) ?? null;

  const open = (conversation: ConversationSummary) => {
    setSelectedId(conversation.id);
    // Reading a conversation clears its badge before the backend's list catches up.
    setConversations((list) => {
      const known = list ?? [];
      const present = known.some((c) => c.id === conversation.id);
      const next = present ? known : [conversation, ...known];
      return next.map((c) => (c.id === conversation.id ? { ...c, unread: 0 } : c));
    });
  };

  return (
    <div class="main" data-testid="main">
      <aside class="sidebar">
        <div class="account" data-testid="account">
          <Avatar name={account.user} size={36} />
          <div class="account-names">
            <strong data-testid="account-user">{account.user}</strong>
            <span class="muted small connection" data-testid="connection-state" data-connection={connection}>
              <span class={`connection-dot connection-${connection}`} /> {t(`connection.${connection}`)}
            </span>
          </div>
          <button type="button" class="icon-button" data-testid="settings-open" title={t("settings.title")} aria-label={t("settings.title")} onClick={onOpenSettings}>
            <GearIcon />
          </button>
        </div>

        <div class="sidebar-heading">
          <span>{t("sidebar.conversations")}</span>
          <button type="button" class="icon-button" data-testid="new-conversation" title={t("sidebar.new")} aria-label={t("sidebar.new")} onClick={() => setCreating(true)}>
            +
          </button>
        </div>

        <ul class="conversation-list" data-testid="conversation-list">
          {conversations === null && !error && <li class="list-note">{t("common.loading")}</li>}
          {conversations?.length === 0 && <li class="list-note">{t("sidebar.empty")}</li>}
          {conversations?.map((c) => (
            <li key={c.id}>
              <ConversationItem
                // The open conversation is read as messages arrive, even before the list reloads.
                conversation={c.id === selectedId ? { ...c, unread: 0 } : c}
                selected={c.id === selectedId}
                roomPeople={rooms.get(c.id)?.users.length ?? 0}
                onSelect={() => open(c)}
              />
            </li>
          ))}
        </ul>
        <ErrorNote error={error} />
      </aside>

      <div class="content">
        <StatusBanner connection={connection} />
        {selected ? (
          <ConversationView
            key={selected.id}
            conversation={selected}
            me={account.user}
            callActive={callActive}
            room={rooms.get(selected.id) ?? null}
            onCall={(video) => onCall(selected, video)}
            onJoinRoom={(video) => onJoinRoom(selected, video)}
          />
        ) : (
          <div class="placeholder" data-testid="no-conversation">
            <p class="muted">{t("conversation.placeholder")}</p>
          </div>
        )}
      </div>

      {creating && (
        <NewConversation
          me={account.user}
          onClose={() => setCreating(false)}
          onOpened={(c) => {
            setCreating(false);
            open(c);
          }}
        />
      )}
    </div>
  );
}

type ItemProps = { conversation: ConversationSummary; selected: boolean; roomPeople: number; onSelect: () => void };

function ConversationItem({ conversation: c, selected, roomPeople, onSelect }: ItemProps) {
  return (
    <button
      type="button"
      class={`conversation-item ${selected ? "selected" : ""} ${c.unread > 0 ? "has-unread" : ""}`}
      data-testid="conversation-item"
      data-conversation-id={c.id}
      aria-current={selected ? "true" : undefined}
      onClick={onSelect}
    >
      <span class="avatar-wrap">
        <Avatar name={c.title} size={36} />
        {c.kind === "direct" && <PresenceDot presence={c.presence} />}
      </span>
      <span class="conversation-text">
        <span class="conversation-line">
          <span class="conversation-name">{c.title}</span>
          {roomPeople > 0 && (
            <span class="room-live" data-testid="room-live" title={roomPeople === 1 ? t("room.inProgressOne") : t("room.inProgress", { count: roomPeople })}>
              <CameraIcon /> {roomPeople}
            </span>
          )}
        </span>
        <span class="conversation-line">
          <span class="muted small preview">{conversationSubtitle(c)}</span>
          {c.unread > 0 && (
            <span class="badge" data-testid="unread-badge" aria-label={t("sidebar.unread", { count: c.unread })}>
              {c.unread > 99 ? "99+" : c.unread}
            </span>
          )}
        </span>
      </span>
    </button>
  );
}

function conversationSubtitle(c: ConversationSummary): string {
  if (c.kind === "group") return t("sidebar.members", { count: c.members.length });
  return c.presence ? t(`presence.${c.presence}`) : "";
}

/**
 * Shows "Connection lost, reconnecting…" or "Offline" while not online, then
 * "Reconnected" for a moment once the connection returns.
 */
export function StatusBanner({ connection }: { connection: Connection }) {
  const [reconnected, setReconnected] = useState(false);
  const previous = useRef(connection);
  const everOnline = useRef(connection === "online");

  useEffect(() => {
    const was = previous.current;
    previous.current = connection;
    // The first connection after sign-in is not a reconnection.
    const returned = connection === "online" && was !== "online" && everOnline.current;
    if (connection === "online") everOnline.current = true;
    if (returned) {
      setReconnected(true);
      const timer = setTimeout(() => setReconnected(false), RECONNECTED_NOTICE_MS);
      return () => clearTimeout(timer);
    }
    setReconnected(false);
  }, [connection]);

  if (connection === "connecting") {
    return (
      <div class="banner warning" role="status" data-testid="status-banner" data-state="reconnecting">
        {t("banner.lost")}
      </div>
    );
  }
  if (connection === "untrustedCertificate") {
    return (
      <div class="banner error" role="status" data-testid="status-banner" data-state="untrustedCertificate">
        {t("banner.untrustedCertificate")}
      </div>
    );
  }
  if (connection === "offline") {
    return (
      <div class="banner error" role="status" data-testid="status-banner" data-state="offline">
        {t("banner.offline")}
      </div>
    );
  }
  if (reconnected) {
    return (
      <div class="banner success" role="status" data-testid="status-banner" data-state="reconnected">
        {t("banner.reconnected")}
      </div>
    );
  }
  return null;
}

function GearIcon() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
      <path
        fill="currentColor"
        d="M19.4 13a7.5 7.5 0 0 0 0-2l2.1-1.6-2-3.5-2.5 1a7.6 7.6 0 0 0-1.7-1L15 3.2h-4l-.4 2.7a7.6 7.6 0 0 0-1.7 1l-2.5-1-2 3.5L6.6 11a7.5 7.5 0 0 0 0 2l-2.1 1.6 2 3.5 2.5-1c.5.4 1.1.7 1.7 1l.4 2.7h4l.4-2.7c.6-.3 1.2-.6 1.7-1l2.5 1 2-3.5zM13 15.5A3.5 3.5 0 1 1 13 8.5a3.5 3.5 0 0 1 0 7z"
      />
    </svg>
  );
}
