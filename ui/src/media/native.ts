// The `native` renderer's side in the page: the app draws each video in a widget over
// the webview, so the page only reports where its video elements are. One report lists
// every view with its rectangle, the part the page's scrolling leaves visible, and the
// page elements over it that must stay visible (names, marks, dialogs). The app leaves
// those holes unpainted, so the page shows through them.

import { api } from "../api";
import type { NativeVideoPlacement, StreamKey, ViewRect } from "../types";

/**
 * Page elements that stay visible over native video: marked ones, dialogs and toasts.
 * An element over a video that is not listed here is hidden behind it.
 */
export const OVER_VIDEO_SELECTOR = "[data-over-video], .modal, .incoming, .toast";

/** Interval of a layout check that catches moves no observer reports, such as transitions. */
const POLL_MS = 500;

type View = { id: number; element: HTMLElement; stream: StreamKey; layer: number; onError: (error: unknown) => void };

const views = new Map<number, View>();
let nextId = 1;
let scheduled = false;
let lastReport = "";
let observers: { stop: () => void } | null = null;

function toRect(rect: DOMRect | { left: number; top: number; right: number; bottom: number }): ViewRect {
  const x = Math.round(rect.left);
  const y = Math.round(rect.top);
  return { x, y, width: Math.max(0, Math.round(rect.right) - x), height: Math.max(0, Math.round(rect.bottom) - y) };
}

type Box = { left: number; top: number; right: number; bottom: number };

function intersect(a: Box, b: Box): Box {
  return { left: Math.max(a.left, b.left), top: Math.max(a.top, b.top), right: Math.min(a.right, b.right), bottom: Math.min(a.bottom, b.bottom) };
}

function isEmpty(box: Box): boolean {
  return box.right <= box.left || box.bottom <= box.top;
}

/** Returns the part of `element` that the viewport and clipping ancestors leave visible. */
export function visibleBox(element: HTMLElement): Box {
  let box: Box = intersect(element.getBoundingClientRect(), { left: 0, top: 0, right: window.innerWidth, bottom: window.innerHeight });
  for (let parent = element.parentElement; parent && parent !== document.body; parent = parent.parentElement) {
    const style = getComputedStyle(parent);
    if (style.display === "none" || style.visibility === "hidden") return { left: 0, top: 0, right: 0, bottom: 0 };
    if (style.overflowX !== "visible" || style.overflowY !== "visible") box = intersect(box, parent.getBoundingClientRect());
  }
  return box;
}

/** Returns the rectangles of elements over `element` that must stay visible, within `clip`. */
function holesOver(element: HTMLElement, clip: Box): ViewRect[] {
  const holes: ViewRect[] = [];
  for (const over of document.querySelectorAll<HTMLElement>(OVER_VIDEO_SELECTOR)) {
    // The video's own container is not over it.
    if (over.contains(element)) continue;
    const box = intersect(over.getBoundingClientRect(), clip);
    if (!isEmpty(box)) holes.push(toRect(box));
  }
  return holes;
}

/** Measures every view; views whose element left the page or has no size are left out. */
export function measure(): NativeVideoPlacement[] {
  const placements: NativeVideoPlacement[] = [];
  for (const view of views.values()) {
    if (!view.element.isConnected) continue;
    const clip = visibleBox(view.element);
    if (isEmpty(clip)) continue;
    placements.push({
      view: view.id,
      stream: view.stream,
      layer: view.layer,
      rect: toRect(view.element.getBoundingClientRect()),
      clip: toRect(clip),
      holes: holesOver(view.element, clip),
    });
  }
  return placements;
}

function report(): void {
  scheduled = false;
  const placements = measure();
  const text = JSON.stringify(placements);
  if (text === lastReport) return;
  lastReport = text;
  api.placeNativeVideos(placements).catch((error) => {
    // Send the next report even when nothing changed, since this one failed.
    lastReport = "";
    views.forEach((view) => view.onError(error));
  });
}

/** Reports the layout on the next animation frame, once however often it is called. */
export function scheduleReport(): void {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(report);
}

function startObserving(): { stop: () => void } {
  const mutations = new MutationObserver(scheduleReport);
  mutations.observe(document.body, { childList: true, subtree: true, attributes: true });
  const resizes = new ResizeObserver(scheduleReport);
  for (const view of views.values()) resizes.observe(view.element);
  window.addEventListener("resize", scheduleReport);
  // Scroll events do not bubble, so listen in the capture phase for every scroller.
  window.addEventListener("scroll", scheduleReport, true);
  const poll = setInterval(scheduleReport, POLL_MS);
  return {
    stop() {
      mutations.disconnect();
      resizes.disconnect();
      window.removeEventListener("resize", scheduleReport);
      window.removeEventListener("scroll", scheduleReport, true);
      clearInterval(poll);
    },
  };
}

/**
 * Shows `stream` natively over `element` until the returned function is called.
 * Views with a higher `layer` are drawn over those with a lower one.
 */
export function addNativeView(element: HTMLElement, stream: StreamKey, layer: number, onError: (error: unknown) => void): () => void {
  const id = nextId++;
  views.set(id, { id, element, stream, layer, onError });
  // Observers restart so the resize observer covers the new element.
  observers?.stop();
  observers = startObserving();
  scheduleReport();
  return () => {
    views.delete(id);
    observers?.stop();
    observers = views.size > 0 ? startObserving() : null;
    scheduleReport();
  };
}
