// Colour maps for features and results, and the fixed palettes of selections and clusters.

export type Rgb = [number, number, number];

/** Anchor colours of each map, evenly spaced from 0 to 1 (interpolated linearly between). */
const ANCHORS: Record<string, Rgb[]> = {
  viridis: [
    [68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37],
  ],
  magma: [
    [0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122],
    [229, 80, 100], [251, 135, 97], [254, 194, 135], [252, 253, 191],
  ],
  grey: [[0, 0, 0], [255, 255, 255]],
  "white-red": [[255, 255, 255], [255, 0, 0]],
};

export const COLORMAPS = Object.keys(ANCHORS);

/** The colour of `t` (clipped to 0..1) in colour map `name`. */
export function colormap(name: string, t: number): Rgb {
  const anchors = ANCHORS[name] ?? ANCHORS.viridis;
  const clipped = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const scaled = clipped * (anchors.length - 1);
  const i = Math.min(anchors.length - 2, Math.floor(scaled));
  const f = scaled - i;
  const [a, b] = [anchors[i], anchors[i + 1]];
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f)) as Rgb;
}

/** ColorBrewer Set1: the selection palette, reused by index. */
export const SELECTION_COLORS = [
  "#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf", "#999999",
];

/** ColorBrewer Paired: clusters, by cluster index. */
export const CATEGORY_COLORS = [
  "#1f78b4", "#33a02c", "#e31a1c", "#ff7f00", "#6a3d9a", "#b15928",
  "#a6cee3", "#b2df8a", "#fb9a99", "#fdbf6f", "#cab2d6", "#ffff99",
];

/** Outline colour choices of object layers. */
export const OUTLINE_COLORS = ["#ffffff", "#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33"];

/** Channel colour presets (grey first: the default). */
export const CHANNEL_PRESETS: Record<string, string> = {
  grey: "#ffffff",
  red: "#ff0000",
  green: "#00ff00",
  blue: "#0000ff",
  cyan: "#00ffff",
  magenta: "#ff00ff",
  yellow: "#ffff00",
};

export function hexToRgb(hex: string): Rgb {
  const value = parseInt(hex.replace("#", ""), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

export function rgbToHex([r, g, b]: Rgb): string {
  return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
}

/** A CSS linear gradient of a colour map, for colour bars and the picker's preview. */
export function gradientCss(name: string): string {
  const stops = Array.from({ length: 11 }, (_, i) => {
    const [r, g, b] = colormap(name, i / 10);
    return `rgb(${r},${g},${b}) ${i * 10}%`;
  });
  return `linear-gradient(to right, ${stops.join(", ")})`;
}
