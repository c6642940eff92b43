import { useEffect, useRef, useState } from "preact/hooks";
import { FrameScheduler, parseFrame, type Frame } from "./frames";
import { createRenderer } from "./renderers";
import { subscribe } from "./hub";
import { addNativeView } from "./native";
import type { Renderer, StreamKey } from "../types";

type Props = {
  stream: StreamKey;
  renderer: Renderer;
  testId: string;
  class?: string;
  /** With the native renderer, views of a higher layer are drawn over lower ones. */
  layer?: number;
  onError?: (error: unknown) => void;
};

const RESIZE_DEBOUNCE_MS = 150;

declare global {
  interface HTMLCanvasElement {
    /** Frames drawn since the canvas was created; the app's benchmark reads it. */
    framesDrawn?: number;
  }
}

function deviceSize(element: HTMLElement): { width: number; height: number } {
  const ratio = window.devicePixelRatio || 1;
  const rect = element.getBoundingClientRect();
  // Even sizes keep I420 chroma planes exactly half the luma plane.
  const even = (n: number) => Math.max(2, Math.round((n * ratio) / 2) * 2);
  return { width: even(rect.width), height: even(rect.height) };
}

/** Draws frames on the canvas, or with the native renderer only counts the frames the app drew. */
function frameDrawer(canvas: HTMLCanvasElement, renderer: Renderer): (frame: Frame) => boolean {
  if (renderer === "native") {
    return (frame) => {
      if (frame.format !== "native") return false;
      // The canvas stays empty, but takes the size the app drew at, which the benchmark reads.
      if (canvas.width !== frame.width) canvas.width = frame.width;
      if (canvas.height !== frame.height) canvas.height = frame.height;
      canvas.framesDrawn = frame.drawn;
      return true;
    };
  }
  const target = createRenderer(canvas, renderer);
  return (frame) => {
    if (!target || frame.format === "native") return false;
    target.draw(frame);
    canvas.framesDrawn = (canvas.framesDrawn ?? 0) + 1;
    return true;
  };
}

/**
 * Shows one video stream from Rust in a canvas at the canvas's own device-pixel size. With
 * the native renderer the app draws the video over the canvas instead.
 */
export function VideoCanvas({ stream, renderer, testId, class: className, layer = 0, onError }: Props) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [hasFrame, setHasFrame] = useState(false);
  const onErrorRef = useRef(onError);
  onErrorRef.current = onError;

  useEffect(() => {
    const canvas = ref.current;
    if (!canvas) return;
    const draw = frameDrawer(canvas, renderer);
    let seenFrame = false;
    const scheduler = new FrameScheduler((buffer) => {
      const frame = parseFrame(buffer);
      if (!frame || !draw(frame)) return;
      if (!seenFrame) {
        seenFrame = true;
        setHasFrame(true);
      }
    });

    const subscription = subscribe(stream, {
      onFrame: (buffer) => scheduler.push(buffer),
      size: deviceSize(canvas),
      onError: (error) => onErrorRef.current?.(error),
    });
    const removeNativeView =
      renderer === "native" ? addNativeView(canvas, stream, layer, (error) => onErrorRef.current?.(error)) : null;

    let timer: ReturnType<typeof setTimeout> | undefined;
    const observer = new ResizeObserver(() => {
      clearTimeout(timer);
      timer = setTimeout(() => subscription.resize(deviceSize(canvas)), RESIZE_DEBOUNCE_MS);
    });
    observer.observe(canvas);

    return () => {
      clearTimeout(timer);
      observer.disconnect();
      removeNativeView?.();
      scheduler.stop();
      subscription.unsubscribe();
      setHasFrame(false);
    };
  }, [stream, renderer, layer]);

  // The key gives each renderer a fresh canvas, since a canvas keeps its first context.
  return (
    <canvas
      key={renderer}
      ref={ref}
      data-testid={testId}
      data-renderer={renderer}
      data-has-frame={hasFrame ? "true" : "false"}
      class={`video ${renderer === "native" ? "native" : ""} ${className ?? ""}`}
    />
  );
}
