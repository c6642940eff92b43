import { describe, expect, it, vi } from "vitest";
import { FrameScheduler, i420ToRgba, parseFrame } from "./frames";

function header(format: number, width: number, height: number, body: number): ArrayBuffer {
  const buffer = new ArrayBuffer(8 + body);
  const view = new DataView(buffer);
  view.setUint8(0, format);
  view.setUint16(2, width, true);
  view.setUint16(4, height, true);
  return buffer;
}

describe("parseFrame", () => {
  it("reads an RGBA frame", () => {
    const buffer = header(0, 3, 2, 3 * 2 * 4);
    new Uint8Array(buffer, 8)[0] = 200;
    const frame = parseFrame(buffer);
    expect(frame?.format).toBe("rgba");
    expect(frame?.width).toBe(3);
    expect(frame?.height).toBe(2);
    if (frame?.format !== "rgba") throw new Error("expected an RGBA frame");
    expect(frame.pixels[0]).toBe(200);
  });

  it("splits I420 planes with odd sizes rounded up", () => {
    const frame = parseFrame(header(1, 5, 3, 5 * 3 + 2 * 3 * 2));
    expect(frame?.format).toBe("i420");
    if (frame?.format !== "i420") return;
    expect(frame.y.length).toBe(15);
    expect(frame.u.length).toBe(6);
    expect(frame.v.length).toBe(6);
  });

  it("reads a notice of frames drawn natively", () => {
    const buffer = header(2, 640, 360, 4);
    new DataView(buffer).setUint32(8, 70_000, true);
    expect(parseFrame(buffer)).toEqual({ format: "native", width: 640, height: 360, drawn: 70_000 });
    expect(parseFrame(header(2, 640, 360, 2))).toBeNull();
  });

  it("rejects truncated and unknown frames", () => {
    expect(parseFrame(new ArrayBuffer(4))).toBeNull();
    expect(parseFrame(header(0, 4, 4, 10))).toBeNull();
    expect(parseFrame(header(7, 2, 2, 100))).toBeNull();
    expect(parseFrame(header(0, 0, 2, 0))).toBeNull();
  });
});

describe("i420ToRgba", () => {
  it("maps limited-range black, white and grey", () => {
    for (const [luma, expected] of [
      [16, 0],
      [235, 255],
      [126, 128],
    ]) {
      const buffer = header(1, 2, 2, 4 + 2);
      const planes = new Uint8Array(buffer, 8);
      planes.fill(luma, 0, 4);
      planes.fill(128, 4);
      const frame = parseFrame(buffer);
      if (frame?.format !== "i420") throw new Error("expected an I420 frame");
      const rgba = i420ToRgba(frame);
      expect(Math.abs(rgba[0] - expected), `luma ${luma}`).toBeLessThanOrEqual(1);
      expect(rgba[3]).toBe(255);
    }
  });
});

describe("FrameScheduler", () => {
  it("draws only the newest frame once per animation frame", () => {
    const callbacks: (() => void)[] = [];
    const draw = vi.fn();
    const scheduler = new FrameScheduler(draw, (cb) => callbacks.push(cb), () => {});
    const first = new ArrayBuffer(1);
    const second = new ArrayBuffer(2);
    scheduler.push(first);
    scheduler.push(second);
    expect(callbacks).toHaveLength(1);
    callbacks[0]();
    expect(draw).toHaveBeenCalledTimes(1);
    expect(draw).toHaveBeenCalledWith(second);
  });

  it("drops the pending frame on stop", () => {
    const callbacks: (() => void)[] = [];
    const draw = vi.fn();
    const scheduler = new FrameScheduler(draw, (cb) => callbacks.push(cb), () => {});
    scheduler.push(new ArrayBuffer(1));
    scheduler.stop();
    callbacks[0]();
    expect(draw).not.toHaveBeenCalled();
  });
});
