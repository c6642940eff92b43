import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorMessage, t } from "../i18n";
import type { Problem } from "../validate";
import type { Presence } from "../types";

/** An inline error in the user's language, or nothing when `error` is null. */
export function ErrorNote({ error, testId = "error" }: { error: unknown; testId?: string }) {
  if (error === null || error === undefined) return null;
  return (
    <p class="error-note" role="alert" data-testid={testId}>
      {errorMessage(error)}
    </p>
  );
}

type FieldProps = {
  label: string;
  value: string;
  onInput: (value: string) => void;
  testId: string;
  problem?: Problem;
  type?: "text" | "password";
  placeholder?: string;
  autoFocus?: boolean;
  autoComplete?: string;
  disabled?: boolean;
};

/** A labelled text input with its validation message underneath. */
export function Field(props: FieldProps) {
  const ref = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (props.autoFocus) ref.current?.focus();
  }, []);
  const problemId = `${props.testId}-problem`;
  const inputProps = {
    ref,
    value: props.value,
    placeholder: props.placeholder,
    autoComplete: props.autoComplete ?? "off",
    spellcheck: false,
    disabled: props.disabled,
    "aria-invalid": props.problem ? true : undefined,
    "aria-describedby": props.problem ? problemId : undefined,
    "data-testid": props.testId,
    onInput: (e: Event) => props.onInput((e.currentTarget as HTMLInputElement).value),
  };
  return (
    <label class="field">
      <span class="field-label">{props.label}</span>
      {props.type === "password" ? <input type="password" {...inputProps} /> : <input type="text" {...inputProps} />}
      {props.problem && (
        <span class="field-problem" id={problemId} data-testid={problemId}>
          {t(props.problem.key, props.problem.params)}
        </span>
      )}
    </label>
  );
}

async function copyText(text: string, fallbackInput: HTMLInputElement | null): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Some webviews expose no async clipboard outside a secure context.
    if (!fallbackInput) return false;
    fallbackInput.select();
    return document.execCommand("copy");
  }
}

/** A read-only value with a copy button, for addresses and fingerprints. */
export function CopyField({ label, value, testId }: { label: string; value: string; testId: string }) {
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    if (!copied) return;
    const timer = setTimeout(() => setCopied(false), 2000);
    return () => clearTimeout(timer);
  }, [copied]);
  return (
    <div class="field">
      <span class="field-label">{label}</span>
      <div class="copy-row">
        <input ref={input} readOnly value={value} class="mono" data-testid={testId} onFocus={(e) => e.currentTarget.select()} />
        <button
          type="button"
          class="secondary"
          data-testid={`${testId}-copy`}
          onClick={async () => setCopied(await copyText(value, input.current))}
        >
          {copied ? t("common.copied") : t("common.copy")}
        </button>
      </div>
    </div>
  );
}

/** A centred dialog over the window. Escape or a click on the backdrop closes it. */
export function Modal(props: { title: string; onClose: () => void; testId: string; children: ComponentChildren; wide?: boolean }) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") props.onClose();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [props.onClose]);
  return (
    <div class="backdrop" onClick={(e) => e.target === e.currentTarget && props.onClose()}>
      <section class={`modal ${props.wide ? "wide" : ""}`} role="dialog" aria-modal="true" aria-label={props.title} data-testid={props.testId}>
        <header class="modal-header">
          <h2>{props.title}</h2>
          <button type="button" class="icon-button" aria-label={t("common.close")} data-testid={`${props.testId}-close`} onClick={props.onClose}>
            ×
          </button>
        </header>
        <div class="modal-body">{props.children}</div>
      </section>
    </div>
  );
}

export function PresenceDot({ presence }: { presence: Presence | null }) {
  if (!presence) return null;
  return <span class={`presence presence-${presence}`} title={t(`presence.${presence}`)} data-testid="presence" data-presence={presence} />;
}

/** A round badge with the first letter of a name. */
export function Avatar({ name, size = 32 }: { name: string; size?: number }) {
  const letter = [...name.trim()][0]?.toUpperCase() ?? "?";
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const hue = hash % 360;
  return (
    <span class="avatar" style={{ width: `${size}px`, height: `${size}px`, background: `hsl(${hue} 45% 55%)`, fontSize: `${size * 0.45}px` }} aria-hidden="true">
      {letter}
    </span>
  );
}
