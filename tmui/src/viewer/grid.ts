// The map's pixel projection and tile grid: as the server's pyramid (tmlib.maptiles).
//
// Map coordinates are full-resolution pixels, x = column, y = -row; zoom level 0
// is the most zoomed-out one and a tile of level z covers 256·2^(maxZoom-z) pixels.

import Projection from "ol/proj/Projection";
import TileGrid from "ol/tilegrid/TileGrid";

export const TILE_SIZE = 256;
/** Zoom levels beyond the pyramid's finest one (pixels drawn larger). */
export const OVERZOOM = 3;

export interface PixelGrid {
  width: number;
  height: number;
  maxZoom: number;
  projection: Projection;
  tileGrid: TileGrid;
  /** Map resolutions (map pixels per screen pixel), level 0 first, overzoom included. */
  resolutions: number[];
}

export function pixelGrid(width: number, height: number, maxZoom: number): PixelGrid {
  const extent = [0, -height, width, 0];
  const projection = new Projection({ code: "tm-pixels", units: "pixels", extent });
  const pyramid = Array.from({ length: maxZoom + 1 }, (_, z) => 2 ** (maxZoom - z));
  const tileGrid = new TileGrid({
    extent,
    origin: [0, 0],
    resolutions: pyramid,
    tileSize: TILE_SIZE,
  });
  const resolutions = [...pyramid, ...Array.from({ length: OVERZOOM }, (_, i) => 2 ** -(i + 1))];
  return { width, height, maxZoom, projection, tileGrid, resolutions };
}
