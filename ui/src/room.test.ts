import { describe, expect, it } from "vitest";
import { gridShape, peopleInCall, roomLayout } from "./room";
import type { RoomCallView, RoomMemberView } from "./types";

function member(id: string, user: string, screenSharing = false): RoomMemberView {
  return { id, user, audioMuted: false, videoOff: false, screenSharing };
}

function call(participants: RoomMemberView[], selfId: string, sharing: string | null = null): RoomCallView {
  return {
    conversationId: "7",
    title: "Release team",
    video: true,
    startedAtMs: 0,
    selfId,
    participants,
    activeSpeaker: null,
    muted: false,
    cameraOn: true,
    sharing,
    quality: "good",
    talkingWhileMuted: false,
    warning: null,
  };
}

describe("gridShape", () => {
  it("shows one tile alone", () => {
    expect(gridShape(0)).toEqual({ columns: 1, rows: 1 });
    expect(gridShape(1)).toEqual({ columns: 1, rows: 1 });
  });

  it("puts two tiles side by side in a wide area", () => {
    expect(gridShape(2, 1600, 900)).toEqual({ columns: 2, rows: 1 });
  });

  it("stacks two tiles in a tall area", () => {
    expect(gridShape(2, 600, 900)).toEqual({ columns: 1, rows: 2 });
  });

  it("makes a square grid for four in a 16:9 area", () => {
    expect(gridShape(4, 1600, 900)).toEqual({ columns: 2, rows: 2 });
  });

  it("re-flows as people join", () => {
    const shapes = [3, 5, 7, 10].map((count) => gridShape(count, 1600, 900));
    expect(shapes).toEqual([
      { columns: 2, rows: 2 },
      { columns: 3, rows: 2 },
      { columns: 3, rows: 3 },
      { columns: 4, rows: 3 },
    ]);
    for (const [i, count] of [3, 5, 7, 10].entries()) {
      expect(shapes[i].columns * shapes[i].rows, `room for ${count}`).toBeGreaterThanOrEqual(count);
    }
  });
});

describe("roomLayout", () => {
  it("puts this device's tile first", () => {
    const layout = roomLayout(call([member("1", "bob"), member("2", "alice"), member("3", "carol")], "2"));
    expect(layout.tiles.map((t) => t.id)).toEqual(["2", "1", "3"]);
    expect(layout.screenOwner).toBeNull();
  });

  it("shows another participant's screen large", () => {
    const layout = roomLayout(call([member("1", "bob", true), member("2", "alice")], "2"));
    expect(layout.screenOwner?.id).toBe("1");
  });

  it("shows one's own screen when nobody else shares", () => {
    const layout = roomLayout(call([member("1", "bob"), member("2", "alice", true)], "2", "screen:0"));
    expect(layout.screenOwner?.id).toBe("2");
  });

  it("prefers someone else's screen over one's own", () => {
    const layout = roomLayout(call([member("1", "bob", true), member("2", "alice", true)], "2", "screen:0"));
    expect(layout.screenOwner?.id).toBe("1");
  });

  it("drops the large screen when its owner leaves", () => {
    const sharing = roomLayout(call([member("1", "bob", true), member("2", "alice")], "2"));
    const left = roomLayout(call([member("2", "alice")], "2"));
    expect(sharing.screenOwner?.id).toBe("1");
    expect(left.screenOwner).toBeNull();
    expect(left.tiles.map((t) => t.id)).toEqual(["2"]);
  });
});

describe("peopleInCall", () => {
  it("counts a user on two devices once", () => {
    expect(peopleInCall(["bob", "carol", "bob"])).toBe(2);
    expect(peopleInCall([])).toBe(0);
  });
});
