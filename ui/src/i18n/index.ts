// Translations for English and Simplified Chinese. `t` reads the current language,
// which follows the system locale until the user picks one in Settings.

import en from "./en.json";
import zhCN from "./zh-CN.json";
import { ERROR_CODES, toAppError } from "../api";

export type Language = "en" | "zh-CN";
export type Dictionary = Record<string, string>;

export const dictionaries: Record<Language, Dictionary> = { en, "zh-CN": zhCN };

let current: Language = "en";

/** Maps a BCP 47 tag such as "zh-Hans-CN" or "en-GB" to a supported language. */
export function resolveLanguage(tag: string | null | undefined): Language {
  if (tag && tag.toLowerCase().startsWith("zh")) return "zh-CN";
  return "en";
}

export function setLanguage(language: Language): void {
  current = language;
  if (typeof document !== "undefined") document.documentElement.lang = language;
}

export function currentLanguage(): Language {
  return current;
}

/**
 * Returns the message for `key` in the current language with each `{name}` replaced
 * by `params.name`. A key missing from both languages returns the key itself, so a
 * gap shows up on screen instead of an empty label.
 */
export function t(key: string, params?: Record<string, string | number>): string {
  const template = dictionaries[current][key] ?? dictionaries.en[key] ?? key;
  if (!params) return template;
  return template.replace(/\{(\w+)\}/g, (match, name: string) =>
    name in params ? String(params[name]) : match,
  );
}

/** Localizes any thrown value: the message for its error code, plus the detail. */
export function errorMessage(error: unknown): string {
  const appError = toAppError(error);
  const code = (ERROR_CODES as readonly string[]).includes(appError.code) ? appError.code : "internal";
  const message = t(`error.${code}`);
  if (!appError.detail) return message;
  return t("error.withDetail", { message, detail: appError.detail });
}
