import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("../api", () => ({ api: { placeNativeVideos: vi.fn(async () => undefined) } }));

import { addNativeView, measure } from "./native";

type Box = { left: number; top: number; width: number; height: number };

function place(element: HTMLElement, box: Box): HTMLElement {
  element.getBoundingClientRect = () =>
    ({ ...box, x: box.left, y: box.top, right: box.left + box.width, bottom: box.top + box.height, toJSON: () => box }) as DOMRect;
  return element;
}

function element(tag: string, box: Box, parent: HTMLElement = document.body): HTMLElement {
  const created = document.createElement(tag);
  parent.appendChild(created);
  return place(created, box);
}

const removers: (() => void)[] = [];

afterEach(() => {
  removers.splice(0).forEach((remove) => remove());
  document.body.innerHTML = "";
});

describe("measure", () => {
  it("reports the rectangle, the visible part and the holes over a view", () => {
    const stage = element("div", { left: 0, top: 0, width: 800, height: 600 });
    const canvas = element("canvas", { left: 0, top: 0, width: 800, height: 600 }, stage);
    const label = element("span", { left: 16, top: 16, width: 120, height: 24 }, stage);
    label.setAttribute("data-over-video", "");
    const selfView = element("div", { left: 600, top: 450, width: 180, height: 135 }, stage);
    selfView.setAttribute("data-over-video", "");
    const selfCanvas = element("canvas", { left: 600, top: 450, width: 180, height: 135 }, selfView);
    removers.push(addNativeView(canvas, "remote", 0, () => {}));
    removers.push(addNativeView(selfCanvas, "selfView", 1, () => {}));

    const [remote, self] = measure();
    expect(remote.stream).toBe("remote");
    expect(remote.rect).toEqual({ x: 0, y: 0, width: 800, height: 600 });
    expect(remote.holes).toEqual([
      { x: 16, y: 16, width: 120, height: 24 },
      { x: 600, y: 450, width: 180, height: 135 },
    ]);
    // The self view's own box contains its canvas, so it is no hole there.
    expect(self.layer).toBe(1);
    expect(self.holes).toEqual([]);
  });

  it("clips a view to its scrolling ancestor and leaves out hidden views", () => {
    const scroller = element("div", { left: 0, top: 100, width: 300, height: 200 });
    scroller.style.overflowY = "auto";
    const tile = element("canvas", { left: 0, top: 250, width: 300, height: 169 }, scroller);
    const below = element("canvas", { left: 0, top: 400, width: 300, height: 169 }, scroller);
    removers.push(addNativeView(tile, "participant:1", 0, () => {}));
    removers.push(addNativeView(below, "participant:2", 0, () => {}));

    const placements = measure();
    expect(placements).toHaveLength(1);
    expect(placements[0].rect).toEqual({ x: 0, y: 250, width: 300, height: 169 });
    expect(placements[0].clip).toEqual({ x: 0, y: 250, width: 300, height: 50 });
  });
});
