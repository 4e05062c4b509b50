// Words and numbers of the upload screen: statuses, sizes, rates and errors.

import { html, type TemplateResult } from "lit-html";
import { ApiError } from "../api/client";

/** A readable error: the server's message, or what a lost connection means. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

/** The server's upload status of an acquisition or plate, in words. */
export function statusText(status: string, files?: number): string {
  if (status === "COMPLETE") return "ready for processing";
  if (status === "UPLOADING") return "not ready: uploading";
  if (files === 0) return "not ready: no files";
  return "not ready: files missing";
}

export function statusBadge(status: string, files?: number): TemplateResult {
  const ready = status === "COMPLETE";
  return html`<span class="badge ${ready ? "ready" : "not-ready"}" data-testid="status" data-status=${status}
    >${statusText(status, files)}</span
  >`;
}

/**
 * A bar of `fraction` (0..1). Drawn without the stylesheet's width transition: the upload page
 * redraws its bars every 150 ms, and animating the widths kept the browser laying out and
 * compositing every frame during an upload, CPU that the upload itself needs.
 */
export function progressBar(fraction: number, state = ""): TemplateResult {
  const percent = Math.max(0, Math.min(100, fraction * 100));
  return html`<div class="progress ${state}" role="progressbar" aria-valuenow=${Math.round(percent)}>
    <div style="width: ${percent.toFixed(1)}%; transition: none"></div>
  </div>`;
}
