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
} from "./bindings";
export type { PresenceView as Presence, Quality as CallQuality, EndReason as CallEndReason } from "./bindings";
