// A module's figure (Plotly JSON) drawn without Plotly: heatmaps on canvases with the value
// under the pointer, other traces as a table of their data.

import { html, nothing, type TemplateResult } from "lit-html";
import { ref } from "lit-html/directives/ref.js";
import type { PlotlyFigure, PlotlyTrace } from "../api/types";

type Stops = [number, [number, number, number]][];

/** The colour scales modules use (Plotly's stops, Viridis in a few steps). */
const SCALES: Record<string, Stops> = {
  Greys: [
    [0, [0, 0, 0]],
    [1, [255, 255, 255]],
  ],
  Viridis: [
    [0, [68, 1, 84]],
    [0.25, [59, 82, 139]],
    [0.5, [33, 145, 140]],
    [0.75, [94, 201, 98]],
    [1, [253, 231, 37]],
  ],
};

function parseColour(text: string): [number, number, number] {
  const hex = /^#([0-9a-f]{6})$/i.exec(text.trim());
  if (hex) {
    const v = parseInt(hex[1], 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }
  const nums = text.match(/[\d.]+/g)?.map(Number) ?? [0, 0, 0];
  return [nums[0] ?? 0, nums[1] ?? 0, nums[2] ?? 0];
}

function stopsOf(scale: PlotlyTrace["colorscale"]): Stops {
  if (Array.isArray(scale) && scale.length >= 2) return scale.map(([at, c]) => [at, parseColour(c)]);
  return SCALES[typeof scale === "string" ? scale : "Greys"] ?? SCALES.Greys;
}

function colourAt(stops: Stops, t: number): [number, number, number] {
  for (let i = 1; i < stops.length; i++) {
    const [a, ca] = stops[i - 1];
    const [b, cb] = stops[i];
    if (t <= b || i === stops.length - 1) {
      const f = b > a ? Math.min(1, Math.max(0, (t - a) / (b - a))) : 0;
      return [0, 1, 2].map((k) => Math.round(ca[k] + f * (cb[k] - ca[k]))) as [number, number, number];
    }
  }
  return stops[0][1];
}

function range(z: (number | null)[][], trace: PlotlyTrace): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of z) {
    for (const v of row) {
      if (v === null || !Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  const zmin = typeof trace.zmin === "number" ? trace.zmin : lo;
  const zmax = typeof trace.zmax === "number" ? trace.zmax : hi;
  return Number.isFinite(zmin) && Number.isFinite(zmax) ? [zmin, zmax] : [0, 1];
}

/** Canvases already drawn with a trace (lit calls the ref callback on every redraw). */
const drawn = new WeakMap<HTMLCanvasElement, PlotlyTrace>();

function draw(canvas: HTMLCanvasElement, trace: PlotlyTrace): void {
  if (drawn.get(canvas) === trace) return;
  drawn.set(canvas, trace);
  const z = trace.z ?? [];
  const rows = z.length;
  const cols = rows ? z[0].length : 0;
  canvas.width = Math.max(1, cols);
  canvas.height = Math.max(1, rows);
  const context = canvas.getContext("2d");
  if (!context || !rows || !cols) return;
  const [lo, hi] = range(z, trace);
  const stops = stopsOf(trace.colorscale);
  const image = context.createImageData(cols, rows);
  const span = hi > lo ? hi - lo : 1;
  // the colour of 256 steps, computed once
  const lut = Array.from({ length: 256 }, (_, i) => colourAt(stops, i / 255));
  for (let r = 0; r < rows; r++) {
    const row = z[r];
    for (let c = 0; c < cols; c++) {
      const v = row[c];
      const at = (r * cols + c) * 4;
      if (v === null || !Number.isFinite(v)) continue; // transparent
      const [red, green, blue] = lut[Math.round((255 * (v - lo)) / span)] ?? lut[0];
      image.data[at] = red;
      image.data[at + 1] = green;
      image.data[at + 2] = blue;
      image.data[at + 3] = 255;
    }
  }
  context.putImageData(image, 0, 0);
}

/** The panel titles of a figure made by jtmodules: the layout's annotations, in trace order. */
function titles(figure: PlotlyFigure): string[] {
  const annotations = (figure.layout?.annotations ?? []) as { text?: string }[];
  return annotations.map((a) => a.text ?? "");
}

function heatmap(trace: PlotlyTrace, title: string, index: number): TemplateResult {
  const z = trace.z ?? [];
  const rows = z.length;
  const cols = rows ? z[0].length : 0;
  const [lo, hi] = range(z, trace);
  const readout = (event: MouseEvent) => {
    const canvas = event.currentTarget as HTMLCanvasElement;
    const box = canvas.getBoundingClientRect();
    const c = Math.floor(((event.clientX - box.left) / box.width) * cols);
    const r = Math.floor(((event.clientY - box.top) / box.height) * rows);
    const out = canvas.parentElement?.querySelector(".figure-readout");
    if (!out) return;
    const v = z[r]?.[c];
    out.textContent = v === undefined ? "" : `x ${c}, y ${r}: ${v === null ? "–" : v}`;
  };
  return html`<figure class="figure-panel" data-testid="figure-panel">
    <figcaption>${title || trace.name || `panel ${index + 1}`}</figcaption>
    <canvas
      class="heatmap"
      data-testid="figure-heatmap"
      style="aspect-ratio: ${cols || 1} / ${rows || 1}"
      ${ref((el) => el && draw(el as HTMLCanvasElement, trace))}
      @mousemove=${readout}
    ></canvas>
    <div class="figure-readout muted"></div>
    <div class="hint">${cols} × ${rows} · ${lo.toPrecision(4)} … ${hi.toPrecision(4)}</div>
  </figure>`;
}

function table(trace: PlotlyTrace, index: number): TemplateResult {
  const x = trace.x ?? [];
  const y = trace.y ?? [];
  const n = Math.max(x.length, y.length);
  const shown = Math.min(n, 50);
  return html`<figure class="figure-panel" data-testid="figure-trace">
    <figcaption>${trace.name ?? `trace ${index + 1}`} (${trace.type ?? "scatter"}, ${n} points)</figcaption>
    <table class="figure-data">
      <thead><tr><th>x</th><th>y</th></tr></thead>
      <tbody>
        ${Array.from({ length: shown }, (_, i) => html`<tr><td>${String(x[i] ?? "")}</td><td>${String(y[i] ?? "")}</td></tr>`)}
      </tbody>
    </table>
    ${n > shown ? html`<div class="hint">and ${n - shown} more</div>` : nothing}
  </figure>`;
}

/** The figure's panels side by side. */
export function figureView(figure: PlotlyFigure): TemplateResult {
  const traces = figure.data ?? [];
  const names = titles(figure);
  const heatmaps = traces.filter((t) => t.type === "heatmap" && Array.isArray(t.z));
  return html`<div class="figure-view" data-testid="figure-view">
    ${traces.length === 0 ? html`<p class="muted">The figure is empty.</p>` : nothing}
    ${traces.map((t, i) =>
      t.type === "heatmap" && Array.isArray(t.z) ? heatmap(t, names[heatmaps.indexOf(t)] ?? "", i) : table(t, i),
    )}
  </div>`;
}
