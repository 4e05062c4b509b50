// A modal dialog box drawn over the page (confirmations and small forms).

import { html, nothing, type TemplateResult } from "lit-html";

export function modal(
  title: string,
  body: TemplateResult,
  onClose: () => void,
  testId = "dialog",
): TemplateResult {
  const onKey = (event: KeyboardEvent) => {
    if (event.key === "Escape") onClose();
  };
  return html`<div class="modal-backdrop" @keydown=${onKey}>
    <div class="modal" role="dialog" aria-label=${title} data-testid=${testId}>
      <header>
        <h2>${title}</h2>
        <button class="icon" title="Close" @click=${onClose}>&times;</button>
      </header>
      ${body}
    </div>
  </div>`;
}

export function errorLine(message: string | null | undefined): TemplateResult | typeof nothing {
  return message ? html`<p class="error" role="alert">${message}</p>` : nothing;
}
