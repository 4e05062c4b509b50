// What lies under the pointer: plate, well and site from the mosaic layout.

import type { Box, Layout } from "../api/types";

export interface Place {
  plate: string;
  well: string;
  site: { id: string; x: number; y: number } | null;
}

function inside(box: Box, x: number, y: number): boolean {
  return x >= box[0] && y >= box[1] && x < box[0] + box[2] && y < box[1] + box[3];
}

/** The plate, well and site at full-resolution pixel (x, y), or null outside every well. */
export function placeAt(layout: Layout, x: number, y: number): Place | null {
  const wellIndex = layout.wells.findIndex((w) => inside(w.box, x, y));
  if (wellIndex < 0) return null;
  const well = layout.wells[wellIndex];
  const sites = layout.sites;
  let site: Place["site"] = null;
  for (let i = 0; i < sites.id.length; i++) {
    if (sites.well[i] === wellIndex && inside(sites.box[i], x, y)) {
      site = { id: sites.id[i], x: sites.x[i], y: sites.y[i] };
      break;
    }
  }
  return { plate: layout.plates[well.plate]?.name ?? "", well: well.name, site };
}
