import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { errorMessage, t } from "../i18n";
import { useNow } from "../hooks";
import { formatDuration } from "../format";
import { startRingtone } from "../media/ringtone";
import { VideoCanvas } from "../media/VideoCanvas";
import { Avatar, ErrorNote } from "../components/common";
import { DeviceFields } from "../components/DeviceFields";
import { NoiseSuppressionField } from "../components/NoiseSuppressionField";
import { CameraIcon, PhoneIcon } from "./Conversation";
import type { CallState, Settings, UserView } from "../types";

/** The ringing panel for an incoming call, with a synthesized ringtone. */
export function IncomingCall({ caller, video }: { caller: string; video: boolean }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => startRingtone(), []);

  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <div class="backdrop ringing">
      <section class="incoming" role="alertdialog" aria-label={t("incoming.title")} data-testid="incoming-call">
        <div class="pulse">
          <Avatar name={caller} size={72} />
        </div>
        <p class="muted small">{t("incoming.title")}</p>
        <h2 data-testid="incoming-caller">{caller}</h2>
        <p class="muted">{video ? t("incoming.video") : t("incoming.voice")}</p>
        <ErrorNote error={error} />
        <div class="incoming-actions">
          <button type="button" class="round decline" data-testid="incoming-decline" disabled={busy} onClick={() => run(() => api.declineCall())}>
            <PhoneIcon />
            <span>{t("incoming.decline")}</span>
          </button>
          <button type="button" class="round accept" data-testid="incoming-accept-voice" disabled={busy} onClick={() => run(() => api.acceptCall(false))}>
            <PhoneIcon />
            <span>{t("incoming.acceptVoice")}</span>
          </button>
          <button type="button" class="round accept" data-testid="incoming-accept-video" disabled={busy} onClick={() => run(() => api.acceptCall(true))}>
            <CameraIcon />
            <span>{t("incoming.acceptVideo")}</span>
          </button>
        </div>
      </section>
    </div>
  );
}

type ActiveCall = Exclude<CallState, { state: "idle" } | { state: "incoming" } | { state: "joining" } | { state: "inRoom" }>;

type InCallProps = {
  call: ActiveCall;
  /** The signed-in user, who cannot be added to their own call. */
  me: string;
  settings: Settings;
  onApplySettings: (settings: Settings) => Promise<void>;
  onDismiss: () => void;
};

function callPeer(call: ActiveCall): string {
  return call.peer;
}

/** The call view: remote video large, self view small, controls along the bottom. */
export function InCall({ call, me, settings, onApplySettings, onDismiss }: InCallProps) {
  const [error, setError] = useState<unknown>(null);
  const [showDevices, setShowDevices] = useState(false);
  const [showAdd, setShowAdd] = useState(false);
  const connected = call.state === "connected" ? call : null;
  const now = useNow(500, connected !== null);
  const peer = callPeer(call);

  const run = async (action: () => Promise<void>) => {
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(err);
    }
  };

  let statusLine: string;
  switch (call.state) {
    case "outgoing":
      statusLine = t("call.outgoing", { name: peer });
      break;
    case "connecting":
      statusLine = t("call.connecting", { name: peer });
      break;
    case "connected":
      statusLine = peer;
      break;
    case "ended":
      statusLine = t(`call.ended.${call.reason}`, { name: peer });
      if (call.detail) statusLine = t("error.withDetail", { message: statusLine, detail: call.detail });
      break;
  }

  return (
    <section class="call" data-testid="in-call" data-call-state={call.state}>
      <div class="stage">
        {call.state !== "ended" && <VideoCanvas stream="remote" renderer={settings.renderer} testId="remote-video" class="remote" onError={setError} />}
        <div class="stage-overlay">
          <Avatar name={peer} size={64} />
          <p data-testid="call-status">{statusLine}</p>
        </div>
        {call.state !== "ended" && (
          <div class="self-view" data-over-video>
            <VideoCanvas stream="selfView" renderer={settings.renderer} testId="self-video" class="self" layer={1} onError={setError} />
            {connected && !connected.cameraOn && <span class="camera-off">{t("call.cameraIsOff")}</span>}
          </div>
        )}
        {connected && (
          <div class="call-info" data-over-video>
            <span class="call-peer" data-testid="call-peer">
              {connected.peer}
            </span>
            <span class={`quality quality-${connected.quality}`} data-testid="call-quality" data-quality={connected.quality} title={t(`call.quality.${connected.quality}`)}>
              <span />
              <span />
              <span />
            </span>
            <span class="muted small">{t(`call.quality.${connected.quality}`)}</span>
            <span class="timer" data-testid="call-timer">
              {formatDuration((now - connected.startedAtMs) / 1000)}
            </span>
          </div>
        )}
        {connected?.muted && connected.talkingWhileMuted && (
          <p class="call-hint" role="status" data-testid="call-talking-while-muted" data-over-video>
            {t("call.talkingWhileMuted")}
          </p>
        )}
        {connected?.warning && (
          <p class="call-warning" role="status" data-testid="call-warning" data-over-video>
            {errorMessage(connected.warning)}
          </p>
        )}
      </div>

      {showAdd && connected && <AddPerson me={me} peer={peer} onDone={() => setShowAdd(false)} />}
      {showDevices && call.state !== "ended" && (
        <div class="call-devices" data-testid="call-devices">
          <DeviceFields settings={settings} onApply={onApplySettings} testPrefix="call" />
          <NoiseSuppressionField settings={settings} onApply={onApplySettings} testId="call-noise-suppression" />
        </div>
      )}
      <ErrorNote error={error} />

      <div class="call-controls">
        {call.state === "ended" ? (
          <button type="button" class="secondary" data-testid="call-dismiss" onClick={onDismiss}>
            {t("common.close")}
          </button>
        ) : (
          <>
            <button
              type="button"
              class={`control ${connected?.muted ? "active" : ""}`}
              data-testid="call-mute"
              aria-pressed={connected?.muted ?? false}
              disabled={!connected}
              onClick={() => connected && run(() => api.setMuted(!connected.muted))}
            >
              {connected?.muted ? t("call.unmute") : t("call.mute")}
            </button>
            <button
              type="button"
              class={`control ${connected && !connected.cameraOn ? "active" : ""}`}
              data-testid="call-camera"
              aria-pressed={connected ? !connected.cameraOn : false}
              disabled={!connected}
              onClick={() => connected && run(() => api.setCameraOn(!connected.cameraOn))}
            >
              {connected && !connected.cameraOn ? t("call.cameraOn") : t("call.cameraOff")}
            </button>
            <button type="button" class={`control ${showDevices ? "active" : ""}`} data-testid="call-devices-toggle" aria-pressed={showDevices} onClick={() => setShowDevices(!showDevices)}>
              {t("call.devices")}
            </button>
            <button
              type="button"
              class={`control ${showAdd ? "active" : ""}`}
              data-testid="call-add-toggle"
              aria-pressed={showAdd}
              disabled={!connected}
              onClick={() => setShowAdd(!showAdd)}
            >
              {t("call.addPerson")}
            </button>
            <button type="button" class="control hangup" data-testid="call-hangup" onClick={() => run(() => api.hangUp())}>
              <PhoneIcon />
              <span>{t("call.hangUp")}</span>
            </button>
          </>
        )}
      </div>
    </section>
  );
}

/** Picks someone to add to a one-to-one call, which then moves into a group call. */
function AddPerson({ me, peer, onDone }: { me: string; peer: string; onDone: () => void }) {
  const [users, setUsers] = useState<UserView[] | null>(null);
  const [choice, setChoice] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    api
      .listUsers()
      .then((all) => {
        const others = all.filter((u) => u.name !== me && u.name !== peer);
        setUsers(others);
        setChoice(others[0]?.name ?? "");
      })
      .catch(setError);
  }, [me, peer]);

  const add = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.addToCall(choice);
      onDone();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <div class="call-devices" data-testid="call-add" role="group" aria-label={t("call.addPersonTitle")}>
      <p>
        <strong>{t("call.addPersonTitle")}</strong>
      </p>
      <p class="muted small">{t("call.addPersonHint")}</p>
      {users === null && !error && <p class="muted">{t("common.loading")}</p>}
      {users !== null && users.length === 0 && <p class="muted">{t("call.addPersonNoOne")}</p>}
      {users !== null && users.length > 0 && (
        <label class="field">
          <span>{t("call.addPersonPick")}</span>
          <select data-testid="call-add-user" value={choice} onChange={(e) => setChoice((e.target as HTMLSelectElement).value)}>
            {users.map((u) => (
              <option value={u.name} key={u.name}>
                {u.name}
              </option>
            ))}
          </select>
        </label>
      )}
      <ErrorNote error={error} />
      <button type="button" class="primary" data-testid="call-add-confirm" disabled={busy || !choice} onClick={add}>
        {t("call.addPersonConfirm")}
      </button>
    </div>
  );
}
