// Export the current view as a PNG: the layers as composited on screen (channels added),
// with the scale bar and the legends drawn on top.

import type Map from "ol/Map";
import { colormap } from "./colormaps";
import type { Legend } from "./results";
import type { ScaleBar } from "./scalebar";

function drawScaleBar(ctx: CanvasRenderingContext2D, bar: ScaleBar, height: number): void {
  const x = 16;
  const y = height - 20;
  ctx.fillStyle = "rgba(0,0,0,0.5)";
  ctx.fillRect(x - 6, y - 22, bar.pixels + 12, 30);
  ctx.fillStyle = "#fff";
  ctx.fillRect(x, y, bar.pixels, 4);
  ctx.font = "12px sans-serif";
  ctx.fillText(bar.label, x, y - 6);
}

function drawLegends(ctx: CanvasRenderingContext2D, legends: Legend[], width: number): void {
  let y = 12;
  const x = width - 192;
  ctx.font = "12px sans-serif";
  for (const legend of legends) {
    const rows = legend.entries?.length ?? 1;
    const h = 22 + rows * 16;
    ctx.fillStyle = "rgba(0,0,0,0.6)";
    ctx.fillRect(x - 8, y - 4, 188, h);
    ctx.fillStyle = "#fff";
    ctx.fillText(legend.title, x, y + 10);
    if (legend.entries) {
      legend.entries.forEach((entry, i) => {
        ctx.fillStyle = entry.color;
        ctx.fillRect(x, y + 18 + i * 16, 12, 12);
        ctx.fillStyle = "#fff";
        ctx.fillText(`${entry.label} (${entry.count})`, x + 18, y + 28 + i * 16);
      });
    } else if (legend.colormap) {
      for (let i = 0; i < 120; i++) {
        const [r, g, b] = colormap(legend.colormap, i / 119);
        ctx.fillStyle = `rgb(${r},${g},${b})`;
        ctx.fillRect(x + i, y + 18, 1, 10);
      }
      ctx.fillStyle = "#fff";
      ctx.fillText(`${legend.low?.toPrecision(3)} – ${legend.high?.toPrecision(3)}`, x, y + 40);
    }
    y += h + 8;
  }
}

/** The map as one canvas: waits for the next complete render, then copies every layer canvas. */
export function composeView(map: Map, bar: ScaleBar, legends: Legend[]): Promise<HTMLCanvasElement> {
  return new Promise((resolve) => {
    map.once("rendercomplete", () => {
      const size = map.getSize() ?? [0, 0];
      const out = document.createElement("canvas");
      out.width = size[0];
      out.height = size[1];
      const ctx = out.getContext("2d") as CanvasRenderingContext2D;
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, out.width, out.height);
      const viewport = map.getViewport() as HTMLElement;
      for (const canvas of viewport.querySelectorAll<HTMLCanvasElement>(".ol-layers canvas")) {
        if (canvas.width === 0 || canvas.closest(".ol-overviewmap")) continue;
        const container = canvas.parentElement as HTMLElement;
        const opacity = Number(container.style.opacity || canvas.style.opacity || "1");
        ctx.globalAlpha = opacity;
        ctx.globalCompositeOperation = canvas.closest(".tm-channel") ? "lighter" : "source-over";
        const transform = canvas.style.transform;
        const match = transform.match(/^matrix\(([^(]*)\)$/);
        if (match) {
          const m = match[1].split(",").map(Number) as [number, number, number, number, number, number];
          ctx.setTransform(...m);
        } else {
          ctx.setTransform(out.width / canvas.width, 0, 0, out.height / canvas.height, 0, 0);
        }
        ctx.drawImage(canvas, 0, 0);
      }
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.globalAlpha = 1;
      ctx.globalCompositeOperation = "source-over";
      drawScaleBar(ctx, bar, out.height);
      drawLegends(ctx, legends, out.width);
      resolve(out);
    });
    map.renderSync();
  });
}
