import { currentLanguage, t } from "./i18n";
import type { CallRecord, Notice } from "./types";

/** Formats a duration as m:ss, or h:mm:ss from one hour on. */
export function formatDuration(totalSeconds: number): string {
  const seconds = Math.max(0, Math.floor(totalSeconds));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const ss = String(s).padStart(2, "0");
  if (h > 0) return `${h}:${String(m).padStart(2, "0")}:${ss}`;
  return `${m}:${ss}`;
}

/** Formats a message time: the clock time today, the date and time before today. */
export function formatMessageTime(atMs: number, nowMs: number = Date.now()): string {
  const at = new Date(atMs);
  const now = new Date(nowMs);
  const sameDay = at.toDateString() === now.toDateString();
  const options: Intl.DateTimeFormatOptions = sameDay
    ? { hour: "2-digit", minute: "2-digit" }
    : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  return new Intl.DateTimeFormat(currentLanguage(), options).format(at);
}

/** Describes a call record as a history line, such as "Video call, 2:31". */
export function describeCall(record: CallRecord): string {
  const kind = record.video ? "video" : "voice";
  switch (record.outcome) {
    case "missed":
      return t("callRecord.missed");
    case "declined":
      return t("callRecord.declined");
    case "started":
      return t(`callRecord.${kind}Started`);
    case "ended":
      if (record.durationSecs === null) return t(`callRecord.${kind}Started`);
      return t(`callRecord.${kind}`, { duration: formatDuration(record.durationSecs) });
  }
}

/** Describes a membership or name change as a history line. */
export function describeNotice(notice: Notice): string {
  switch (notice.kind) {
    case "memberAdded":
      return t("notice.memberAdded", { user: notice.user });
    case "memberRemoved":
      return t("notice.memberRemoved", { user: notice.user });
    case "renamed":
      return t("notice.renamed", { name: notice.name });
  }
}
