// Field checks run before a form is submitted. Each returns an i18n key with its
// parameters, or null when the value is acceptable.

export type Problem = { key: string; params?: Record<string, string | number> } | null;

export const MIN_PASSWORD_LENGTH = 8;

const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const USER_NAME = /^[a-z0-9._-]{1,64}$/i;

/**
 * Accepts a host name, IPv4 or bracketed IPv6 address, with an optional port,
 * optionally written as an https:// URL with a path.
 */
export function checkAddress(value: string): Problem {
  const address = value.trim();
  if (address === "") return { key: "validate.addressRequired" };

  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `https://${address}`);
  } catch {
    return { key: "validate.addressInvalid" };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return { key: "validate.addressInvalid" };
  if (url.username || url.password) return { key: "validate.addressInvalid" };

  const host = url.hostname;
  if (host.startsWith("[") && host.endsWith("]")) return null;
  const labels = host.split(".");
  if (labels.some((label) => !HOST_LABEL.test(label))) return { key: "validate.addressInvalid" };
  return null;
}

export function checkUserName(value: string): Problem {
  const name = value.trim();
  if (name === "") return { key: "validate.userRequired" };
  if (!USER_NAME.test(name)) return { key: "validate.userInvalid" };
  return null;
}

export function checkPassword(value: string): Problem {
  if (value === "") return { key: "validate.passwordRequired" };
  return null;
}

/** Checks a password chosen for a new account, which has a minimum length. */
export function checkNewPassword(value: string, confirmation: string): Problem {
  if (value === "") return { key: "validate.passwordRequired" };
  if ([...value].length < MIN_PASSWORD_LENGTH) {
    return { key: "validate.passwordShort", params: { min: MIN_PASSWORD_LENGTH } };
  }
  if (value !== confirmation) return { key: "validate.passwordMismatch" };
  return null;
}
