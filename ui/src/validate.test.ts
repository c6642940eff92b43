import { describe, expect, it } from "vitest";
import { checkAddress, checkNewPassword, checkUserName } from "./validate";

describe("checkAddress", () => {
  it.each(["chat.example.org", "chat.example.org:8443", "https://chat.example.org/", "192.168.1.20:8443", "[::1]:8443", "localhost"])(
    "accepts %s",
    (address) => {
      expect(checkAddress(address)).toBeNull();
    },
  );

  it.each(["chat example.org", "ftp://chat.example.org", "-bad-.example.org", "user:pw@chat.example.org", "chat..example.org"])(
    "rejects %s",
    (address) => {
      expect(checkAddress(address)?.key).toBe("validate.addressInvalid");
    },
  );

  it("asks for an empty address", () => {
    expect(checkAddress("  ")?.key).toBe("validate.addressRequired");
  });
});

describe("checkUserName", () => {
  it("accepts dotted names", () => {
    expect(checkUserName("li.wei_2")).toBeNull();
  });

  it("rejects spaces", () => {
    expect(checkUserName("li wei")?.key).toBe("validate.userInvalid");
  });
});

describe("checkNewPassword", () => {
  it("rejects short passwords", () => {
    expect(checkNewPassword("short", "short")?.key).toBe("validate.passwordShort");
  });

  it("rejects a mismatched confirmation", () => {
    expect(checkNewPassword("long enough", "long enougH")?.key).toBe("validate.passwordMismatch");
  });

  it("accepts a matching long password", () => {
    expect(checkNewPassword("correct horse", "correct horse")).toBeNull();
  });
});
