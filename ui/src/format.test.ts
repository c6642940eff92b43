import { describe, expect, it } from "vitest";
import { describeCall, formatDuration } from "./format";
import { setLanguage } from "./i18n";

describe("formatDuration", () => {
  it.each([
    [0, "0:00"],
    [151, "2:31"],
    [3600, "1:00:00"],
    [3725.9, "1:02:05"],
  ])("formats %s seconds as %s", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe("describeCall", () => {
  it("describes ended and missed calls in both languages", () => {
    setLanguage("en");
    expect(describeCall({ outcome: "ended", video: true, durationSecs: 151 })).toBe("Video call, 2:31");
    expect(describeCall({ outcome: "missed", video: false, durationSecs: null })).toBe("Missed call");
    setLanguage("zh-CN");
    expect(describeCall({ outcome: "ended", video: false, durationSecs: 65 })).toBe("语音通话 1:05");
    setLanguage("en");
  });
});
