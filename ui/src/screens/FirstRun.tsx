import { useState } from "preact/hooks";
import { api } from "../api";
import { t } from "../i18n";
import { CopyField, ErrorNote, Field } from "../components/common";
import { checkAddress, checkNewPassword, checkPassword, checkUserName, type Problem } from "../validate";
import type { EmbeddedServer, ServerCheck } from "../types";

type Step =
  | { kind: "choose" }
  | { kind: "connect" }
  | { kind: "trust"; check: ServerCheck }
  | { kind: "signIn"; address: string; trustedFingerprint: string | null }
  | { kind: "host" }
  | { kind: "hosted"; server: EmbeddedServer; user: string; password: string };

/** The first-run flow: join an organisation's server or host one on this computer. */
export function FirstRun({ onSignedIn }: { onSignedIn: () => void }) {
  const [step, setStep] = useState<Step>({ kind: "choose" });
  const back = () => setStep({ kind: "choose" });

  return (
    <main class="first-run" data-testid="first-run">
      <div class="first-run-card">
        <div class="brand">
          <span class="brand-mark" aria-hidden="true" />
          <h1>{t("app.name")}</h1>
        </div>
        {step.kind === "choose" && <Choose onPick={(kind) => setStep({ kind })} />}
        {step.kind === "connect" && (
          <ConnectStep
            onBack={back}
            onChecked={(check) =>
              setStep(check.trusted ? { kind: "signIn", address: check.url, trustedFingerprint: null } : { kind: "trust", check })
            }
          />
        )}
        {step.kind === "trust" && (
          <TrustStep
            check={step.check}
            onBack={() => setStep({ kind: "connect" })}
            onTrust={() => setStep({ kind: "signIn", address: step.check.url, trustedFingerprint: step.check.fingerprint })}
          />
        )}
        {step.kind === "signIn" && (
          <SignInStep address={step.address} trustedFingerprint={step.trustedFingerprint} onBack={() => setStep({ kind: "connect" })} onSignedIn={onSignedIn} />
        )}
        {step.kind === "host" && <HostStep onBack={back} onStarted={(server, user, password) => setStep({ kind: "hosted", server, user, password })} />}
        {step.kind === "hosted" && <HostedStep server={step.server} user={step.user} password={step.password} onSignedIn={onSignedIn} />}
      </div>
    </main>
  );
}

function Choose({ onPick }: { onPick: (kind: "connect" | "host") => void }) {
  return (
    <>
      <p class="lead">{t("firstRun.subtitle")}</p>
      <div class="choices">
        {/* Hosting is the default: it needs nothing but this computer. */}
        <button type="button" class="choice primary" data-testid="choose-host" autoFocus onClick={() => onPick("host")}>
          <strong>{t("firstRun.hostTitle")}</strong>
          <span>{t("firstRun.hostHint")}</span>
        </button>
        <button type="button" class="choice" data-testid="choose-connect" onClick={() => onPick("connect")}>
          <strong>{t("firstRun.connectTitle")}</strong>
          <span>{t("firstRun.connectHint")}</span>
        </button>
      </div>
    </>
  );
}

function ConnectStep({ onBack, onChecked }: { onBack: () => void; onChecked: (check: ServerCheck) => void }) {
  const [address, setAddress] = useState("");
  const [problem, setProblem] = useState<Problem>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const found = checkAddress(address);
    setProblem(found);
    if (found) return;
    setBusy(true);
    setError(null);
    try {
      onChecked(await api.checkServer(address.trim()));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <form class="form" data-testid="connect-form" onSubmit={submit} noValidate>
      <h2>{t("firstRun.connectTitle")}</h2>
      <Field
        label={t("connect.address")}
        placeholder={t("connect.addressPlaceholder")}
        value={address}
        onInput={(v) => {
          setAddress(v);
          if (problem) setProblem(null);
        }}
        problem={problem}
        testId="connect-address"
        autoFocus
      />
      <ErrorNote error={error} />
      <div class="actions">
        <button type="button" class="secondary" onClick={onBack} disabled={busy}>
          {t("common.back")}
        </button>
        <button type="submit" class="primary" data-testid="connect-submit" disabled={busy}>
          {busy ? t("connect.checking") : t("common.continue")}
        </button>
      </div>
    </form>
  );
}

/** Shows the fingerprint of a certificate the system does not trust, for comparison. */
function TrustStep({ check, onBack, onTrust }: { check: ServerCheck; onBack: () => void; onTrust: () => void }) {
  return (
    <div class="form" data-testid="trust-step">
      <h2>{t("trust.title")}</h2>
      <p class="warning-text">{t("trust.body", { server: check.url })}</p>
      <div class="field">
        <span class="field-label">{t("trust.fingerprint")}</span>
        <code class="fingerprint" data-testid="server-fingerprint">
          {check.fingerprint}
        </code>
      </div>
      <div class="actions">
        <button type="button" class="secondary" data-testid="trust-reject" onClick={onBack}>
          {t("trust.reject")}
        </button>
        <button type="button" class="primary" data-testid="trust-certificate" onClick={onTrust}>
          {t("trust.accept")}
        </button>
      </div>
    </div>
  );
}

type SignInProps = { address: string; trustedFingerprint: string | null; onBack: () => void; onSignedIn: () => void };

function SignInStep({ address, trustedFingerprint, onBack, onSignedIn }: SignInProps) {
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [problems, setProblems] = useState<{ user: Problem; password: Problem }>({ user: null, password: null });
  const [busy, setBusy] = useState<"password" | "browser" | null>(null);
  const [error, setError] = useState<unknown>(null);

  const run = async (kind: "password" | "browser", action: () => Promise<unknown>) => {
    setBusy(kind);
    setError(null);
    try {
      await action();
      onSignedIn();
    } catch (err) {
      setError(err);
      setBusy(null);
    }
  };

  const submit = (e: Event) => {
    e.preventDefault();
    const found = { user: checkUserName(user), password: checkPassword(password) };
    setProblems(found);
    if (found.user || found.password) return;
    void run("password", () => api.signIn(address, user.trim(), password, trustedFingerprint));
  };

  return (
    <form class="form" data-testid="sign-in-form" onSubmit={submit} noValidate>
      <h2>{t("signIn.title")}</h2>
      <p class="muted" data-testid="sign-in-server">
        {address}
      </p>
      <Field label={t("signIn.user")} value={user} onInput={setUser} problem={problems.user} testId="sign-in-user" autoComplete="username" autoFocus />
      <Field
        label={t("signIn.password")}
        type="password"
        value={password}
        onInput={setPassword}
        problem={problems.password}
        testId="sign-in-password"
        autoComplete="current-password"
      />
      <ErrorNote error={error} />
      {busy === "browser" && <p class="muted">{t("signIn.browserWaiting")}</p>}
      <div class="actions">
        <button type="button" class="secondary" onClick={onBack} disabled={busy !== null}>
          {t("common.back")}
        </button>
        <button
          type="button"
          class="secondary"
          data-testid="sign-in-browser"
          disabled={busy !== null}
          onClick={() => run("browser", () => api.signInWithBrowser(address, trustedFingerprint))}
        >
          {t("signIn.browser")}
        </button>
        <button type="submit" class="primary" data-testid="sign-in-submit" disabled={busy !== null}>
          {busy === "password" ? t("signIn.signingIn") : t("signIn.submit")}
        </button>
      </div>
    </form>
  );
}

type HostProps = { onBack: () => void; onStarted: (server: EmbeddedServer, user: string, password: string) => void };

function HostStep({ onBack, onStarted }: HostProps) {
  const [user, setUser] = useState("admin");
  const [password, setPassword] = useState("");
  const [confirmation, setConfirmation] = useState("");
  const [problems, setProblems] = useState<{ user: Problem; password: Problem }>({ user: null, password: null });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const found = { user: checkUserName(user), password: checkNewPassword(password, confirmation) };
    setProblems(found);
    if (found.user || found.password) return;
    setBusy(true);
    setError(null);
    try {
      onStarted(await api.startEmbeddedServer(user.trim(), password), user.trim(), password);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <form class="form" data-testid="host-form" onSubmit={submit} noValidate>
      <h2>{t("firstRun.hostTitle")}</h2>
      <p class="muted">{t("host.body")}</p>
      <Field label={t("host.user")} value={user} onInput={setUser} problem={problems.user} testId="host-user" autoFocus />
      <Field label={t("host.password")} type="password" value={password} onInput={setPassword} problem={problems.password} testId="host-password" autoComplete="new-password" />
      <Field label={t("host.confirm")} type="password" value={confirmation} onInput={setConfirmation} testId="host-password-confirm" autoComplete="new-password" />
      <ErrorNote error={error} />
      <div class="actions">
        <button type="button" class="secondary" onClick={onBack} disabled={busy}>
          {t("common.back")}
        </button>
        <button type="submit" class="primary" data-testid="start-server" disabled={busy}>
          {busy ? t("host.starting") : t("host.submit")}
        </button>
      </div>
    </form>
  );
}

type HostedProps = { server: EmbeddedServer; user: string; password: string; onSignedIn: () => void };

/** Shows how colleagues join, then signs the administrator in if the server did not. */
function HostedStep({ server, user, password, onSignedIn }: HostedProps) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const open = async () => {
    setBusy(true);
    setError(null);
    try {
      const status = await api.getStatus();
      if (!status.account && server.joinUrls.length > 0) {
        await api.signIn(server.joinUrls[0], user, password, server.fingerprint);
      }
      onSignedIn();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <div class="form" data-testid="server-ready">
      <h2>{t("host.readyTitle")}</h2>
      <p class="muted">{t("host.readyBody")}</p>
      {server.joinUrls.map((url, i) => (
        <CopyField key={url} label={t("host.joinAddress")} value={url} testId={i === 0 ? "join-url" : `join-url-${i}`} />
      ))}
      <CopyField label={t("host.fingerprint")} value={server.fingerprint} testId="server-fingerprint" />
      <ErrorNote error={error} />
      <div class="actions">
        <button type="button" class="primary" data-testid="open-app" disabled={busy} onClick={open}>
          {t("host.continue")}
        </button>
      </div>
    </div>
  );
}
