// Video frames from Rust: an 8-byte header (u8 format: 0 RGBA, 1 I420; u8 reserved;
// u16 LE width; u16 LE height; u16 LE reserved) followed by the pixels. With the
// native renderer the app draws the frames itself and sends notices instead: format 2
// and a u32 LE count of the frames drawn so far, at the width and height drawn.

export const HEADER_BYTES = 8;

export type Frame =
  | { format: "rgba"; width: number; height: number; pixels: Uint8Array }
  | { format: "i420"; width: number; height: number; y: Uint8Array; u: Uint8Array; v: Uint8Array }
  | { format: "native"; width: number; height: number; drawn: number };

/** A frame that carries pixels for the page to draw. */
export type PixelFrame = Exclude<Frame, { format: "native" }>;

/** Size in bytes of one I420 chroma plane; odd sizes round up. */
export function chromaSize(width: number, height: number): { width: number; height: number } {
  return { width: Math.ceil(width / 2), height: Math.ceil(height / 2) };
}

/** Parses a frame buffer, or returns null when it is malformed or truncated. */
export function parseFrame(buffer: ArrayBuffer): Frame | null {
  if (buffer.byteLength < HEADER_BYTES) return null;
  const view = new DataView(buffer);
  const format = view.getUint8(0);
  const width = view.getUint16(2, true);
  const height = view.getUint16(4, true);
  if (width === 0 || height === 0) return null;

  if (format === 0) {
    const length = width * height * 4;
    if (buffer.byteLength < HEADER_BYTES + length) return null;
    return { format: "rgba", width, height, pixels: new Uint8Array(buffer, HEADER_BYTES, length) };
  }

  if (format === 1) {
    const chroma = chromaSize(width, height);
    const lumaLength = width * height;
    const chromaLength = chroma.width * chroma.height;
    if (buffer.byteLength < HEADER_BYTES + lumaLength + 2 * chromaLength) return null;
    const y = new Uint8Array(buffer, HEADER_BYTES, lumaLength);
    const u = new Uint8Array(buffer, HEADER_BYTES + lumaLength, chromaLength);
    const v = new Uint8Array(buffer, HEADER_BYTES + lumaLength + chromaLength, chromaLength);
    return { format: "i420", width, height, y, u, v };
  }

  if (format === 2) {
    if (buffer.byteLength < HEADER_BYTES + 4) return null;
    return { format: "native", width, height, drawn: view.getUint32(HEADER_BYTES, true) };
  }

  return null;
}

function clampByte(value: number): number {
  return Math.min(255, Math.max(0, value));
}

/**
 * Converts an I420 frame to RGBA on the CPU with BT.601 limited-range coefficients,
 * the same as the WebGL shader. Used only when WebGL is unavailable.
 */
export function i420ToRgba(frame: Extract<Frame, { format: "i420" }>): Uint8ClampedArray<ArrayBuffer> {
  const { width, height, y, u, v } = frame;
  const chromaWidth = chromaSize(width, height).width;
  const out = new Uint8ClampedArray(width * height * 4);
  for (let row = 0; row < height; row++) {
    for (let col = 0; col < width; col++) {
      const c = (row >> 1) * chromaWidth + (col >> 1);
      const luma = 1.164 * (y[row * width + col] - 16);
      const cb = u[c] - 128;
      const cr = v[c] - 128;
      const i = (row * width + col) * 4;
      out[i] = clampByte(luma + 1.596 * cr);
      out[i + 1] = clampByte(luma - 0.392 * cb - 0.813 * cr);
      out[i + 2] = clampByte(luma + 2.017 * cb);
      out[i + 3] = 255;
    }
  }
  return out;
}

/**
 * Keeps only the newest frame and draws it on the next animation frame, so a burst
 * of frames costs one draw.
 */
export class FrameScheduler {
  private latest: ArrayBuffer | null = null;
  private pending = 0;

  constructor(
    private readonly draw: (buffer: ArrayBuffer) => void,
    private readonly requestFrame: (callback: () => void) => number = (cb) => requestAnimationFrame(cb),
    private readonly cancelFrame: (handle: number) => void = (handle) => cancelAnimationFrame(handle),
  ) {}

  push(buffer: ArrayBuffer): void {
    this.latest = buffer;
    if (this.pending) return;
    this.pending = this.requestFrame(() => {
      this.pending = 0;
      const buffer = this.latest;
      this.latest = null;
      if (buffer) this.draw(buffer);
    });
  }

  stop(): void {
    if (this.pending) this.cancelFrame(this.pending);
    this.pending = 0;
    this.latest = null;
  }
}
