import { useEffect, useRef, useState } from "preact/hooks";
import { FrameScheduler, parseFrame } from "./frames";
import { createRenderer } from "./renderers";
import { subscribe } from "./hub";
import type { Renderer, StreamKey } from "../types";

type Props = {
  stream: StreamKey;
  renderer: Renderer;
  testId: string;
  class?: string;
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

/** A canvas that shows one video stream from Rust at its own device-pixel size. */
export function VideoCanvas({ stream, renderer, testId, class: className, onError }: Props) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [hasFrame, setHasFrame] = useState(false);
  const onErrorRef = useRef(onError);
  onErrorRef.current = onError;

  useEffect(() => {
    const canvas = ref.current;
    if (!canvas) return;
    const target = createRenderer(canvas, renderer);
    let seenFrame = false;
    const scheduler = new FrameScheduler((buffer) => {
      const frame = parseFrame(buffer);
      if (!frame || !target) return;
      target.draw(frame);
      canvas.framesDrawn = (canvas.framesDrawn ?? 0) + 1;
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

    let timer: ReturnType<typeof setTimeout> | undefined;
    const observer = new ResizeObserver(() => {
      clearTimeout(timer);
      timer = setTimeout(() => subscription.resize(deviceSize(canvas)), RESIZE_DEBOUNCE_MS);
    });
    observer.observe(canvas);

    return () => {
      clearTimeout(timer);
      observer.disconnect();
      scheduler.stop();
      subscription.unsubscribe();
      setHasFrame(false);
    };
  }, [stream, renderer]);

  // The key gives each renderer a fresh canvas, since a canvas keeps its first context.
  return (
    <canvas
      key={renderer}
      ref={ref}
      data-testid={testId}
      data-renderer={renderer}
      data-has-frame={hasFrame ? "true" : "false"}
      class={`video ${className ?? ""}`}
    />
  );
}
