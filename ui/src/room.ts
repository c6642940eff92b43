// Layout decisions of the group call view, kept apart from the components so
// they can be tested without rendering.

import type { RoomCallView, RoomMemberView } from "./types";

/** Width over height of a video tile. */
export const TILE_ASPECT = 16 / 9;

export type GridShape = { columns: number; rows: number };

/**
 * Returns the columns and rows for `count` tiles of `TILE_ASPECT` in a `width`x`height`
 * area that make each tile as large as possible. Without a measured area it assumes 16:9.
 */
export function gridShape(count: number, width = 16, height = 9): GridShape {
  if (count <= 1) return { columns: 1, rows: 1 };
  let best: GridShape = { columns: count, rows: 1 };
  let bestTileWidth = 0;
  for (let columns = 1; columns <= count; columns++) {
    const rows = Math.ceil(count / columns);
    const tileWidth = Math.min(width / columns, (height / rows) * TILE_ASPECT);
    // On a tie, up to rounding, fewer rows win: people sit side by side.
    if (tileWidth > bestTileWidth - 0.01) {
      bestTileWidth = tileWidth;
      best = { columns, rows };
    }
  }
  return best;
}

export type RoomLayout = {
  /** The participant whose shared screen is shown large, if anyone shares. */
  screenOwner: RoomMemberView | null;
  /** Every participant's tile: this device first, then the others in the order they joined. */
  tiles: RoomMemberView[];
};

/**
 * Decides what the call view shows. A shared screen is shown large. When several people
 * share, someone else's screen wins over one's own, because the user sees their own
 * screen already.
 */
export function roomLayout(call: RoomCallView): RoomLayout {
  const self = call.participants.find((p) => p.id === call.selfId);
  const others = call.participants.filter((p) => p.id !== call.selfId);
  const tiles = self ? [self, ...others] : others;
  const sharingOther = others.find((p) => p.screenSharing) ?? null;
  const sharingSelf = call.sharing !== null && self ? self : null;
  return { screenOwner: sharingOther ?? sharingSelf, tiles };
}

/** Returns the number of people in a call from its users, one entry per device. */
export function peopleInCall(users: string[]): number {
  return new Set(users).size;
}
