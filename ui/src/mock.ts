// An in-memory backend for running the UI in a plain browser and in tests. It keeps
// demo data, returns what the Rust commands would return, and generates test video.
// `window.hearthMock` exposes hooks to ring, drop the connection and so on.

import { AppError, type HearthApi, type Unlisten } from "./api";
import type {
  AppStatus,
  CallState,
  ChatMessage,
  Connection,
  ConversationSummary,
  ConversationUpdated,
  ErrorCode,
  MessageReceived,
  RoomCallView,
  RoomSummary,
  ScreenSourceView,
  StreamKey,
  UserView,
} from "./types";

type Handlers = {
  connection: Set<(c: Connection) => void>;
  conversations: Set<() => void>;
  message: Set<(m: MessageReceived) => void>;
  updated: Set<(m: ConversationUpdated) => void>;
  call: Set<(c: CallState) => void>;
  room: Set<(r: RoomSummary) => void>;
};

const PAGE_SIZE = 30;
const FRAME_INTERVAL_MS = 66;
const DEMO_FINGERPRINT = "5E:1A:9C:07:33:D2:8B:4F:A0:6E:91:C4:2D:77:E8:15:3B:CA:60:F9:04:8D:B2:5C:1F:E6:79:A3:0B:D4:62:98";

function addListener<T>(set: Set<T>, handler: T): Promise<Unlisten> {
  set.add(handler);
  return Promise.resolve(() => set.delete(handler));
}

function demoHistory(now: number): Map<string, ChatMessage[]> {
  const lines = [
    "Morning! Did the build pass overnight?",
    "Yes, all green. The installer is ready for testing.",
    "Great, I'll try it on the meeting-room PC after lunch.",
    "Remember to check the camera permissions on macOS.",
    "Will do.",
  ];
  const alice: ChatMessage[] = [];
  for (let i = 0; i < 70; i++) {
    alice.push({
      seq: i + 1,
      sender: i % 3 === 0 ? "me" : "alice",
      atMs: now - (70 - i) * 7 * 60_000,
      text: `${lines[i % lines.length]}${i < 60 ? ` (#${i + 1})` : ""}`,
      edited: i === 66,
      deleted: i === 64,
      call: null,
      notice: null,
    });
  }
  alice.push({ seq: 71, sender: "alice", atMs: now - 20 * 60_000, text: null, edited: false, deleted: false, call: { outcome: "ended", video: true, durationSecs: 151 }, notice: null });
  alice.push({ seq: 72, sender: "alice", atMs: now - 5 * 60_000, text: null, edited: false, deleted: false, call: { outcome: "missed", video: false, durationSecs: null }, notice: null });
  const team: ChatMessage[] = [
    { seq: 1, sender: "me", atMs: now - 3_700_000, text: null, edited: false, deleted: false, call: null, notice: { kind: "memberAdded", user: "carol" } },
    { seq: 2, sender: "bob", atMs: now - 3_600_000, text: "Stand-up moved to 10:30 today.", edited: false, deleted: false, call: null, notice: null },
    { seq: 3, sender: "carol", atMs: now - 3_500_000, text: "Thanks, see you there.\nI'll bring the release notes.", edited: false, deleted: false, call: null, notice: null },
  ];
  return new Map([
    ["1", alice],
    ["2", team],
    ["3", []],
  ]);
}

/** Fills an RGBA or I420 test pattern that moves with `tick`. */
function testFrame(format: "rgba" | "i420", width: number, height: number, tick: number, hue: number): ArrayBuffer {
  const chromaW = Math.ceil(width / 2);
  const chromaH = Math.ceil(height / 2);
  const body = format === "rgba" ? width * height * 4 : width * height + 2 * chromaW * chromaH;
  const buffer = new ArrayBuffer(8 + body);
  const view = new DataView(buffer);
  view.setUint8(0, format === "rgba" ? 0 : 1);
  view.setUint16(2, width, true);
  view.setUint16(4, height, true);

  const pixels = new Uint8Array(buffer, 8);
  const bar = (tick * 4) % width;

  if (format === "rgba") {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 4;
        const lit = Math.abs(x - bar) < width / 20 ? 80 : 0;
        pixels[i] = Math.min(255, hue + lit);
        pixels[i + 1] = Math.min(255, ((y * 255) / height) * 0.6 + lit);
        pixels[i + 2] = Math.min(255, ((x * 255) / width) * 0.8 + lit);
        pixels[i + 3] = 255;
      }
    }
    return buffer;
  }

  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const lit = Math.abs(x - bar) < width / 20 ? 60 : 0;
      pixels[y * width + x] = 16 + Math.round(((x + y) * 150) / (width + height)) + lit;
    }
  }
  pixels.fill(hue >> 1, width * height, width * height + chromaW * chromaH);
  pixels.fill(160, width * height + chromaW * chromaH);
  return buffer;
}

/** Returns a screen and two windows with gradient thumbnails. */
function demoScreenSources(): ScreenSourceView[] {
  const thumbnail = (width: number, height: number, hue: number) => {
    let binary = "";
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        binary += String.fromCharCode(hue, Math.round((y * 255) / height), Math.round((x * 255) / width));
      }
    }
    return { width, height, rgbBase64: btoa(binary) };
  };
  return [
    { id: "screen:0", kind: "screen", title: "", width: 1920, height: 1080, thumbnail: thumbnail(160, 90, 40) },
    { id: "window:0x1a00003", kind: "window", title: "Release notes - Editor", width: 1280, height: 800, thumbnail: thumbnail(144, 90, 200) },
    { id: "window:0x1c00007", kind: "window", title: "Terminal", width: 800, height: 600, thumbnail: null },
  ];
}

export function createMockApi(): HearthApi {
  const now = Date.now();
  const handlers: Handlers = { connection: new Set(), conversations: new Set(), message: new Set(), updated: new Set(), call: new Set(), room: new Set() };
  const signedIn = typeof location !== "undefined" && new URLSearchParams(location.search).has("demo");
  const status: AppStatus = {
    account: signedIn ? { server: "https://chat.example.org", user: "me" } : null,
    embedded: null,
    connection: signedIn ? "online" : "signedOut",
    settings: { language: null, startAtLogin: false, videoSource: { kind: "camera", id: "cam0" }, microphone: null, speaker: null, renderer: "i420", noiseSuppression: "rnnoise" },
    renderers: ["i420", "rgba"],
  };
  const users: UserView[] = [
    { name: "alice", presence: "online" },
    { name: "bob", presence: "away" },
    { name: "carol", presence: "offline" },
  ];
  const conversations: ConversationSummary[] = [
    { id: "1", title: "alice", kind: "direct", unread: 2, members: ["me", "alice"], peer: "alice", presence: "online", lastSeq: 72 },
    { id: "2", title: "Release team", kind: "group", unread: 0, members: ["me", "bob", "carol"], peer: null, presence: null, lastSeq: 3 },
    { id: "3", title: "bob", kind: "direct", unread: 0, members: ["me", "bob"], peer: "bob", presence: "away", lastSeq: 0 },
  ];
  const history = demoHistory(now);
  let call: CallState = { state: "idle" };
  const videoTimers = new Map<StreamKey, ReturnType<typeof setInterval>>();
  // The "Release team" conversation has a group call in progress.
  let rooms: RoomSummary[] = [{ conversationId: "2", users: ["bob", "carol"] }];
  let speakerTimer: ReturnType<typeof setInterval> | undefined;
  let joinFailure: AppError | null = null;

  const setCall = (next: CallState) => {
    call = next;
    handlers.call.forEach((h) => h(next));
  };
  const setConnection = (connection: Connection) => {
    status.connection = connection;
    handlers.connection.forEach((h) => h(connection));
  };
  const requireSignedIn = () => {
    if (!status.account) throw new AppError("notSignedIn", null);
  };
  const conversation = (id: string) => {
    const found = conversations.find((c) => c.id === id);
    if (!found) throw new AppError("notFound", `conversation ${id}`);
    return found;
  };
  const deliver = (id: string, message: ChatMessage) => {
    history.get(id)?.push(message);
    conversation(id).lastSeq = message.seq;
    handlers.message.forEach((h) => h({ conversationId: id, message }));
    handlers.conversations.forEach((h) => h());
  };
  const nextSeq = (id: string) => (history.get(id)?.at(-1)?.seq ?? 0) + 1;

  const api: HearthApi = {
    getStatus: async () => structuredClone(status),
    getSystemLocale: async () => navigator.language,
    checkServer: async (address) => {
      if (address.includes("unreachable")) throw new AppError("unreachable", `connection refused by ${address}`);
      const url = address.startsWith("http") ? address : `https://${address}`;
      return { url, trusted: !address.includes("self-signed"), fingerprint: DEMO_FINGERPRINT };
    },
    signIn: async (address, user, password) => {
      if (password === "wrong") throw new AppError("wrongPassword", null);
      status.account = { server: address, user };
      setConnection("online");
      return { ...status.account };
    },
    signInWithBrowser: async (address) => {
      status.account = { server: address, user: "me" };
      setConnection("online");
      return { ...status.account };
    },
    startEmbeddedServer: async (user) => {
      status.embedded = { joinUrls: ["https://192.0.2.10:8443"], fingerprint: DEMO_FINGERPRINT };
      status.account = { server: "https://127.0.0.1:8443", user };
      status.connection = "online";
      return structuredClone(status.embedded);
    },
    signOut: async () => {
      status.account = null;
      setConnection("signedOut");
    },
    listConversations: async () => {
      requireSignedIn();
      return structuredClone(conversations);
    },
    history: async (id, beforeSeq) => {
      conversation(id);
      const all = history.get(id) ?? [];
      const older = beforeSeq === null ? all : all.filter((m) => m.seq < beforeSeq);
      return { messages: structuredClone(older.slice(-PAGE_SIZE)), hasMore: older.length > PAGE_SIZE };
    },
    sendMessage: async (id, text) => {
      requireSignedIn();
      if (status.connection !== "online") throw new AppError("unreachable", "offline");
      deliver(id, { seq: nextSeq(id), sender: status.account!.user, atMs: Date.now(), text, edited: false, deleted: false, call: null, notice: null });
    },
    markRead: async (id) => {
      conversation(id).unread = 0;
    },
    listUsers: async () => structuredClone(users),
    openDirect: async (user) => {
      let found = conversations.find((c) => c.kind === "direct" && c.peer === user);
      if (!found) {
        const presence = users.find((u) => u.name === user)?.presence ?? null;
        found = { id: String(conversations.length + 1), title: user, kind: "direct", unread: 0, members: ["me", user], peer: user, presence, lastSeq: 0 };
        conversations.push(found);
        history.set(found.id, []);
      }
      return structuredClone(found);
    },
    createGroup: async (name, members) => {
      const group: ConversationSummary = { id: String(conversations.length + 1), title: name, kind: "group", unread: 0, members: ["me", ...members], peer: null, presence: null, lastSeq: 0 };
      conversations.push(group);
      history.set(group.id, []);
      handlers.conversations.forEach((h) => h());
      return structuredClone(group);
    },
    startCall: async (id, video) => {
      const peer = conversation(id).title;
      setCall({ state: "outgoing", peer, video });
      setTimeout(() => setCall({ state: "connecting", peer, video }), 600);
      setTimeout(() => setCall({ state: "connected", peer, video, startedAtMs: Date.now(), muted: false, cameraOn: video, quality: "good", talkingWhileMuted: false, warning: null }), 1200);
    },
    acceptCall: async (video) => {
      if (call.state !== "incoming") throw new AppError("notFound", "no incoming call");
      setCall({ state: "connected", peer: call.caller, video, startedAtMs: Date.now(), muted: false, cameraOn: video, quality: "good", talkingWhileMuted: false, warning: null });
    },
    declineCall: async () => {
      if (call.state === "incoming") setCall({ state: "ended", peer: call.caller, reason: "declined", detail: null });
    },
    hangUp: async () => {
      if (call.state !== "idle" && call.state !== "ended") {
        clearInterval(speakerTimer);
        const peer = call.state === "incoming" ? call.caller : call.state === "joining" || call.state === "inRoom" ? call.title : call.peer;
        setCall({ state: "ended", peer, reason: "localHangUp", detail: null });
      }
    },
    setMuted: async (muted) => {
      // The demo talks into a muted microphone, so the hint shows.
      if (call.state === "connected" || call.state === "inRoom") setCall({ ...call, muted, talkingWhileMuted: muted });
    },
    setCameraOn: async (cameraOn) => {
      if (call.state === "connected" || call.state === "inRoom") setCall({ ...call, cameraOn });
    },
    getCallState: async () => call,
    listDevices: async () => ({
      cameras: [
        { id: "cam0", name: "Integrated Camera", isDefault: true },
        { id: "cam1", name: "USB Webcam", isDefault: false },
      ],
      microphones: [{ id: "mic0", name: "Built-in Microphone", isDefault: true }],
      speakers: [{ id: "spk0", name: "Speakers", isDefault: true }],
    }),
    updateSettings: async (settings) => {
      if (settings.videoSource.kind === "file" && !settings.videoSource.path.endsWith(".h264") && !settings.videoSource.path.endsWith(".y4m")) {
        throw new AppError("videoFileUnreadable", settings.videoSource.path);
      }
      status.settings = structuredClone(settings);
      return structuredClone(settings);
    },
    pickVideoFile: async () => "/home/me/Videos/test-pattern.y4m",
    micLevel: async () => -45 + 25 * Math.abs(Math.sin(Date.now() / 400)),
    testSpeaker: () => new Promise((resolve) => setTimeout(resolve, 800)),
    watchVideo: async (stream, width, height, onFrame) => {
      clearInterval(videoTimers.get(stream));
      let tick = 0;
      const w = Math.min(width, 640);
      const h = Math.min(height, 480);
      const hue = stream === "selfView" ? 40 : stream.startsWith("screen:") ? 220 : 160 + (stream.length % 3) * 30;
      videoTimers.set(
        stream,
        setInterval(() => onFrame(testFrame(status.settings.renderer === "rgba" ? "rgba" : "i420", w, h, tick++, hue)), FRAME_INTERVAL_MS),
      );
    },
    unwatchVideo: async (stream) => {
      clearInterval(videoTimers.get(stream));
      videoTimers.delete(stream);
    },
    placeNativeVideos: async () => {
      throw new AppError("invalidInput", "the browser build has no native video renderer");
    },

    joinRoom: async (id, video) => {
      const group = conversation(id);
      if (group.kind !== "group") throw new AppError("invalidInput", `conversation ${id} is not a group`);
      if (joinFailure) {
        const failure = joinFailure;
        joinFailure = null;
        throw failure;
      }
      const users = rooms.find((r) => r.conversationId === id)?.users ?? [];
      const participants = [...users, status.account?.user ?? "me"].map((user, i) => ({ id: String(i + 1), user, audioMuted: i === 1, videoOff: false, screenSharing: false }));
      const room: RoomCallView = {
        conversationId: id,
        title: group.title,
        video,
        startedAtMs: Date.now(),
        selfId: String(participants.length),
        participants,
        activeSpeaker: "1",
        muted: false,
        cameraOn: video,
        sharing: null,
        quality: "good",
        talkingWhileMuted: false,
        warning: null,
      };
      setCall({ state: "inRoom", ...room });
      // The demo's speakers take turns.
      let turn = 0;
      clearInterval(speakerTimer);
      speakerTimer = setInterval(() => {
        if (call.state !== "inRoom") return;
        turn += 1;
        setCall({ ...call, activeSpeaker: call.participants[turn % call.participants.length].id });
      }, 2000);
    },
    listRooms: async () => structuredClone(rooms),
    listScreenSources: async () => demoScreenSources(),
    startScreenShare: async (sourceId) => {
      if (call.state !== "inRoom") throw new AppError("callFailed", "no group call is running");
      if (!demoScreenSources().some((s) => s.id === sourceId)) throw new AppError("notFound", sourceId);
      const selfId = call.selfId;
      setCall({ ...call, sharing: sourceId, participants: call.participants.map((p) => (p.id === selfId ? { ...p, screenSharing: true } : p)) });
    },
    addToCall: async (user) => {
      if (call.state !== "connected") throw new AppError("callFailed", "no call is connected");
      const connected = call;
      if (user === connected.peer || user === status.account?.user) throw new AppError("invalidInput", `${user} is in the call already; pick someone else`);
      if (!users.some((u) => u.name === user)) throw new AppError("notFound", user);
      const group: ConversationSummary = { id: String(conversations.length + 1), title: `me, ${connected.peer}, ${user}`, kind: "group", unread: 0, members: ["me", connected.peer, user], peer: null, presence: null, lastSeq: 0 };
      conversations.push(group);
      history.set(group.id, []);
      rooms = [...rooms, { conversationId: group.id, users: [connected.peer] }];
      handlers.conversations.forEach((h) => h());
      // The call moves once the room carries the peer's media, and the added person joins later.
      const participants = [connected.peer, "me"].map((name, i) => ({ id: String(i + 1), user: name, audioMuted: false, videoOff: false, screenSharing: false }));
      setTimeout(() => {
        if (call.state !== "connected") return;
        setCall({ state: "inRoom", conversationId: group.id, title: group.title, video: connected.video, startedAtMs: Date.now(), selfId: "2", participants, activeSpeaker: "1", muted: connected.muted, cameraOn: connected.cameraOn, sharing: null, quality: "good", talkingWhileMuted: false, warning: null });
      }, 600);
      setTimeout(() => {
        if (call.state !== "inRoom" || call.conversationId !== group.id) return;
        setCall({ ...call, participants: [...call.participants, { id: "3", user, audioMuted: false, videoOff: false, screenSharing: false }] });
      }, 2000);
    },
    stopScreenShare: async () => {
      if (call.state !== "inRoom") return;
      const selfId = call.selfId;
      setCall({ ...call, sharing: null, participants: call.participants.map((p) => (p.id === selfId ? { ...p, screenSharing: false } : p)) });
    },

    onConnectionChanged: (h) => addListener(handlers.connection, h),
    onConversationsChanged: (h) => addListener(handlers.conversations, h),
    onMessageReceived: (h) => addListener(handlers.message, h),
    onConversationUpdated: (h) => addListener(handlers.updated, h),
    onCallChanged: (h) => addListener(handlers.call, h),
    onRoomChanged: (h) => addListener(handlers.room, h),
  };

  if (typeof window !== "undefined") {
    (window as unknown as { hearthMock: object }).hearthMock = {
      ring: (caller = "alice", video = true) => setCall({ state: "incoming", caller, video }),
      setConnection,
      receive: (id = "1", text = "Hello from the mock") =>
        deliver(id, { seq: nextSeq(id), sender: conversation(id).peer ?? "bob", atMs: Date.now(), text, edited: false, deleted: false, call: null, notice: null }),
      remoteHangUp: () => call.state === "connected" && setCall({ state: "ended", peer: call.peer, reason: "remoteHangUp", detail: null }),
      setRoom: (conversationId = "2", users: string[] = []) => {
        rooms = rooms.filter((r) => r.conversationId !== conversationId);
        if (users.length > 0) rooms.push({ conversationId, users });
        handlers.room.forEach((h) => h({ conversationId, users }));
      },
      shareFrom: (participantId = "1", sharing = true) => {
        if (call.state !== "inRoom") return;
        setCall({ ...call, participants: call.participants.map((p) => (p.id === participantId ? { ...p, screenSharing: sharing } : p)) });
      },
      failNextJoin: (code: ErrorCode = "notMember", detail: string | null = null) => {
        joinFailure = new AppError(code, detail);
      },
      leaveRoom: (participantId = "1") => {
        if (call.state !== "inRoom") return;
        setCall({ ...call, participants: call.participants.filter((p) => p.id !== participantId) });
      },
    };
  }
  return api;
}
