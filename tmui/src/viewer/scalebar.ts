// The scale bar: a round length in µm (or pixels where the pixel size is unknown).

export interface ScaleBar {
  /** Bar length in screen pixels. */
  pixels: number;
  label: string;
}

const STEPS = [1, 2, 5];

/**
 * A bar of a round length between `minPixels` and about 2.5·`minPixels` screen pixels.
 *
 * @param resolution map (full-resolution image) pixels per screen pixel
 * @param pixelSizeUm µm per image pixel, or null when unknown
 */
export function scaleBar(resolution: number, pixelSizeUm: number | null, minPixels = 80): ScaleBar {
  const unitPerScreenPixel = resolution * (pixelSizeUm ?? 1);
  const wanted = unitPerScreenPixel * minPixels;
  let length = 10 ** Math.floor(Math.log10(wanted));
  for (const step of STEPS) {
    if (length * step >= wanted) {
      length *= step;
      break;
    }
    if (step === STEPS[STEPS.length - 1]) length *= 10;
  }
  const unit = pixelSizeUm ? "µm" : "px";
  let label = `${length} ${unit}`;
  if (pixelSizeUm && length >= 1000) label = `${length / 1000} mm`;
  if (pixelSizeUm && length < 1) label = `${Math.round(length * 1000)} nm`;
  return { pixels: length / unitPerScreenPixel, label };
}
