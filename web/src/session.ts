/** The signed-in person's token, kept for this browser tab only (sessionStorage), never in a cookie. */
export interface Session {
  token: string;
  email: string;
  /** Seconds since the epoch, from the token's `exp`. */
  expiresAt: number;
}

const KEY = "access-broker.session";

function claims(token: string): Record<string, unknown> {
  const part = token.split(".")[1] ?? "";
  const text = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))));
}

export const session = {
  get(): Session | undefined {
    try {
      const stored = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Session | null;
      if (!stored || stored.expiresAt * 1000 <= Date.now()) return undefined;
      return stored;
    } catch {
      return undefined;
    }
  },
  /** Stores a token; the email and expiry are read from it (the API verifies it, this only displays). */
  set(token: string): Session {
    const payload = claims(token);
    const value: Session = {
      token,
      email: String(payload.email ?? payload.sub ?? ""),
      expiresAt: Number(payload.exp ?? 0),
    };
    sessionStorage.setItem(KEY, JSON.stringify(value));
    return value;
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};
