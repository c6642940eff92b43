import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api";
import { resolveLanguage, setLanguage, t } from "./i18n";
import { useEvent } from "./hooks";
import { ErrorNote } from "./components/common";
import { FirstRun } from "./screens/FirstRun";
import { Main } from "./screens/Main";
import { Settings } from "./screens/Settings";
import { InCall, IncomingCall } from "./screens/Call";
import { GroupCall } from "./screens/Room";
import type { AppStatus, CallState, ConversationSummary, RoomSummary, Settings as SettingsValue } from "./types";

/** How long the "call ended" view stays before returning to the chat. */
const ENDED_CALL_VISIBLE_MS = 4000;

/** Returns `rooms` with `room` added or replaced, or removed when its call has no users. */
export function withRoom(rooms: Map<string, RoomSummary>, room: RoomSummary): Map<string, RoomSummary> {
  const next = new Map(rooms);
  if (room.users.length === 0) next.delete(room.conversationId);
  else next.set(room.conversationId, room);
  return next;
}

export function App() {
  const [status, setStatus] = useState<AppStatus | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [systemLocale, setSystemLocale] = useState<string | null>(null);
  const [, setRenderedLanguage] = useState("");
  const [call, setCall] = useState<CallState>({ state: "idle" });
  const [callError, setCallError] = useState<unknown>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const [rooms, setRooms] = useState<Map<string, RoomSummary>>(new Map());

  // Connection changes counted, and the last one, so that a status loaded
  // while a change arrived does not bring back the older connection state.
  const connectionChanges = useRef(0);
  const lastConnection = useRef<AppStatus["connection"] | null>(null);

  const loadStatus = async () => {
    const changesBefore = connectionChanges.current;
    try {
      const loaded = await api.getStatus();
      const changedMeanwhile = connectionChanges.current !== changesBefore && lastConnection.current !== null;
      setStatus(changedMeanwhile ? { ...loaded, connection: lastConnection.current! } : loaded);
      setLoadError(null);
    } catch (err) {
      setLoadError(err);
    }
  };

  useEffect(() => {
    api
      .getSystemLocale()
      .catch(() => null)
      .then((locale) => setSystemLocale(locale ?? navigator.language ?? "en"));
    void loadStatus();
    // A call may already be ringing or running when the window (re)loads.
    api
      .getCallState()
      .then((state) => setCall((current) => (current.state === "idle" ? state : current)))
      .catch((err) => console.warn("getCallState failed", err));
  }, []);

  // The saved choice wins; without one the language follows the system locale.
  const chosenLanguage = status?.settings.language ?? null;
  useEffect(() => {
    const language = resolveLanguage(chosenLanguage ?? systemLocale ?? navigator.language);
    setLanguage(language);
    setRenderedLanguage(language);
  }, [chosenLanguage, systemLocale]);

  useEvent(
    "onConnectionChanged",
    (connection) => {
      connectionChanges.current += 1;
      lastConnection.current = connection;
      setStatus((current) => current && { ...current, connection });
      if (connection === "signedOut") void loadStatus();
    },
  );
  useEvent("onCallChanged", setCall);
  useEvent("onRoomChanged", (room) => setRooms((current) => withRoom(current, room)));

  // Calls that started before this window loaded are known to the backend only.
  const signedIn = status?.account != null;
  useEffect(() => {
    if (!signedIn) return;
    api
      .listRooms()
      .then((list) => setRooms((current) => list.reduce(withRoom, current)))
      .catch((err) => console.warn("listRooms failed", err));
  }, [signedIn]);

  useEffect(() => {
    if (call.state !== "ended") return;
    const timer = setTimeout(() => setCall((current) => (current === call ? { state: "idle" } : current)), ENDED_CALL_VISIBLE_MS);
    return () => clearTimeout(timer);
  }, [call]);

  const applySettings = async (next: SettingsValue) => {
    const saved = await api.updateSettings(next);
    setStatus((current) => current && { ...current, settings: saved });
  };

  const signOut = async () => {
    await api.signOut();
    setSettingsOpen(false);
    await loadStatus();
  };

  const startCall = async (conversation: ConversationSummary, video: boolean) => {
    setCallError(null);
    setCall((current) => (current.state === "idle" ? { state: "outgoing", peer: conversation.title, video } : current));
    try {
      await api.startCall(conversation.id, video);
    } catch (err) {
      setCall((current) => (current.state === "outgoing" ? { state: "idle" } : current));
      setCallError(err);
    }
  };

  const joinRoom = async (conversation: ConversationSummary, video: boolean) => {
    setCallError(null);
    setCall((current) => (current.state === "idle" ? { state: "joining", conversationId: conversation.id, title: conversation.title, video } : current));
    try {
      await api.joinRoom(conversation.id, video);
    } catch (err) {
      setCall((current) => (current.state === "joining" ? { state: "idle" } : current));
      setCallError(err);
    }
  };

  if (!status) {
    return (
      <main class="splash" data-testid="loading">
        {loadError ? (
          <div class="form">
            <ErrorNote error={loadError} />
            <button type="button" class="primary" data-testid="retry" onClick={loadStatus}>
              {t("common.retry")}
            </button>
          </div>
        ) : (
          <p class="muted">{t("common.loading")}</p>
        )}
      </main>
    );
  }

  if (!status.account) return <FirstRun onSignedIn={loadStatus} />;

  const callActive = call.state !== "idle";
  return (
    <>
      <Main
        account={status.account}
        connection={status.connection}
        callActive={callActive}
        rooms={rooms}
        onOpenSettings={() => setSettingsOpen(true)}
        onCall={startCall}
        onJoinRoom={joinRoom}
      />
      {(call.state === "joining" || call.state === "inRoom") && (
        <div class="call-layer">
          <GroupCall call={call} settings={status.settings} onApplySettings={applySettings} />
        </div>
      )}
      {call.state !== "idle" && call.state !== "incoming" && call.state !== "joining" && call.state !== "inRoom" && (
        <div class="call-layer">
          <InCall call={call} me={status.account.user} settings={status.settings} onApplySettings={applySettings} onDismiss={() => setCall({ state: "idle" })} />
        </div>
      )}
      {call.state === "incoming" && <IncomingCall caller={call.caller} video={call.video} />}
      {callError !== null && (
        <div class="toast" data-testid="call-error">
          <ErrorNote error={callError} />
          <button type="button" class="icon-button" aria-label={t("common.close")} onClick={() => setCallError(null)}>
            ×
          </button>
        </div>
      )}
      {settingsOpen && <Settings status={status} onApply={applySettings} onSignOut={signOut} onClose={() => setSettingsOpen(false)} />}
    </>
  );
}
