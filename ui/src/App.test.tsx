import { render } from "preact";
import { act } from "preact/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { setApi } from "./api";
import { App } from "./App";
import { createMockApi } from "./mock";
import { setLanguage } from "./i18n";

type MockHooks = {
  ring: (caller?: string, video?: boolean) => void;
  setConnection: (connection: string) => void;
  receive: (conversationId?: number, text?: string) => void;
  setRoom: (conversationId?: string, users?: string[]) => void;
  shareFrom: (participantId?: string, sharing?: boolean) => void;
  leaveRoom: (participantId?: string) => void;
  failNextJoin: (code?: string, detail?: string | null) => void;
};

let root: HTMLElement;

function byTestId(id: string): HTMLElement | null {
  return root.querySelector(`[data-testid="${id}"]`);
}

function allByTestId(id: string): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(`[data-testid="${id}"]`)];
}

async function waitFor<T>(find: () => T | null | undefined | false, timeoutMs = 2000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${find.toString()}`);
    await act(() => new Promise((resolve) => setTimeout(resolve, 10)));
  }
}

async function type(id: string, value: string): Promise<void> {
  const input = (await waitFor(() => byTestId(id))) as HTMLInputElement | HTMLTextAreaElement;
  await act(() => {
    input.value = value;
    input.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

async function click(id: string): Promise<void> {
  const element = await waitFor(() => byTestId(id));
  await act(() => element.click());
}

function mock(): MockHooks {
  return (window as unknown as { hearthMock: MockHooks }).hearthMock;
}

async function mount(search = ""): Promise<void> {
  window.history.replaceState(null, "", `/${search}`);
  setApi(createMockApi());
  await act(() => render(<App />, root));
}

beforeEach(() => {
  setLanguage("en");
  Object.defineProperty(navigator, "language", { value: "en-US", configurable: true });
  root = document.createElement("div");
  document.body.appendChild(root);
});

afterEach(async () => {
  await act(() => render(null, root));
  root.remove();
});

describe("first run", () => {
  it("validates the address before checking it", async () => {
    await mount();
    await click("choose-connect");
    await type("connect-address", "not a host");
    await click("connect-submit");
    expect(byTestId("connect-address-problem")?.textContent).toContain("host name");
  });

  it("shows the fingerprint of an untrusted server", async () => {
    await mount();
    await click("choose-connect");
    await type("connect-address", "self-signed.example.org");
    await click("connect-submit");
    const fingerprint = await waitFor(() => byTestId("server-fingerprint"));
    expect(fingerprint.textContent).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    await click("trust-certificate");
    await waitFor(() => byTestId("sign-in-user"));
  });

  it("shows a wrong password inline and stays usable", async () => {
    await mount();
    await click("choose-connect");
    await type("connect-address", "chat.example.org");
    await click("connect-submit");
    await type("sign-in-user", "me");
    await type("sign-in-password", "wrong");
    await click("sign-in-submit");
    const error = await waitFor(() => byTestId("error"));
    expect(error.textContent).toBe("The user name or password is incorrect.");

    await type("sign-in-password", "right password");
    await click("sign-in-submit");
    await waitFor(() => byTestId("main"));
  });

  it("starts an embedded server and shows the join address", async () => {
    await mount();
    await click("choose-host");
    await type("host-password", "short");
    await type("host-password-confirm", "short");
    await click("start-server");
    expect(byTestId("host-password-problem")?.textContent).toContain("8");

    await type("host-password", "a long password");
    await type("host-password-confirm", "a long password");
    await click("start-server");
    const url = (await waitFor(() => byTestId("join-url"))) as HTMLInputElement;
    expect(url.value).toMatch(/^https:\/\//);
  });
});

describe("main window", () => {
  it("sends a message with Enter", async () => {
    await mount("?demo");
    const items = await waitFor(() => allByTestId("conversation-item").length > 0 && allByTestId("conversation-item"));
    await act(() => items[1].click());
    await waitFor(() => allByTestId("message").length > 0);
    const before = allByTestId("message").length;

    await type("composer-input", "Hello team");
    const input = byTestId("composer-input")!;
    await act(() => {
      input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    });
    await waitFor(() => allByTestId("message").length === before + 1);
    expect(allByTestId("message").at(-1)?.textContent).toContain("Hello team");
    expect((byTestId("composer-input") as HTMLTextAreaElement).value).toBe("");
  });

  it("keeps Shift+Enter for a newline", async () => {
    await mount("?demo");
    const items = await waitFor(() => allByTestId("conversation-item").length > 0 && allByTestId("conversation-item"));
    await act(() => items[1].click());
    await type("composer-input", "line one");
    const input = byTestId("composer-input")!;
    const event = new KeyboardEvent("keydown", { key: "Enter", shiftKey: true, bubbles: true, cancelable: true });
    await act(() => {
      input.dispatchEvent(event);
    });
    expect(event.defaultPrevented).toBe(false);
    expect((input as HTMLTextAreaElement).value).toBe("line one");
  });

  it("shows call records and unread badges", async () => {
    await mount("?demo");
    const badge = await waitFor(() => byTestId("unread-badge"));
    expect(badge.textContent).toBe("2");
    await act(() => allByTestId("conversation-item")[0].click());
    await waitFor(() => root.querySelector('[data-kind="call"]'));
    const records = [...root.querySelectorAll('[data-kind="call"]')].map((e) => e.textContent ?? "");
    expect(records.some((text) => text.includes("Video call, 2:31"))).toBe(true);
    expect(records.some((text) => text.includes("Missed call"))).toBe(true);
  });

  it("loads older pages until the history starts", async () => {
    await mount("?demo");
    const items = await waitFor(() => allByTestId("conversation-item").length > 0 && allByTestId("conversation-item"));
    await act(() => items[0].click());
    // The test DOM has no layout, so the list never overflows and every page loads.
    await waitFor(() => allByTestId("message").length === 72);
    const seqs = allByTestId("message").map((m) => Number(m.dataset.seq));
    expect(seqs[0]).toBe(1);
    expect(seqs.at(-1)).toBe(72);
    expect(root.textContent).toContain("This is the start of the conversation.");
  });

  it("shows the connection banner and then Reconnected", async () => {
    await mount("?demo");
    await waitFor(() => byTestId("main"));
    expect(byTestId("status-banner")).toBeNull();
    await act(() => mock().setConnection("connecting"));
    expect(byTestId("status-banner")?.textContent).toBe("Connection lost, reconnecting…");
    await act(() => mock().setConnection("online"));
    expect(byTestId("status-banner")?.textContent).toBe("Reconnected");
  });

  it("switches language from settings", async () => {
    await mount("?demo");
    await click("settings-open");
    const select = (await waitFor(() => byTestId("settings-language"))) as HTMLSelectElement;
    await act(() => {
      select.value = "zh-CN";
      select.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await waitFor(() => byTestId("settings")?.textContent?.includes("跟随系统"));
    expect(document.documentElement.lang).toBe("zh-CN");
  });
});

describe("calls", () => {
  it("rings, accepts with voice and hangs up", async () => {
    await mount("?demo");
    await waitFor(() => byTestId("main"));
    await act(() => mock().ring("alice", true));
    expect(byTestId("incoming-caller")?.textContent).toBe("alice");
    await click("incoming-accept-voice");
    await waitFor(() => byTestId("call-timer"));
    expect(byTestId("remote-video")?.tagName).toBe("CANVAS");
    expect(byTestId("self-video")?.tagName).toBe("CANVAS");

    await click("call-mute");
    await waitFor(() => byTestId("call-mute")?.getAttribute("aria-pressed") === "true");
    await click("call-hangup");
    await waitFor(() => byTestId("in-call")?.dataset.callState === "ended");
  });

  it("adds a person, and the call moves into a group call", async () => {
    await mount("?demo");
    await waitFor(() => byTestId("main"));
    await act(() => mock().ring("alice", true));
    await click("incoming-accept-video");
    await waitFor(() => byTestId("call-timer"));
    await click("call-mute");
    await waitFor(() => byTestId("call-mute")?.getAttribute("aria-pressed") === "true");

    await click("call-add-toggle");
    const picker = await waitFor(() => byTestId("call-add-user") as HTMLSelectElement | null);
    const choices = Array.from(picker.options).map((option) => option.value);
    expect(choices).toEqual(["bob", "carol"]);
    picker.value = "carol";
    await act(() => {
      picker.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await click("call-add-confirm");

    await waitFor(() => byTestId("group-call")?.dataset.callState === "inRoom");
    await waitFor(() => allByTestId("room-tile").length === 3);
    expect(allByTestId("room-tile").map((tile) => tile.dataset.user)).toEqual(["me", "alice", "carol"]);
    // The microphone stays muted across the move.
    expect(allByTestId("room-tile")[0].querySelector("[data-testid=tile-muted]")).not.toBeNull();
  });

  it("declines an incoming call", async () => {
    await mount("?demo");
    await waitFor(() => byTestId("main"));
    await act(() => mock().ring("bob", false));
    await click("incoming-decline");
    await waitFor(() => byTestId("incoming-call") === null);
  });
});

describe("group calls", () => {
  async function openGroup(): Promise<void> {
    await mount("?demo");
    const items = await waitFor(() => allByTestId("conversation-item").length > 2 && allByTestId("conversation-item"));
    await act(() => items.find((item) => item.dataset.conversationId === "2")!.click());
    await waitFor(() => byTestId("conversation-title")?.textContent === "Release team");
  }

  it("shows a call in progress and follows its changes", async () => {
    await openGroup();
    const banner = await waitFor(() => byTestId("room-banner"));
    expect(banner.dataset.count).toBe("2");
    expect(byTestId("room-banner-text")?.textContent).toBe("Call in progress, 2 people");
    expect(byTestId("call-video")).toBeNull();

    await act(() => mock().setRoom("2", ["bob", "carol", "dave"]));
    expect(byTestId("room-banner")?.dataset.count).toBe("3");
    await act(() => mock().setRoom("2", []));
    expect(byTestId("room-banner")).toBeNull();
  });

  it("joins, shows a tile per participant and highlights the speaker", async () => {
    await openGroup();
    await click("room-join");
    await waitFor(() => byTestId("group-call")?.dataset.callState === "inRoom");
    const tiles = allByTestId("room-tile");
    expect(tiles.map((tile) => tile.dataset.user)).toEqual(["me", "bob", "carol"]);
    expect(tiles[0].dataset.self).toBe("true");
    expect(byTestId("self-video")?.tagName).toBe("CANVAS");
    expect(allByTestId("tile-video")).toHaveLength(2);
    expect(byTestId("room-grid")?.dataset.columns).toBe("2");
    expect(tiles.filter((tile) => tile.dataset.speaking === "true").map((tile) => tile.dataset.user)).toEqual(["bob"]);
    expect(tiles[2].querySelector("[data-testid=tile-muted]")).not.toBeNull();

    await act(() => mock().leaveRoom("2"));
    expect(allByTestId("room-tile").map((tile) => tile.dataset.user)).toEqual(["me", "bob"]);

    await click("call-mute");
    await waitFor(() => allByTestId("room-tile")[0].querySelector("[data-testid=tile-muted]"));
    await click("room-leave");
    await waitFor(() => byTestId("in-call")?.dataset.callState === "ended");
  });

  it("shares a screen from the picker and shows it large", async () => {
    await openGroup();
    await click("room-join");
    await waitFor(() => byTestId("group-call")?.dataset.callState === "inRoom");
    await click("room-share");
    const sources = await waitFor(() => allByTestId("share-source").length === 3 && allByTestId("share-source"));
    expect(sources.map((source) => source.dataset.kind)).toEqual(["screen", "window", "window"]);
    expect(allByTestId("share-thumbnail").map((thumbnail) => thumbnail.tagName)).toEqual(["CANVAS", "CANVAS", "DIV"]);
    await act(() => sources[0].click());

    const screen = await waitFor(() => byTestId("room-screen"));
    expect(screen.dataset.own).toBe("true");
    expect(byTestId("room-screen-label")?.textContent).toBe("You are sharing your screen");
    expect(byTestId("room-side")?.querySelectorAll("[data-testid=room-tile]")).toHaveLength(3);
    expect(byTestId("room-grid")).toBeNull();

    await click("room-stop-share");
    await waitFor(() => byTestId("room-grid"));
    expect(byTestId("room-screen")).toBeNull();
  });

  it("explains a failed join and stays usable", async () => {
    await openGroup();
    await act(() => mock().failNextJoin("notMember"));
    await click("room-join");
    const error = await waitFor(() => byTestId("call-error"));
    expect(error.textContent).toContain("You're not a member of this conversation");
    expect(byTestId("group-call")).toBeNull();

    await act(() => mock().failNextJoin("mediaUnreachable", "the media connection to the server"));
    await click("room-join");
    await waitFor(() => byTestId("call-error")?.textContent?.includes("UDP"));
    expect(byTestId("group-call")).toBeNull();

    await click("room-join");
    await waitFor(() => byTestId("group-call")?.dataset.callState === "inRoom");
  });

  it("returns to the grid when the sharer leaves mid-share", async () => {
    await openGroup();
    await click("room-join");
    await waitFor(() => byTestId("group-call")?.dataset.callState === "inRoom");
    await act(() => mock().shareFrom("1"));
    expect(byTestId("room-screen")?.dataset.participant).toBe("1");
    expect(byTestId("room-screen-label")?.textContent).toBe("bob is sharing their screen");

    await act(() => mock().leaveRoom("1"));
    expect(byTestId("room-screen")).toBeNull();
    expect(allByTestId("room-tile").map((tile) => tile.dataset.user)).toEqual(["me", "carol"]);
  });
});
