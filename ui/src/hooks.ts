import { useEffect, useRef, useState } from "preact/hooks";
import { api, type HearthApi, type Unlisten } from "./api";

type EventName = "onConnectionChanged" | "onConversationsChanged" | "onMessageReceived" | "onConversationUpdated" | "onCallChanged" | "onRoomChanged";
type Payload<E extends EventName> = Parameters<Parameters<HearthApi[E]>[0]>[0];

/** Subscribes to a backend event for the component's lifetime. */
export function useEvent<E extends EventName>(event: E, handler: (payload: Payload<E>) => void): void {
  const latest = useRef(handler);
  latest.current = handler;
  useEffect(() => {
    let unlisten: Unlisten | null = null;
    let unmounted = false;
    const subscribe = api[event] as (handler: (payload: Payload<E>) => void) => Promise<Unlisten>;
    subscribe((payload) => latest.current(payload))
      .then((stop) => {
        if (unmounted) stop();
        else unlisten = stop;
      })
      .catch((error) => console.warn("event subscription failed", error));
    return () => {
      unmounted = true;
      unlisten?.();
    };
  }, []);
}

/** Returns `Date.now()`, refreshed every `intervalMs` while `active`. */
export function useNow(intervalMs: number, active = true): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, active]);
  return now;
}
