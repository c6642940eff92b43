// The one module between the Tauri bindings and the screens. It unwraps command
// results into values or thrown `AppError`s, hides the frame channel, and lets the
// browser build swap in an in-memory backend.

import { Channel } from "@tauri-apps/api/core";

import { commands, events } from "./bindings";
import type { VideoStream } from "./bindings";
import type {
  Account,
  AppStatus,
  CallState,
  Connection,
  ConversationSummary,
  ConversationUpdated,
  Devices,
  EmbeddedServer,
  ErrorCode,
  HistoryView,
  MessageReceived,
  NativeVideoPlacement,
  RoomSummary,
  ScreenSourceView,
  ServerCheck,
  Settings,
  StreamKey,
  UiError,
  UserView,
} from "./types";

export const ERROR_CODES = [
  "invalidAddress",
  "unreachable",
  "untrustedCertificate",
  "wrongPassword",
  "notSignedIn",
  "serverFailed",
  "cameraMissing",
  "cameraBusy",
  "noMicrophone",
  "audioDeviceFailed",
  "videoFileUnreadable",
  "callFailed",
  "declined",
  "noAnswer",
  "busy",
  "notFound",
  "invalidInput",
  "keyringUnavailable",
  "notMember",
  "mediaUnreachable",
  "screenCaptureUnavailable",
  "internal",
] as const satisfies readonly ErrorCode[];

// Fails to compile when the Rust side adds an error code that the list above lacks.
type MissingCodes = Exclude<ErrorCode, (typeof ERROR_CODES)[number]>;
const allCodesListed: MissingCodes extends never ? true : MissingCodes = true;
void allCodesListed;

/** A failed command: a stable code to localize plus the Rust side's detail text. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly detail: string | null;

  constructor(code: ErrorCode, detail: string | null) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = "AppError";
    this.code = code;
    this.detail = detail;
  }
}

function isUiError(value: unknown): value is UiError {
  if (typeof value !== "object" || value === null) return false;
  const code = (value as { code?: unknown }).code;
  return typeof code === "string" && (ERROR_CODES as readonly string[]).includes(code);
}

/** Converts anything a command rejected with into an `AppError`. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (isUiError(error)) return new AppError(error.code, error.detail ?? null);
  if (error instanceof Error) return new AppError("internal", error.message);
  return new AppError("internal", typeof error === "string" ? error : JSON.stringify(error));
}

export type CommandResult<T> = { status: "ok"; data: T } | { status: "error"; error: UiError };

/** Returns the data of a command result, or throws its error as an `AppError`. */
export function unwrap<T>(result: CommandResult<T>): T {
  if (result.status === "ok") return result.data;
  throw toAppError(result.error);
}

export type Unlisten = () => void;

/** Everything the screens can ask of the backend. */
export interface HearthApi {
  getStatus(): Promise<AppStatus>;
  getSystemLocale(): Promise<string>;
  checkServer(address: string): Promise<ServerCheck>;
  signIn(address: string, user: string, password: string, trustedFingerprint: string | null): Promise<Account>;
  signInWithBrowser(address: string, trustedFingerprint: string | null): Promise<Account>;
  startEmbeddedServer(user: string, password: string): Promise<EmbeddedServer>;
  signOut(): Promise<void>;
  listConversations(): Promise<ConversationSummary[]>;
  /** Returns a page of messages before `beforeSeq` (the newest without it), oldest first. */
  history(conversationId: string, beforeSeq: number | null): Promise<HistoryView>;
  sendMessage(conversationId: string, text: string): Promise<void>;
  markRead(conversationId: string): Promise<void>;
  listUsers(): Promise<UserView[]>;
  openDirect(user: string): Promise<ConversationSummary>;
  createGroup(name: string, members: string[]): Promise<ConversationSummary>;
  startCall(conversationId: string, video: boolean): Promise<void>;
  acceptCall(video: boolean): Promise<void>;
  declineCall(): Promise<void>;
  hangUp(): Promise<void>;
  setMuted(muted: boolean): Promise<void>;
  setCameraOn(on: boolean): Promise<void>;
  getCallState(): Promise<CallState>;
  listDevices(): Promise<Devices>;
  updateSettings(settings: Settings): Promise<Settings>;
  pickVideoFile(): Promise<string | null>;
  micLevel(): Promise<number>;
  /** Plays a short sound on the chosen speaker and resolves when it ends. */
  testSpeaker(): Promise<void>;
  /**
   * Streams frames of `stream`, scaled to `width`x`height` device pixels, to `onFrame`.
   * For a group call participant's camera the size also picks the layer the server sends.
   */
  watchVideo(stream: StreamKey, width: number, height: number, onFrame: (frame: ArrayBuffer) => void): Promise<void>;
  unwatchVideo(stream: StreamKey): Promise<void>;
  /** Places the native renderer's video views; views not listed are removed. */
  placeNativeVideos(placements: NativeVideoPlacement[]): Promise<void>;
  /** Joins a conversation's group call and resolves once the server's SFU accepted the join. */
  joinRoom(conversationId: string, video: boolean): Promise<void>;
  /** Returns the group calls in progress in the user's conversations. */
  listRooms(): Promise<RoomSummary[]>;
  listScreenSources(): Promise<ScreenSourceView[]>;
  startScreenShare(sourceId: string): Promise<void>;
  stopScreenShare(): Promise<void>;
  /** Adds a user to the connected one-to-one call, which moves into the group call of a new group of the three. */
  addToCall(user: string): Promise<void>;

  onConnectionChanged(handler: (connection: Connection) => void): Promise<Unlisten>;
  onConversationsChanged(handler: () => void): Promise<Unlisten>;
  onMessageReceived(handler: (event: MessageReceived) => void): Promise<Unlisten>;
  /** A message was edited or deleted after it was shown, so the conversation needs a reload. */
  onConversationUpdated(handler: (event: ConversationUpdated) => void): Promise<Unlisten>;
  onCallChanged(handler: (call: CallState) => void): Promise<Unlisten>;
  /** Reports each change of the people in a conversation's group call; no users means it ended. */
  onRoomChanged(handler: (room: RoomSummary) => void): Promise<Unlisten>;
}

/** Splits a group call stream key into its participant id and whether it is the screen share. */
export function parseRoomStream(stream: StreamKey): { participantId: string; screen: boolean } | null {
  const [kind, participantId] = stream.split(":", 2);
  if (participantId === undefined) return null;
  if (kind === "participant") return { participantId, screen: false };
  if (kind === "screen") return { participantId, screen: true };
  return null;
}

// NOTE: until ui/src/bindings.ts is generated, these calls use raw `invoke` and
// `listen` with the names tauri-specta derives: snake_case commands, kebab-case events.
async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw toAppError(error);
  }
}

async function result<T>(run: () => Promise<CommandResult<T>>): Promise<T> {
  return unwrap(await call(run));
}

function listenTo<T>(event: { listen: (cb: (e: { payload: T }) => void) => Promise<Unlisten> }, handler: (payload: T) => void): Promise<Unlisten> {
  return event.listen((e) => handler(e.payload));
}

/** The backend inside the Tauri window, over the generated bindings. */
export const tauriApi: HearthApi = {
  getStatus: () => result(() => commands.getStatus()),
  getSystemLocale: () => call(() => commands.getSystemLocale()),
  checkServer: (address) => result(() => commands.checkServer(address)),
  signIn: (address, user, password, trustedFingerprint) =>
    result(() => commands.signIn(address, user, password, trustedFingerprint)),
  signInWithBrowser: (address, trustedFingerprint) => result(() => commands.signInWithBrowser(address, trustedFingerprint)),
  startEmbeddedServer: (user, password) => result(() => commands.startEmbeddedServer(user, password)),
  signOut: async () => {
    await result(() => commands.signOut());
  },
  listConversations: () => result(() => commands.listConversations()),
  history: (conversationId, beforeSeq) => result(() => commands.history(conversationId, beforeSeq)),
  sendMessage: async (conversationId, text) => {
    await result(() => commands.sendMessage(conversationId, text));
  },
  markRead: async (conversationId) => {
    await result(() => commands.markRead(conversationId));
  },
  listUsers: () => result(() => commands.listUsers()),
  openDirect: (user) => result(() => commands.openDirect(user)),
  createGroup: (name, members) => result(() => commands.createGroup(name, members)),
  startCall: async (conversationId, video) => {
    await result(() => commands.startCall(conversationId, video));
  },
  acceptCall: async (video) => {
    await result(() => commands.acceptCall(video));
  },
  declineCall: async () => {
    await result(() => commands.declineCall());
  },
  hangUp: async () => {
    await result(() => commands.hangUp());
  },
  setMuted: async (muted) => {
    await result(() => commands.setMuted(muted));
  },
  setCameraOn: async (on) => {
    await result(() => commands.setCameraOn(on));
  },
  getCallState: () => call(() => commands.getCallState()),
  listDevices: () => result(() => commands.listDevices()),
  updateSettings: (settings) => result(() => commands.updateSettings(settings)),
  pickVideoFile: () => result(() => commands.pickVideoFile()),
  micLevel: () => result(() => commands.micLevel()),
  testSpeaker: async () => {
    await result(() => commands.testSpeaker());
  },
  watchVideo: async (stream, width, height, onFrame) => {
    // Rust sends each frame as a raw ArrayBuffer, though the generated type says
    // number[] because FrameBytes is declared to specta as Vec<u8>.
    const channel = new Channel<ArrayBuffer>();
    channel.onmessage = onFrame;
    const frames = channel as unknown as Parameters<typeof commands.watchVideo>[0];
    const room = parseRoomStream(stream);
    if (room) {
      await result(() => commands.watchRoomVideo(frames, room.participantId, room.screen, width, height));
      return;
    }
    return call(() => commands.watchVideo(frames, stream as VideoStream, width, height));
  },
  unwatchVideo: async (stream) => {
    const room = parseRoomStream(stream);
    if (room) {
      await result(() => commands.unwatchRoomVideo(room.participantId, room.screen));
      return;
    }
    return call(() => commands.unwatchVideo(stream as VideoStream));
  },
  placeNativeVideos: async (placements) => {
    await result(() => commands.placeNativeVideos(placements));
  },
  joinRoom: async (conversationId, video) => {
    await result(() => commands.joinRoom(conversationId, video));
  },
  listRooms: () => call(() => commands.listRooms()),
  listScreenSources: () => result(() => commands.listScreenSources()),
  startScreenShare: async (sourceId) => {
    await result(() => commands.startScreenShare(sourceId));
  },
  stopScreenShare: async () => {
    await result(() => commands.stopScreenShare());
  },
  addToCall: async (user) => {
    await result(() => commands.addToCall(user));
  },

  onConnectionChanged: (handler) => listenTo(events.connectionChanged, handler),
  onConversationsChanged: (handler) => listenTo(events.conversationsChanged, () => handler()),
  onMessageReceived: (handler) => listenTo(events.messageReceived, handler),
  onConversationUpdated: (handler) => listenTo(events.conversationUpdated, handler),
  onCallChanged: (handler) => listenTo(events.callChanged, handler),
  onRoomChanged: (handler) => listenTo(events.roomChanged, handler),
};

export let api: HearthApi = tauriApi;

export function setApi(backend: HearthApi): void {
  api = backend;
}

export function insideTauri(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}
