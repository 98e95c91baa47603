import { useState, type FormEvent } from "react";

import { tm } from "../api.js";
import { userError } from "../lib/reasons.js";

export function Login({ notice, onSignedIn }: { notice: string | undefined; onSignedIn: () => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const [fields, setFields] = useState<Readonly<Record<string, string>>>({});

  async function submit(event: FormEvent): Promise<void> {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    setFields({});
    try {
      await tm.signIn(username, password);
      onSignedIn();
    } catch (e) {
      const failure = userError(e);
      setError(failure.message);
      setFields(failure.fields);
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <form className="login-card" onSubmit={(e) => void submit(e)} aria-labelledby="login-title">
        <h1 id="login-title">
          <span className="brand-mark" aria-hidden="true">◆</span> tradingmesh
        </h1>
        <p className="muted">Sign in to your trading account</p>
        {notice !== undefined && error === undefined && (
          <p className="notice" role="status">
            {notice}
          </p>
        )}
        <label htmlFor="login-username">Username</label>
        <input
          id="login-username"
          name="username"
          autoComplete="username"
          autoFocus
          value={username}
          onChange={(e) => setUsername(e.target.value)}
          aria-invalid={fields["username"] !== undefined}
          aria-describedby={fields["username"] ? "login-username-error" : undefined}
          required
        />
        {fields["username"] && (
          <span className="field-error" id="login-username-error">
            {fields["username"]}
          </span>
        )}
        <label htmlFor="login-password">Password</label>
        <input
          id="login-password"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          aria-invalid={fields["password"] !== undefined}
          aria-describedby={fields["password"] ? "login-password-error" : undefined}
          required
        />
        {fields["password"] && (
          <span className="field-error" id="login-password-error">
            {fields["password"]}
          </span>
        )}
        {error !== undefined && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
