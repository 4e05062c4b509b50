// Inline SVG icons (bundled: no icon font is fetched).

import { svg, type SVGTemplateResult } from "lit-html";

function icon(path: SVGTemplateResult): SVGTemplateResult {
  return svg`<svg class="svg-icon" viewBox="0 0 16 16" width="14" height="14" aria-hidden="true"
    fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round" stroke-linejoin="round">${path}</svg>`;
}

export const userIcon = icon(svg`<circle cx="8" cy="5" r="3"/><path d="M2 15c0-3.3 2.7-5 6-5s6 1.7 6 5"/>`);
export const trashIcon = icon(
  svg`<path d="M2.5 4h11M6 4V2.5h4V4M4 4l.7 9.5h6.6L12 4M6.5 6.5v5M9.5 6.5v5"/>`,
);
export const downloadIcon = icon(svg`<path d="M8 2v8M4.5 6.5 8 10l3.5-3.5M2.5 13.5h11"/>`);
export const clearIcon = icon(svg`<path d="M3 8a5 5 0 1 0 1.5-3.5M3 2.5v3h3"/>`);
export const pencilIcon = icon(svg`<path d="M11 2.5 13.5 5 6 12.5 3 13l.5-3z"/>`);
export const gearIcon = icon(
  svg`<circle cx="8" cy="8" r="2.2"/><path d="M8 1.5v2M8 12.5v2M1.5 8h2M12.5 8h2M3.4 3.4l1.4 1.4M11.2 11.2l1.4 1.4M3.4 12.6l1.4-1.4M11.2 4.8l1.4-1.4"/>`,
);
export const targetIcon = icon(svg`<circle cx="8" cy="8" r="5.5"/><circle cx="8" cy="8" r="1.5"/>`);
