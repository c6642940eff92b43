import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import en from "./en.json";
import zhCN from "./zh-CN.json";
import { ERROR_CODES, AppError } from "../api";
import { errorMessage, resolveLanguage, setLanguage, t } from "./index";

const dictionaries: Record<string, Record<string, string>> = { en, "zh-CN": zhCN };
const srcDir = join(__dirname, "..");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|tsx)$/.test(name) && !/\.test\.tsx?$/.test(name) ? [path] : [];
  });
}

/** Finds every literal key passed to t(), with the file it appears in. */
function keysUsedInSource(): { key: string; file: string }[] {
  const call = /\bt\(\s*(["'])([^"'`]+)\1/g;
  return sourceFiles(srcDir).flatMap((file) =>
    [...readFileSync(file, "utf8").matchAll(call)].map((m) => ({ key: m[2], file: relative(srcDir, file) })),
  );
}

function placeholders(text: string): string[] {
  return [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
}

// Keys built at run time from enum values, as `t(\`prefix.${value}\`)`.
const dynamicKeys = [
  ...ERROR_CODES.map((code) => `error.${code}`),
  ...["online", "connecting", "offline", "signedOut", "untrustedCertificate"].map((c) => `connection.${c}`),
  ...["online", "away", "inCall", "offline"].map((p) => `presence.${p}`),
  ...["remoteHangUp", "localHangUp", "declined", "missed", "failed", "connectionLost"].map((r) => `call.ended.${r}`),
  ...["good", "fair", "poor"].map((q) => `call.quality.${q}`),
  ...["rnnoise", "apm", "off"].map((m) => `noiseSuppression.${m}`),
  ...["video", "voice", "videoStarted", "voiceStarted"].map((k) => `callRecord.${k}`),
  // The renderer labels of the settings, looked up in a table by renderer.
  "settings.rendererNative",
  "settings.rendererI420",
  "settings.rendererRgba",
];

describe("translations", () => {
  it("have the same keys in both languages", () => {
    const enKeys = Object.keys(en).sort();
    const zhKeys = Object.keys(zhCN).sort();
    expect(enKeys.filter((k) => !(k in zhCN)), "keys missing from zh-CN.json").toEqual([]);
    expect(zhKeys.filter((k) => !(k in en)), "keys missing from en.json").toEqual([]);
  });

  it("have no empty messages", () => {
    for (const [language, dictionary] of Object.entries(dictionaries)) {
      const empty = Object.entries(dictionary).filter(([, text]) => text.trim() === "");
      expect(empty, `empty messages in ${language}`).toEqual([]);
    }
  });

  it("use the same placeholders in both languages", () => {
    for (const key of Object.keys(en) as (keyof typeof en)[]) {
      const zh = (zhCN as Record<string, string>)[key];
      if (zh === undefined) continue;
      expect(placeholders(zh), `placeholders of ${key}`).toEqual(placeholders(en[key]));
    }
  });

  it("cover every key used in the source", () => {
    const used = keysUsedInSource();
    expect(used.length).toBeGreaterThan(50);
    for (const [language, dictionary] of Object.entries(dictionaries)) {
      const missing = used.filter(({ key }) => !(key in dictionary)).map(({ key, file }) => `${key} (${file})`);
      expect(missing, `keys used in source but missing from ${language}`).toEqual([]);
    }
  });

  it("cover every key built from an enum value", () => {
    for (const [language, dictionary] of Object.entries(dictionaries)) {
      expect(dynamicKeys.filter((key) => !(key in dictionary)), `dynamic keys missing from ${language}`).toEqual([]);
    }
  });
});

describe("t", () => {
  it("interpolates named parameters", () => {
    setLanguage("en");
    expect(t("call.outgoing", { name: "alice" })).toBe("Calling alice…");
    setLanguage("zh-CN");
    expect(t("call.outgoing", { name: "alice" })).toBe("正在呼叫 alice…");
    setLanguage("en");
  });

  it("returns the key when no language has it", () => {
    expect(t("no.such.key")).toBe("no.such.key");
  });
});

describe("resolveLanguage", () => {
  it.each([
    ["zh-CN", "zh-CN"],
    ["zh-Hans-CN", "zh-CN"],
    ["zh", "zh-CN"],
    ["en-GB", "en"],
    ["de-DE", "en"],
    [null, "en"],
  ])("maps %s to %s", (tag, expected) => {
    expect(resolveLanguage(tag)).toBe(expected);
  });
});

describe("errorMessage", () => {
  it("localizes the code and keeps the detail", () => {
    setLanguage("zh-CN");
    const text = errorMessage(new AppError("unreachable", "connection refused"));
    expect(text).toContain("无法连接服务器");
    expect(text).toContain("connection refused");
    setLanguage("en");
  });

  it("shows only the message without a detail", () => {
    setLanguage("en");
    expect(errorMessage({ code: "wrongPassword", detail: null })).toBe("The user name or password is incorrect.");
  });

  it("never shows a raw string alone", () => {
    setLanguage("en");
    const text = errorMessage("thread 'main' panicked");
    expect(text.startsWith(t("error.internal"))).toBe(true);
    expect(text).toContain("panicked");
  });
});
