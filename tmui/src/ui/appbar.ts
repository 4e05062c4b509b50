// The bar at the top of every screen after login: the app's name, the user, logout.

import { html, type TemplateResult } from "lit-html";
import { userIcon } from "./icons";

export function appBar(user: string, onLogout: () => void, extra?: TemplateResult): TemplateResult {
  return html`<header class="appbar">
    <a class="brand" href="/experiments" data-link>TissueMAPS</a>
    <span class="appbar-extra">${extra ?? ""}</span>
    <span class="user" data-testid="appbar-user" title="Logged in">${userIcon} ${user}</span>
    <button class="link" data-testid="logout" @click=${onLogout}>Log out</button>
  </header>`;
}
