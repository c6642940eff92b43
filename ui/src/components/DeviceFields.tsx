import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { t } from "../i18n";
import { ErrorNote } from "./common";
import type { Devices, Settings, VideoSource } from "../types";

type Props = {
  settings: Settings;
  onApply: (settings: Settings) => Promise<void>;
  /** Prefix for test ids, so the Settings and in-call pickers stay distinct. */
  testPrefix: string;
};

function sourceValue(source: VideoSource): string {
  if (source.kind === "camera") return `camera:${source.id}`;
  return source.kind;
}

/** Pickers for camera (or a video file), microphone and speaker; changes apply at once. */
export function DeviceFields({ settings, onApply, testPrefix }: Props) {
  const [devices, setDevices] = useState<Devices | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [path, setPath] = useState(settings.videoSource.kind === "file" ? settings.videoSource.path : "");
  const [fileMode, setFileMode] = useState(settings.videoSource.kind === "file");

  useEffect(() => {
    api.listDevices().then(setDevices).catch(setError);
  }, []);

  useEffect(() => {
    if (settings.videoSource.kind === "file") {
      setPath(settings.videoSource.path);
      setFileMode(true);
    }
  }, [settings.videoSource]);

  const apply = async (next: Settings) => {
    setError(null);
    try {
      await onApply(next);
    } catch (err) {
      setError(err);
    }
  };

  const onSource = (value: string) => {
    if (value === "file") {
      setFileMode(true);
      if (path.trim()) void apply({ ...settings, videoSource: { kind: "file", path: path.trim() } });
      return;
    }
    setFileMode(false);
    const source: VideoSource = value === "none" ? { kind: "none" } : { kind: "camera", id: value.slice("camera:".length) };
    void apply({ ...settings, videoSource: source });
  };

  const applyPath = (value: string) => {
    const trimmed = value.trim();
    if (!trimmed || (settings.videoSource.kind === "file" && settings.videoSource.path === trimmed)) return;
    void apply({ ...settings, videoSource: { kind: "file", path: trimmed } });
  };

  const browse = async () => {
    setError(null);
    try {
      const picked = await api.pickVideoFile();
      if (!picked) return;
      setPath(picked);
      setFileMode(true);
      await onApply({ ...settings, videoSource: { kind: "file", path: picked } });
    } catch (err) {
      setError(err);
    }
  };

  const selectedSource = fileMode ? "file" : sourceValue(settings.videoSource);
  const cameras = devices?.cameras ?? [];
  const knownCamera = settings.videoSource.kind !== "camera" || cameras.some((c) => c.id === (settings.videoSource as { id: string }).id);

  return (
    <div class="device-fields">
      <label class="field">
        <span class="field-label">{t("devices.camera")}</span>
        <select value={selectedSource} data-testid={`${testPrefix}-camera`} onChange={(e) => onSource(e.currentTarget.value)}>
          {cameras.map((c) => (
            <option key={c.id} value={`camera:${c.id}`}>
              {c.name}
            </option>
          ))}
          {!knownCamera && settings.videoSource.kind === "camera" && (
            <option value={sourceValue(settings.videoSource)}>{t("devices.unavailable")}</option>
          )}
          <option value="file">{t("devices.videoFile")}</option>
          <option value="none">{t("devices.noCamera")}</option>
        </select>
      </label>

      {fileMode && (
        <div class="field">
          <span class="field-label">{t("devices.videoFilePath")}</span>
          <div class="copy-row">
            <input
              value={path}
              class="mono"
              placeholder={t("devices.videoFilePlaceholder")}
              data-testid={`${testPrefix}-video-file-path`}
              onInput={(e) => setPath(e.currentTarget.value)}
              onBlur={(e) => applyPath(e.currentTarget.value)}
              onKeyDown={(e) => e.key === "Enter" && applyPath(e.currentTarget.value)}
            />
            <button type="button" class="secondary" data-testid={`${testPrefix}-video-file-browse`} onClick={browse}>
              {t("devices.browse")}
            </button>
          </div>
        </div>
      )}

      <label class="field">
        <span class="field-label">{t("devices.microphone")}</span>
        <select
          value={settings.microphone ?? ""}
          data-testid={`${testPrefix}-microphone`}
          onChange={(e) => apply({ ...settings, microphone: e.currentTarget.value || null })}
        >
          <option value="">{t("devices.systemDefault")}</option>
          {devices?.microphones.map((m) => (
            <option key={m.id} value={m.id}>
              {m.name}
            </option>
          ))}
        </select>
      </label>

      <label class="field">
        <span class="field-label">{t("devices.speaker")}</span>
        <select
          value={settings.speaker ?? ""}
          data-testid={`${testPrefix}-speaker`}
          onChange={(e) => apply({ ...settings, speaker: e.currentTarget.value || null })}
        >
          <option value="">{t("devices.systemDefault")}</option>
          {devices?.speakers.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </select>
      </label>
      <ErrorNote error={error} />
    </div>
  );
}
