import { describe, expect, it } from "vitest";
import { AppError, toAppError, unwrap } from "./api";

describe("unwrap", () => {
  it("returns the data of an ok result", () => {
    expect(unwrap({ status: "ok", data: 42 })).toBe(42);
  });

  it("throws an AppError with code and detail", () => {
    const failing = () => unwrap({ status: "error", error: { code: "cameraBusy", detail: "/dev/video0" } });
    expect(failing).toThrow(AppError);
    try {
      failing();
    } catch (error) {
      expect((error as AppError).code).toBe("cameraBusy");
      expect((error as AppError).detail).toBe("/dev/video0");
    }
  });
});

describe("toAppError", () => {
  it("keeps a UiError's code", () => {
    expect(toAppError({ code: "busy", detail: null }).code).toBe("busy");
  });

  it("maps unknown codes and plain strings to internal", () => {
    expect(toAppError({ code: "somethingNew", detail: "x" }).code).toBe("internal");
    const fromString = toAppError("ipc failed");
    expect(fromString.code).toBe("internal");
    expect(fromString.detail).toBe("ipc failed");
  });
});
