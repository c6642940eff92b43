import type { RefObject } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { errorMessage, t } from "../i18n";
import { useNow } from "../hooks";
import { formatDuration } from "../format";
import { gridShape, roomLayout } from "../room";
import { VideoCanvas } from "../media/VideoCanvas";
import { Avatar, ErrorNote } from "../components/common";
import { DeviceFields } from "../components/DeviceFields";
import { NoiseSuppressionField } from "../components/NoiseSuppressionField";
import { PhoneIcon } from "./Conversation";
import type { RoomCallView, RoomMemberView, ScreenSourceView, Settings, StreamKey } from "../types";

export type GroupCallState = { state: "joining"; conversationId: string; title: string; video: boolean } | ({ state: "inRoom" } & RoomCallView);

type Props = {
  call: GroupCallState;
  settings: Settings;
  onApplySettings: (settings: Settings) => Promise<void>;
};

/** Tracks an element's size in CSS pixels. */
function useSize<T extends HTMLElement>(): [RefObject<T | null>, { width: number; height: number } | null] {
  const ref = useRef<T>(null);
  const [size, setSize] = useState<{ width: number; height: number } | null>(null);
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    const observer = new ResizeObserver(() => {
      const rect = element.getBoundingClientRect();
      setSize({ width: rect.width, height: rect.height });
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, [ref.current]);
  return [ref, size];
}

/** Shows a group call: a grid of participants, or a shared screen large with the tiles beside it. */
export function GroupCall({ call, settings, onApplySettings }: Props) {
  const [error, setError] = useState<unknown>(null);
  const [showDevices, setShowDevices] = useState(false);
  const [picking, setPicking] = useState(false);
  const room = call.state === "inRoom" ? call : null;
  const now = useNow(500, room !== null);

  const run = async (action: () => Promise<void>) => {
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <section class="call room" data-testid="group-call" data-call-state={call.state}>
      <header class="room-header">
        <strong data-testid="room-title">{call.title}</strong>
        {room && (
          <>
            <span class="muted small" data-testid="room-count" data-count={room.participants.length}>
              {t("room.participants", { count: room.participants.length })}
            </span>
            <span class={`quality quality-${room.quality}`} data-quality={room.quality} title={t(`call.quality.${room.quality}`)}>
              <span />
              <span />
              <span />
            </span>
            <span class="timer" data-testid="call-timer">
              {formatDuration((now - room.startedAtMs) / 1000)}
            </span>
            {room.warning && (
              <span class="room-warning" role="status" data-testid="call-warning">
                {errorMessage(room.warning)}
              </span>
            )}
          </>
        )}
      </header>

      {room ? (
        <RoomStage call={room} settings={settings} onError={setError} />
      ) : (
        <div class="stage">
          <div class="stage-overlay">
            <p data-testid="call-status">{t("room.joining", { title: call.title })}</p>
          </div>
        </div>
      )}

      {room?.muted && room.talkingWhileMuted && (
        <p class="call-hint" role="status" data-testid="call-talking-while-muted" data-over-video>
          {t("call.talkingWhileMuted")}
        </p>
      )}
      {showDevices && (
        <div class="call-devices" data-testid="call-devices">
          <DeviceFields settings={settings} onApply={onApplySettings} testPrefix="call" />
          <NoiseSuppressionField settings={settings} onApply={onApplySettings} testId="call-noise-suppression" />
        </div>
      )}
      <ErrorNote error={error} testId="room-error" />

      <div class="call-controls">
        <button
          type="button"
          class={`control ${room?.muted ? "active" : ""}`}
          data-testid="call-mute"
          aria-pressed={room?.muted ?? false}
          disabled={!room}
          onClick={() => room && run(() => api.setMuted(!room.muted))}
        >
          {room?.muted ? t("call.unmute") : t("call.mute")}
        </button>
        <button
          type="button"
          class={`control ${room && !room.cameraOn ? "active" : ""}`}
          data-testid="call-camera"
          aria-pressed={room ? !room.cameraOn : false}
          disabled={!room || !room.video}
          onClick={() => room && run(() => api.setCameraOn(!room.cameraOn))}
        >
          {room && !room.cameraOn ? t("call.cameraOn") : t("call.cameraOff")}
        </button>
        {room?.sharing ? (
          <button type="button" class="control active" data-testid="room-stop-share" onClick={() => run(() => api.stopScreenShare())}>
            {t("room.stopShare")}
          </button>
        ) : (
          <button type="button" class="control" data-testid="room-share" disabled={!room} onClick={() => setPicking(true)}>
            {t("room.share")}
          </button>
        )}
        <button type="button" class={`control ${showDevices ? "active" : ""}`} data-testid="call-devices-toggle" aria-pressed={showDevices} onClick={() => setShowDevices(!showDevices)}>
          {t("call.devices")}
        </button>
        <button type="button" class="control hangup" data-testid="room-leave" onClick={() => run(() => api.hangUp())}>
          <PhoneIcon />
          <span>{t("room.leave")}</span>
        </button>
      </div>

      {picking && room && <SharePicker onClose={() => setPicking(false)} />}
    </section>
  );
}

/** Lays out the tiles in a grid, or the shared screen large with the tiles in a column beside it. */
function RoomStage({ call, settings, onError }: { call: RoomCallView; settings: Settings; onError: (error: unknown) => void }) {
  const layout = roomLayout(call);
  const [gridRef, size] = useSize<HTMLDivElement>();
  const owner = layout.screenOwner;

  if (owner) {
    const ownShare = owner.id === call.selfId;
    return (
      <div class="room-stage with-screen">
        <div class="screen-view" data-testid="room-screen" data-participant={owner.id} data-own={ownShare ? "true" : "false"}>
          <VideoCanvas stream={`screen:${owner.id}`} renderer={settings.renderer} testId="screen-video" class="screen" onError={onError} />
          <span class="screen-label" data-testid="room-screen-label" data-over-video>
            {ownShare ? t("room.sharingYou") : t("room.sharingOther", { name: owner.user })}
          </span>
        </div>
        <div class="room-side" data-testid="room-side">
          {layout.tiles.map((member) => (
            <Tile key={member.id} member={member} call={call} settings={settings} onError={onError} />
          ))}
        </div>
      </div>
    );
  }

  const shape = gridShape(layout.tiles.length, size?.width, size?.height);
  return (
    <div
      class="room-stage room-grid"
      ref={gridRef}
      data-testid="room-grid"
      data-columns={shape.columns}
      style={{ gridTemplateColumns: `repeat(${shape.columns}, minmax(0, 1fr))`, gridTemplateRows: `repeat(${shape.rows}, minmax(0, 1fr))` }}
    >
      {layout.tiles.map((member) => (
        <Tile key={member.id} member={member} call={call} settings={settings} onError={onError} />
      ))}
    </div>
  );
}

/** Shows one participant: their video or avatar, name, muted and camera-off marks, and the speaker highlight. */
function Tile({ member, call, settings, onError }: { member: RoomMemberView; call: RoomCallView; settings: Settings; onError: (error: unknown) => void }) {
  const isSelf = member.id === call.selfId;
  const muted = isSelf ? call.muted : member.audioMuted;
  const cameraOff = isSelf ? !call.cameraOn : member.videoOff;
  const speaking = member.id === call.activeSpeaker;
  const stream: StreamKey = isSelf ? "selfView" : `participant:${member.id}`;
  return (
    <div
      class={`tile ${speaking ? "speaking" : ""}`}
      data-testid="room-tile"
      data-participant={member.id}
      data-user={member.user}
      data-self={isSelf ? "true" : "false"}
      data-speaking={speaking ? "true" : "false"}
    >
      {cameraOff ? (
        <div class="tile-avatar">
          <Avatar name={member.user} size={56} />
        </div>
      ) : (
        <VideoCanvas stream={stream} renderer={settings.renderer} testId={isSelf ? "self-video" : "tile-video"} class="tile-video" onError={onError} />
      )}
      <div class="tile-label">
        <span class="tile-name" data-testid="tile-name" data-over-video>
          {isSelf ? t("room.you", { name: member.user }) : member.user}
        </span>
        {muted && (
          <span class="tile-mark" data-testid="tile-muted" title={t("room.muted")} data-over-video>
            <MicOffIcon />
          </span>
        )}
        {cameraOff && (
          <span class="tile-mark" data-testid="tile-camera-off" title={t("call.cameraIsOff")} data-over-video>
            {t("call.cameraIsOff")}
          </span>
        )}
        {speaking && <span class="sr-only">{t("room.speaking")}</span>}
      </div>
    </div>
  );
}

/** Lists the screens and windows with thumbnails; a click shares one. */
function SharePicker({ onClose }: { onClose: () => void }) {
  const [sources, setSources] = useState<ScreenSourceView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [starting, setStarting] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    api
      .listScreenSources()
      .then((found) => !cancelled && setSources(found))
      .catch((err) => !cancelled && setError(err));
    return () => {
      cancelled = true;
    };
  }, []);

  const share = async (source: ScreenSourceView) => {
    setStarting(source.id);
    setError(null);
    try {
      await api.startScreenShare(source.id);
      onClose();
    } catch (err) {
      setError(err);
      setStarting(null);
    }
  };

  const screens = sources?.filter((s) => s.kind === "screen") ?? [];
  const windows = sources?.filter((s) => s.kind === "window") ?? [];
  const section = (title: string, list: ScreenSourceView[]) =>
    list.length > 0 && (
      <>
        <h3>{title}</h3>
        <div class="share-sources">
          {list.map((source, index) => (
            <button
              type="button"
              key={source.id}
              class="share-source"
              data-testid="share-source"
              data-source-id={source.id}
              data-kind={source.kind}
              disabled={starting !== null}
              onClick={() => share(source)}
            >
              <Thumbnail source={source} />
              <span class="share-source-title">{sourceTitle(source, index)}</span>
              <span class="muted small">
                {source.width}×{source.height}
              </span>
            </button>
          ))}
        </div>
      </>
    );

  return (
    <div class="backdrop">
      <section class="modal wide share-picker" role="dialog" aria-label={t("share.title")} data-testid="share-picker">
        <header class="modal-header">
          <h2>{t("share.title")}</h2>
          <button type="button" class="icon-button" data-testid="share-cancel" aria-label={t("common.close")} onClick={onClose}>
            ×
          </button>
        </header>
        <div class="modal-body">
          {sources === null && !error && <p class="muted">{t("share.loading")}</p>}
          {sources !== null && sources.length === 0 && <p class="muted">{t("share.none")}</p>}
          {section(t("share.screens"), screens)}
          {section(t("share.windows"), windows)}
          <ErrorNote error={error} testId="share-error" />
        </div>
      </section>
    </div>
  );
}

function sourceTitle(source: ScreenSourceView, index: number): string {
  if (source.title.trim() !== "") return source.title;
  return source.kind === "screen" ? t("share.untitledScreen", { number: index + 1 }) : t("share.untitledWindow");
}

/** Draws a source's RGB thumbnail into a canvas. */
function Thumbnail({ source }: { source: ScreenSourceView }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const thumbnail = source.thumbnail;
  useEffect(() => {
    const canvas = ref.current;
    const context = canvas?.getContext("2d");
    if (!canvas || !context || !thumbnail) return;
    const rgb = Uint8Array.from(atob(thumbnail.rgbBase64), (c) => c.charCodeAt(0));
    const image = context.createImageData(thumbnail.width, thumbnail.height);
    for (let i = 0, j = 0; i + 2 < rgb.length && j < image.data.length; i += 3, j += 4) {
      image.data[j] = rgb[i];
      image.data[j + 1] = rgb[i + 1];
      image.data[j + 2] = rgb[i + 2];
      image.data[j + 3] = 255;
    }
    context.putImageData(image, 0, 0);
  }, [thumbnail?.rgbBase64]);
  if (!thumbnail) return <div class="share-thumbnail empty" data-testid="share-thumbnail" data-empty="true" />;
  return <canvas ref={ref} class="share-thumbnail" data-testid="share-thumbnail" width={thumbnail.width} height={thumbnail.height} />;
}

function MicOffIcon() {
  return (
    <svg viewBox="0 0 24 24" width="14" height="14" aria-hidden="true">
      <path fill="currentColor" d="M19 11a7 7 0 0 1-1.1 3.8l-1.5-1.5c.4-.7.6-1.5.6-2.3zm-4 .2L9 5.2V5a3 3 0 0 1 6 0zM4.3 3 3 4.3l6 6V11a3 3 0 0 0 4.4 2.6l1.6 1.6A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.9V21h2v-3.1a7 7 0 0 0 3.5-1.4l3.2 3.2 1.3-1.3z" />
    </svg>
  );
}
