// One frame subscription per video stream, shared by every canvas that shows it (the
// in-call self view and the Settings preview can both show "self"). Rust scales to
// the size requested, so the hub requests the largest size any canvas needs.

import { api } from "../api";
import type { StreamKey } from "../types";

type Size = { width: number; height: number };

export type Subscriber = {
  onFrame: (buffer: ArrayBuffer) => void;
  size: Size;
  onError?: (error: unknown) => void;
};

type StreamState = { subscribers: Set<Subscriber>; requested: Size | null };

const streams = new Map<StreamKey, StreamState>();

function largestSize(subscribers: Set<Subscriber>): Size | null {
  let width = 0;
  let height = 0;
  for (const s of subscribers) {
    width = Math.max(width, s.size.width);
    height = Math.max(height, s.size.height);
  }
  return width > 0 && height > 0 ? { width, height } : null;
}

function dispatch(stream: StreamKey, buffer: ArrayBuffer): void {
  streams.get(stream)?.subscribers.forEach((s) => s.onFrame(buffer));
}

function reportError(state: StreamState, error: unknown): void {
  state.subscribers.forEach((s) => s.onError?.(error));
}

async function refresh(stream: StreamKey): Promise<void> {
  const state = streams.get(stream);
  if (!state) return;

  if (state.subscribers.size === 0) {
    streams.delete(stream);
    await api.unwatchVideo(stream).catch((error) => console.warn(`unwatchVideo(${stream}) failed`, error));
    return;
  }

  const size = largestSize(state.subscribers);
  if (!size) return;
  if (state.requested && state.requested.width === size.width && state.requested.height === size.height) return;
  state.requested = size;
  try {
    await api.watchVideo(stream, size.width, size.height, (buffer) => dispatch(stream, buffer));
  } catch (error) {
    state.requested = null;
    reportError(state, error);
  }
}

/** Adds a canvas to `stream`; returns functions to resize and remove it. */
export function subscribe(stream: StreamKey, subscriber: Subscriber) {
  let state = streams.get(stream);
  if (!state) {
    state = { subscribers: new Set(), requested: null };
    streams.set(stream, state);
  }
  state.subscribers.add(subscriber);
  void refresh(stream);

  return {
    resize(size: Size): void {
      subscriber.size = size;
      void refresh(stream);
    },
    unsubscribe(): void {
      streams.get(stream)?.subscribers.delete(subscriber);
      void refresh(stream);
    },
  };
}
