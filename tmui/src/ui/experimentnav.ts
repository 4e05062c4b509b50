// The tabs of one experiment's screens: upload, workflow, pipeline, viewer.

import { html, type TemplateResult } from "lit-html";

const TABS: [string, string][] = [
  ["upload", "Upload"],
  ["workflow", "Workflow"],
  ["pipeline", "Pipeline"],
  ["viewer", "Viewer"],
];

export function tabPath(experimentId: string, tab: string): string {
  return tab === "viewer" ? `/viewer/${experimentId}` : `/experiments/${experimentId}/${tab}`;
}

export function experimentNav(experimentId: string, active: string, name = ""): TemplateResult {
  return html`<nav class="experiment-nav" data-testid="experiment-nav">
    <a href="/experiments" data-link class="crumb">Experiments</a>
    <span class="crumb-name">${name}</span>
    ${TABS.map(
      ([tab, label]) =>
        html`<a href=${tabPath(experimentId, tab)} data-link data-testid="tab-${tab}"
          class="tab ${tab === active ? "active" : ""}">${label}</a>`,
    )}
  </nav>`;
}
