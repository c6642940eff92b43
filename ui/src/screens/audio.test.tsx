import { render } from "preact";
import { act } from "preact/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { setApi } from "../api";
import { App } from "../App";
import { createMockApi } from "../mock";
import { setLanguage } from "../i18n";

let root: HTMLElement;

function byTestId(id: string): HTMLElement | null {
  return root.querySelector(`[data-testid="${id}"]`);
}

async function waitFor<T>(find: () => T | null | undefined | false, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${find.toString()}`);
    await act(() => new Promise((resolve) => setTimeout(resolve, 10)));
  }
}

async function click(id: string): Promise<void> {
  const element = await waitFor(() => byTestId(id));
  await act(() => element.click());
}

async function choose(id: string, value: string): Promise<void> {
  const select = (await waitFor(() => byTestId(id))) as HTMLSelectElement;
  await act(() => {
    select.value = value;
    select.dispatchEvent(new Event("change", { bubbles: true }));
  });
}

async function mountDemo(): Promise<void> {
  window.history.replaceState(null, "", "/?demo");
  setApi(createMockApi());
  await act(() => render(<App />, root));
  await waitFor(() => byTestId("main"));
}

beforeEach(() => {
  setLanguage("en");
  root = document.createElement("div");
  document.body.append(root);
});

afterEach(() => {
  render(null, root);
  root.remove();
});

describe("call audio", () => {
  it("hints at talking while muted", async () => {
    await mountDemo();
    await act(() => (window as unknown as { hearthMock: { ring: (caller: string, video: boolean) => void } }).hearthMock.ring("alice", false));
    await click("incoming-accept-voice");
    await waitFor(() => byTestId("call-timer"));
    expect(byTestId("call-talking-while-muted")).toBeNull();

    await click("call-mute");
    const hint = await waitFor(() => byTestId("call-talking-while-muted"));
    expect(hint.textContent).toContain("talking while muted");
    await click("call-mute");
    await waitFor(() => byTestId("call-talking-while-muted") === null);
  });

  it("switches noise suppression during a call", async () => {
    await mountDemo();
    await act(() => (window as unknown as { hearthMock: { ring: (caller: string, video: boolean) => void } }).hearthMock.ring("alice", false));
    await click("incoming-accept-voice");
    await click("call-devices-toggle");
    const select = (await waitFor(() => byTestId("call-noise-suppression"))) as HTMLSelectElement;
    expect(select.value).toBe("rnnoise");
    expect([...select.options].map((option) => option.value)).toEqual(["rnnoise", "apm", "off"]);

    await choose("call-noise-suppression", "off");
    await waitFor(() => (byTestId("call-noise-suppression") as HTMLSelectElement).value === "off");
  });
});

describe("audio settings", () => {
  it("plays the speaker test", async () => {
    await mountDemo();
    await click("settings-open");
    const button = (await waitFor(() => byTestId("speaker-test"))) as HTMLButtonElement;
    expect(button.textContent).toBe("Play test sound");
    await click("speaker-test");
    await waitFor(() => (byTestId("speaker-test") as HTMLButtonElement).disabled);
    expect(byTestId("speaker-test")?.textContent).toBe("Playing…");
    await waitFor(() => !(byTestId("speaker-test") as HTMLButtonElement).disabled);
  });

  it("offers noise suppression in both languages", async () => {
    await mountDemo();
    await click("settings-open");
    const english = (await waitFor(() => byTestId("settings-noise-suppression"))) as HTMLSelectElement;
    expect([...english.options].map((option) => option.textContent)).toEqual(["RNNoise (recommended)", "Standard", "Off"]);

    await choose("settings-language", "zh-CN");
    await waitFor(() => byTestId("settings")?.textContent?.includes("降噪"));
    const select = (await waitFor(() => byTestId("settings-noise-suppression"))) as HTMLSelectElement;
    expect([...select.options].map((option) => option.textContent)).toEqual(["RNNoise（推荐）", "标准", "关闭"]);
  });
});
