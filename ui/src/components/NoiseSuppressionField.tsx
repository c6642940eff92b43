import { useState } from "preact/hooks";
import { t } from "../i18n";
import { ErrorNote } from "./common";
import type { NoiseSuppressionMode, Settings } from "../types";

type Props = {
  settings: Settings;
  onApply: (settings: Settings) => Promise<void>;
  testId: string;
};

const MODES: NoiseSuppressionMode[] = ["rnnoise", "apm", "off"];

/** Picks the call's noise suppression. During a call the change applies from the next frame. */
export function NoiseSuppressionField({ settings, onApply, testId }: Props) {
  const [error, setError] = useState<unknown>(null);

  const choose = async (mode: NoiseSuppressionMode) => {
    setError(null);
    try {
      await onApply({ ...settings, noiseSuppression: mode });
    } catch (err) {
      setError(err);
    }
  };

  return (
    <label class="field">
      <span class="field-label">{t("noiseSuppression.label")}</span>
      <select value={settings.noiseSuppression} data-testid={testId} onChange={(e) => void choose(e.currentTarget.value as NoiseSuppressionMode)}>
        {MODES.map((mode) => (
          <option key={mode} value={mode}>
            {t(`noiseSuppression.${mode}`)}
          </option>
        ))}
      </select>
      <ErrorNote error={error} />
    </label>
  );
}
