// Types shared with the Rust side, generated into `bindings.ts`. The UI's own
// names for a few of them are aliases here.

export type {
  ErrorCode,
  UiError,
  Account,
  EmbeddedServer,
  Connection,
  ServerCheck,
  VideoSource,
  Renderer,
  NoiseSuppressionMode,
  Settings,
  AppStatus,
  ConversationSummary,
  CallRecord,
  ChatMessage,
  Notice,
  HistoryView,
  UserView,
  DeviceView,
  Devices,
  CallState,
  MessageReceived,
  ConversationUpdated,
  VideoStream,
  RoomCallView,
  RoomMemberView,
  RoomSummary,
  ScreenSourceKind,
  ScreenSourceView,
  ThumbnailView,
  NativeVideoPlacement,
  ViewRect,
} from "./bindings";
export type { PresenceView as Presence, Quality as CallQuality, EndReason as CallEndReason } from "./bindings";

/**
 * A video stream the page can show: the one-to-one call's views, or a group call
 * participant's camera or screen share by participant id.
 */
export type StreamKey = import("./bindings").VideoStream | `participant:${string}` | `screen:${string}`;
