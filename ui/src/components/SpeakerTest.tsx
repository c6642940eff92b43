import { useState } from "preact/hooks";
import { api } from "../api";
import { t } from "../i18n";
import { ErrorNote } from "./common";

/** Plays a short recording on the chosen speaker, or on the call's speaker during a call. */
export function SpeakerTest() {
  const [playing, setPlaying] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const play = async () => {
    setError(null);
    setPlaying(true);
    try {
      await api.testSpeaker();
    } catch (err) {
      setError(err);
    } finally {
      setPlaying(false);
    }
  };

  return (
    <div class="field">
      <span class="field-label">{t("settings.speakerTest")}</span>
      <button type="button" class="secondary" data-testid="speaker-test" disabled={playing} onClick={() => void play()}>
        {playing ? t("settings.speakerTestPlaying") : t("settings.speakerTestPlay")}
      </button>
      <ErrorNote error={error} />
    </div>
  );
}
