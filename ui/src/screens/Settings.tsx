import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { t } from "../i18n";
import { CopyField, ErrorNote, Modal } from "../components/common";
import { DeviceFields } from "../components/DeviceFields";
import { NoiseSuppressionField } from "../components/NoiseSuppressionField";
import { SpeakerTest } from "../components/SpeakerTest";
import { VideoCanvas } from "../media/VideoCanvas";
import type { AppStatus, Renderer, Settings as SettingsValue } from "../types";

type Props = {
  status: AppStatus;
  onApply: (settings: SettingsValue) => Promise<void>;
  onSignOut: () => Promise<void>;
  onClose: () => void;
};

const RENDERER_LABELS: Record<Renderer, string> = {
  native: "settings.rendererNative",
  i420: "settings.rendererI420",
  rgba: "settings.rendererRgba",
};

const METER_INTERVAL_MS = 100;
/** The meter shows levels from this many dBFS up to 0 dBFS. */
const METER_FLOOR_DBFS = -60;

/** Maps a level in dBFS to the meter's fill fraction between 0 and 1. */
export function meterFraction(dbfs: number): number {
  if (!Number.isFinite(dbfs)) return 0;
  return Math.min(1, Math.max(0, (dbfs - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS));
}

export function Settings({ status, onApply, onSignOut, onClose }: Props) {
  const { settings } = status;
  const [error, setError] = useState<unknown>(null);

  const apply = async (next: SettingsValue) => {
    setError(null);
    try {
      await onApply(next);
    } catch (err) {
      setError(err);
    }
  };

  return (
    <Modal title={t("settings.title")} onClose={onClose} testId="settings" wide>
      <section class="settings-section">
        <h3>{t("settings.general")}</h3>
        <label class="field">
          <span class="field-label">{t("settings.language")}</span>
          <select
            value={settings.language ?? "system"}
            data-testid="settings-language"
            onChange={(e) => {
              const value = e.currentTarget.value;
              void apply({ ...settings, language: value === "system" ? null : value });
            }}
          >
            <option value="system">{t("settings.languageSystem")}</option>
            <option value="zh-CN">简体中文</option>
            <option value="en">English</option>
          </select>
        </label>
        <label class="check">
          <input
            type="checkbox"
            checked={settings.startAtLogin}
            data-testid="settings-start-at-login"
            onChange={(e) => apply({ ...settings, startAtLogin: e.currentTarget.checked })}
          />
          <span>{t("settings.startAtLogin")}</span>
        </label>
        <ErrorNote error={error} />
      </section>

      <section class="settings-section">
        <h3>{t("settings.devices")}</h3>
        <div class="settings-devices">
          <DeviceFields settings={settings} onApply={onApply} testPrefix="settings" />
          <div class="preview">
            <span class="field-label">{t("settings.preview")}</span>
            <div class="preview-frame">
              <VideoCanvas stream="selfView" renderer={settings.renderer} testId="self-video" onError={setError} />
              <span class="video-empty">{t("settings.previewEmpty")}</span>
            </div>
            <MicMeter />
            <SpeakerTest />
          </div>
        </div>
        <NoiseSuppressionField settings={settings} onApply={apply} testId="settings-noise-suppression" />
        <label class="field">
          <span class="field-label">{t("settings.renderer")}</span>
          <select
            value={settings.renderer}
            data-testid="settings-renderer"
            onChange={(e) => apply({ ...settings, renderer: e.currentTarget.value as Renderer })}
          >
            {status.renderers.map((renderer) => (
              <option key={renderer} value={renderer}>
                {t(RENDERER_LABELS[renderer])}
              </option>
            ))}
          </select>
        </label>
      </section>

      {status.embedded && (
        <section class="settings-section">
          <h3>{t("settings.embedded")}</h3>
          {status.embedded.joinUrls.map((url) => (
            <CopyField key={url} label={t("host.joinAddress")} value={url} testId="settings-join-url" />
          ))}
          <CopyField label={t("host.fingerprint")} value={status.embedded.fingerprint} testId="settings-fingerprint" />
        </section>
      )}

      {status.account && (
        <section class="settings-section">
          <h3>{t("settings.account")}</h3>
          <p class="muted">{t("settings.signedInAs", { user: status.account.user, server: status.account.server })}</p>
          <button type="button" class="secondary danger" data-testid="sign-out" onClick={() => onSignOut().catch(setError)}>
            {t("settings.signOut")}
          </button>
        </section>
      )}
    </Modal>
  );
}

/** Polls the microphone level while shown. */
function MicMeter() {
  const [level, setLevel] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const dbfs = await api.micLevel();
        if (stopped) return;
        setLevel(dbfs);
        timer = setTimeout(poll, METER_INTERVAL_MS);
      } catch (err) {
        // An error here (no microphone, usually) repeats on every poll, so stop.
        if (!stopped) setError(err);
      }
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);

  const fraction = level === null ? 0 : meterFraction(level);
  return (
    <div class="field">
      <span class="field-label">{t("settings.micLevel")}</span>
      <div
        class="meter"
        role="meter"
        aria-valuemin={METER_FLOOR_DBFS}
        aria-valuemax={0}
        aria-valuenow={level ?? METER_FLOOR_DBFS}
        data-testid="mic-level"
        data-dbfs={level ?? ""}
      >
        <div class="meter-fill" style={{ width: `${Math.round(fraction * 100)}%` }} />
      </div>
      <ErrorNote error={error} />
    </div>
  );
}
