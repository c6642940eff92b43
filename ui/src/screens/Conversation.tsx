import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { t } from "../i18n";
import { useEvent } from "../hooks";
import { describeCall, describeNotice, formatMessageTime } from "../format";
import { Avatar, ErrorNote, PresenceDot } from "../components/common";
import { peopleInCall } from "../room";
import type { ChatMessage, ConversationSummary, RoomSummary } from "../types";

/** Scrolling this close to the top loads the previous page of history. */
const LOAD_OLDER_THRESHOLD_PX = 80;
/** Messages from one sender closer together than this share one header. */
const GROUP_WINDOW_MS = 5 * 60 * 1000;

type Props = {
  conversation: ConversationSummary;
  me: string;
  callActive: boolean;
  /** The group call in progress in this conversation, if any. */
  room: RoomSummary | null;
  onCall: (video: boolean) => void;
  onJoinRoom: (video: boolean) => void;
};

/** Merges `incoming` into `messages`, keeping seq order and dropping duplicates. */
export function mergeMessages(messages: ChatMessage[], incoming: ChatMessage[]): ChatMessage[] {
  const bySeq = new Map<number, ChatMessage>();
  for (const m of messages) bySeq.set(m.seq, m);
  for (const m of incoming) bySeq.set(m.seq, m);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

export function ConversationView({ conversation, me, callActive, room, onCall, onJoinRoom }: Props) {
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [loading, setLoading] = useState<"initial" | "older" | null>("initial");
  const [reachedStart, setReachedStart] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const list = useRef<HTMLDivElement>(null);
  // How to restore the scroll position after the next render.
  const scrollPlan = useRef<{ kind: "bottom" } | { kind: "keep"; fromBottom: number } | null>(null);

  useEffect(() => {
    let cancelled = false;
    setMessages([]);
    setReachedStart(false);
    setLoading("initial");
    setError(null);
    api
      .history(conversation.id, null)
      .then((page) => {
        if (cancelled) return;
        scrollPlan.current = { kind: "bottom" };
        setMessages(page.messages);
        setReachedStart(!page.hasMore);
        setLoading(null);
        void api.markRead(conversation.id).catch((err) => console.warn("markRead failed", err));
      })
      .catch((err) => {
        if (cancelled) return;
        setError(err);
        setLoading(null);
      });
    return () => {
      cancelled = true;
    };
  }, [conversation.id]);

  // Messages that arrived while the window was hidden count as read once it shows.
  useEffect(() => {
    const onVisible = () => {
      if (document.visibilityState !== "visible") return;
      void api.markRead(conversation.id).catch((err) => console.warn("markRead failed", err));
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => document.removeEventListener("visibilitychange", onVisible);
  }, [conversation.id]);

  useLayoutEffect(() => {
    const element = list.current;
    const plan = scrollPlan.current;
    if (!element || !plan) return;
    scrollPlan.current = null;
    element.scrollTop = plan.kind === "bottom" ? element.scrollHeight : element.scrollHeight - plan.fromBottom;
  }, [messages]);

  useEvent(
    "onMessageReceived",
    ({ conversationId, message }) => {
      if (conversationId !== conversation.id) return;
      const element = list.current;
      const nearBottom = !element || element.scrollHeight - element.scrollTop - element.clientHeight < 120;
      if (nearBottom || message.sender === me) scrollPlan.current = { kind: "bottom" };
      setMessages((current) => mergeMessages(current, [message]));
      if (document.visibilityState !== "hidden") {
        void api.markRead(conversation.id).catch((err) => console.warn("markRead failed", err));
      }
    },
  );

  // An edit or deletion changes messages already shown: reload the newest page and
  // merge it, which replaces the changed messages by seq.
  useEvent("onConversationUpdated", ({ conversationId }) => {
    if (conversationId !== conversation.id) return;
    api
      .history(conversation.id, null)
      .then((page) => setMessages((current) => mergeMessages(current, page.messages)))
      .catch(setError);
  });

  const loadOlder = async () => {
    const element = list.current;
    if (loading || reachedStart || messages.length === 0 || !element) return;
    setLoading("older");
    try {
      const page = await api.history(conversation.id, messages[0].seq);
      setReachedStart(!page.hasMore);
      scrollPlan.current = { kind: "keep", fromBottom: element.scrollHeight - element.scrollTop };
      setMessages((current) => mergeMessages(current, page.messages));
    } catch (err) {
      setError(err);
    } finally {
      setLoading(null);
    }
  };

  // A direct conversation rings its peer; a group conversation has a call to join.
  const isGroup = conversation.kind === "group";
  const canCall = !callActive && !isGroup;
  const people = room ? peopleInCall(room.users) : 0;

  // A first page shorter than the view cannot be scrolled, so keep loading until it
  // overflows or the history starts.
  useEffect(() => {
    const element = list.current;
    if (!element || loading !== null || reachedStart || messages.length === 0) return;
    if (element.scrollHeight - element.clientHeight < LOAD_OLDER_THRESHOLD_PX) void loadOlder();
  }, [messages, loading, reachedStart]);

  const onScroll = () => {
    if (list.current && list.current.scrollTop < LOAD_OLDER_THRESHOLD_PX) void loadOlder();
  };

  return (
    <section class="conversation" data-testid="conversation" data-conversation-id={conversation.id}>
      <header class="conversation-header">
        <div class="conversation-title">
          <h2 data-testid="conversation-title">{conversation.title}</h2>
          {conversation.kind === "direct" && conversation.presence && (
            <span class="muted small">
              <PresenceDot presence={conversation.presence} /> {t(`presence.${conversation.presence}`)}
            </span>
          )}
        </div>
        <div class="header-actions">
          {isGroup ? (
            <>
              <button type="button" class="icon-button labelled" data-testid="room-join-voice" disabled={callActive} title={t("room.joinVoice")} onClick={() => onJoinRoom(false)}>
                <PhoneIcon /> <span>{t("room.joinVoice")}</span>
              </button>
              <button type="button" class="icon-button labelled primary-action" data-testid="room-join" disabled={callActive} title={t("room.join")} onClick={() => onJoinRoom(true)}>
                <CameraIcon /> <span>{t("room.join")}</span>
              </button>
            </>
          ) : (
            <>
              <button type="button" class="icon-button labelled" data-testid="call-voice" disabled={!canCall} title={t("conversation.voiceCall")} onClick={() => onCall(false)}>
                <PhoneIcon /> <span>{t("conversation.voiceCall")}</span>
              </button>
              <button type="button" class="icon-button labelled" data-testid="call-video" disabled={!canCall} title={t("conversation.videoCall")} onClick={() => onCall(true)}>
                <CameraIcon /> <span>{t("conversation.videoCall")}</span>
              </button>
            </>
          )}
        </div>
      </header>
      {room && people > 0 && (
        <div class="room-banner" role="status" data-testid="room-banner" data-count={people}>
          <span class="room-banner-dot" />
          <span data-testid="room-banner-text">{people === 1 ? t("room.inProgressOne") : t("room.inProgress", { count: people })}</span>
          <span class="muted small">{[...new Set(room.users)].join(", ")}</span>
        </div>
      )}

      <div class="message-list" ref={list} onScroll={onScroll} data-testid="message-list">
        {loading === "older" && <p class="list-note">{t("conversation.loadingOlder")}</p>}
        {reachedStart && messages.length > 0 && <p class="list-note">{t("conversation.start")}</p>}
        {loading === "initial" && <p class="list-note">{t("common.loading")}</p>}
        {loading === null && messages.length === 0 && !error && <p class="list-note">{t("conversation.empty")}</p>}
        {messages.map((message, i) => (
          <MessageRow key={message.seq} message={message} previous={messages[i - 1]} me={me} />
        ))}
      </div>
      <ErrorNote error={error} />
      <Composer conversationId={conversation.id} />
    </section>
  );
}

function MessageRow({ message, previous, me }: { message: ChatMessage; previous: ChatMessage | undefined; me: string }) {
  const time = formatMessageTime(message.atMs);
  if (message.notice) {
    return (
      <div class="message notice" data-testid="message" data-seq={message.seq} data-kind="notice">
        <span data-testid="message-text">{describeNotice(message.notice)}</span>
        <span class="muted small">{time}</span>
      </div>
    );
  }
  if (message.call) {
    const missed = message.call.outcome === "missed" || message.call.outcome === "declined";
    return (
      <div class={`message call-record ${missed ? "missed" : ""}`} data-testid="message" data-seq={message.seq} data-kind="call">
        {message.call.video ? <CameraIcon /> : <PhoneIcon />}
        <span data-testid="message-text">{describeCall(message.call)}</span>
        <span class="muted small">
          {message.sender === me ? t("message.you") : message.sender} · {time}
        </span>
      </div>
    );
  }

  const continued =
    previous !== undefined && !previous.call && !previous.notice && previous.sender === message.sender && message.atMs - previous.atMs < GROUP_WINDOW_MS;
  return (
    <div class={`message ${continued ? "continued" : ""} ${message.sender === me ? "mine" : ""}`} data-testid="message" data-seq={message.seq}>
      <div class="message-gutter">{continued ? <span class="hover-time">{time}</span> : <Avatar name={message.sender} size={34} />}</div>
      <div class="message-main">
        {!continued && (
          <div class="message-meta">
            <strong data-testid="message-sender">{message.sender}</strong>
            <time class="muted small" data-testid="message-time" dateTime={new Date(message.atMs).toISOString()}>
              {time}
            </time>
          </div>
        )}
        {message.deleted ? (
          <p class="message-text deleted" data-testid="message-text">
            {t("message.deleted")}
          </p>
        ) : (
          <p class="message-text" data-testid="message-text">
            {message.text}
            {message.edited && <span class="muted small edited"> {t("message.edited")}</span>}
          </p>
        )}
      </div>
    </div>
  );
}

/** The message box: Enter sends, Shift+Enter inserts a newline. */
function Composer({ conversationId }: { conversationId: string }) {
  const [draft, setDraft] = useState("");
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const input = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    setDraft("");
    setError(null);
    input.current?.focus();
  }, [conversationId]);

  const send = async () => {
    const text = draft.trim();
    if (!text || sending) return;
    setSending(true);
    setError(null);
    try {
      await api.sendMessage(conversationId, text);
      setDraft("");
    } catch (err) {
      setError(err);
    } finally {
      setSending(false);
      input.current?.focus();
    }
  };

  const onKeyDown = (e: KeyboardEvent) => {
    // While an input method is composing (Pinyin, for example) Enter confirms the
    // candidate, so it must not send.
    if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    e.preventDefault();
    void send();
  };

  return (
    <div class="composer">
      <ErrorNote error={error} testId="composer-error" />
      <div class="composer-row">
        <textarea
          ref={input}
          rows={Math.min(6, Math.max(1, draft.split("\n").length))}
          value={draft}
          placeholder={t("composer.placeholder")}
          data-testid="composer-input"
          onInput={(e) => setDraft(e.currentTarget.value)}
          onKeyDown={onKeyDown}
        />
        <button type="button" class="primary" data-testid="composer-send" disabled={sending || draft.trim() === ""} onClick={send}>
          {t("composer.send")}
        </button>
      </div>
    </div>
  );
}

export function PhoneIcon() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
      <path fill="currentColor" d="M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.46.57 3.58a1 1 0 0 1-.25 1z" />
    </svg>
  );
}

export function CameraIcon() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
      <path fill="currentColor" d="M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11z" />
    </svg>
  );
}
