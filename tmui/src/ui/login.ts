// The login screen.

import { html, type TemplateResult } from "lit-html";

export interface LoginState {
  message: string;
  error: string;
  busy: boolean;
}

export function loginView(
  state: LoginState,
  onSubmit: (username: string, password: string) => void,
): TemplateResult {
  const submit = (event: SubmitEvent) => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const data = new FormData(form);
    onSubmit(String(data.get("username") ?? ""), String(data.get("password") ?? ""));
  };
  return html`<main class="login">
    <form class="card" @submit=${submit} data-testid="login-form">
      <h1>TissueMAPS</h1>
      ${state.message ? html`<p class="notice" data-testid="login-message">${state.message}</p>` : ""}
      <label>User name <input name="username" autocomplete="username" required autofocus /></label>
      <label
        >Password <input name="password" type="password" autocomplete="current-password" required
      /></label>
      ${state.error ? html`<p class="error" role="alert" data-testid="login-error">${state.error}</p>` : ""}
      <button type="submit" class="primary" ?disabled=${state.busy}>
        ${state.busy ? "Logging in…" : "Log in"}
      </button>
    </form>
  </main>`;
}
