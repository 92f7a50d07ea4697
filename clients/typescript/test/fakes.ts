/**
 * Test doubles for the kit's unit tests: an authgate stand-in behind a fake `fetch` (one cookie
 * jar shared by the "tabs" of a browser, rotation and reuse detection as the server does them),
 * Web Locks and a BroadcastChannel hub.
 */
import type { ChannelLike, LockManagerLike } from "../src/tabs.js";

export const EMAIL = "ada@example.com";
export const PASSWORD = "correct horse battery staple";
const BASE = "http://auth.test";

export interface Recorded {
  method: string;
  path: string;
  body: Record<string, unknown> | null;
  authorization: string | null;
  credentials: RequestCredentials;
}

function b64url(value: string): string {
  return btoa(value).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function problem(status: number, code: string, extra: Record<string, unknown> = {}): Response {
  return new Response(
    JSON.stringify({ type: "about:blank", title: code, status, detail: `${code} detail`, code, ...extra }),
    { status, headers: { "Content-Type": "application/problem+json" } },
  );
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

export class FakeAuthgate {
  readonly requests: Recorded[] = [];
  /** The browser's cookie jar: the refresh token the next cookie request carries. */
  jar: string | null = null;
  /** Milliseconds a refresh takes (so that concurrent refreshes overlap). */
  refreshLatency = 5;
  reuseDetected = 0;
  mfa = false;
  /** Every access token is refused (as after a signing-key incident), refreshes still work. */
  refuseAllAccess = false;
  accessTtl = 900;

  #live: string | null = null; // the session's current refresh token
  #rotated = new Set<string>();
  #validAccess = new Set<string>();
  #serial = 0;
  readonly sid = "6f1c1f4e-8d59-4d5e-9a3c-2f64b1b0c001";

  readonly fetch = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const text = request.method === "GET" ? "" : await request.text();
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
    const authorization = request.headers.get("Authorization");
    this.requests.push({
      method: request.method,
      path: url.pathname,
      body,
      authorization,
      credentials: request.credentials,
    });
    if (url.origin !== BASE) {
      throw new TypeError("unexpected origin " + url.origin);
    }
    return this.#route(request.method, url.pathname, body ?? {}, authorization, request.credentials);
  };

  count(path: string): number {
    return this.requests.filter((r) => r.path === path).length;
  }

  /** The server forgets every access token it issued (they now get 401). */
  revokeAccessTokens(): void {
    this.#validAccess.clear();
  }

  #issue(transport: unknown): Record<string, unknown> {
    this.#serial += 1;
    const refresh = `agr_${this.#serial}`;
    if (this.#live !== null) {
      this.#rotated.add(this.#live);
    }
    this.#live = refresh;
    const payload = b64url(JSON.stringify({ sub: "u1", sid: this.sid, n: this.#serial }));
    const access = `eyJhbGciOiJFZERTQSJ9.${payload}.sig${this.#serial}`;
    this.#validAccess.add(access);
    if (transport === "cookie") {
      this.jar = refresh;
    }
    return {
      access_token: access,
      token_type: "Bearer",
      expires_in: this.accessTtl,
      refresh_token: transport === "cookie" ? null : refresh,
      refresh_token_expires_in: 2_592_000,
    };
  }

  #endSession(): void {
    this.#live = null;
    this.#validAccess.clear();
  }

  #authorized(authorization: string | null): boolean {
    const token = authorization?.replace(/^Bearer /, "") ?? "";
    return !this.refuseAllAccess && this.#validAccess.has(token);
  }

  async #route(
    method: string,
    path: string,
    body: Record<string, unknown>,
    authorization: string | null,
    credentials: RequestCredentials,
  ): Promise<Response> {
    const cookie = credentials === "include" ? this.jar : null;
    switch (`${method} ${path}`) {
      case "POST /api/v1/auth/login":
        if (body.email !== EMAIL || body.password !== PASSWORD) {
          return problem(401, "invalid_credentials");
        }
        if (this.mfa) {
          return problem(403, "mfa_required", {
            mfa_token: "agm_test",
            methods: ["totp", "recovery_code"],
          });
        }
        return json(this.#issue(body.refresh_token_transport));
      case "POST /api/v1/auth/mfa/verify":
        if (body.mfa_token !== "agm_test") {
          return problem(400, "invalid_token");
        }
        if (body.code !== "123456") {
          return problem(400, "invalid_code");
        }
        return json(this.#issue(body.refresh_token_transport));
      case "POST /api/v1/auth/refresh": {
        const sent = typeof body.refresh_token === "string" ? body.refresh_token : cookie;
        const transport = typeof body.refresh_token === "string" ? "body" : "cookie";
        await new Promise((resolve) => setTimeout(resolve, this.refreshLatency));
        if (sent !== null && this.#rotated.has(sent)) {
          this.reuseDetected += 1;
          this.#endSession();
          return problem(401, "invalid_token");
        }
        if (sent === null || sent !== this.#live) {
          return problem(401, "invalid_token");
        }
        return json(this.#issue(transport));
      }
      case "POST /api/v1/auth/logout":
        this.#endSession();
        this.jar = null;
        return new Response(null, { status: 204 });
      case "POST /api/v1/auth/logout-all":
        if (!this.#authorized(authorization)) {
          return problem(401, "invalid_token");
        }
        this.#endSession();
        this.jar = null;
        return new Response(null, { status: 204 });
      case "GET /api/v1/users/me":
        if (!this.#authorized(authorization)) {
          return problem(401, "invalid_token");
        }
        return json({ id: "u1", email: EMAIL, name: "Ada", email_verified: true });
      case "GET /api/v1/sessions":
        if (!this.#authorized(authorization)) {
          return problem(401, "invalid_token");
        }
        return json([{ id: this.sid, current: true }]);
      case `DELETE /api/v1/sessions/${this.sid}`:
        if (!this.#authorized(authorization)) {
          return problem(401, "invalid_token");
        }
        this.#endSession();
        return new Response(null, { status: 204 });
      case "POST /api/v1/users/me/password":
        if (!this.#authorized(authorization)) {
          return problem(401, "invalid_token");
        }
        if (body.current_password !== PASSWORD) {
          return problem(400, "invalid_password");
        }
        return json(this.#issue(body.refresh_token_transport));
      case "POST /api/v1/auth/register":
        return json({ detail: "check your mail" }, 202);
      case "POST /api/v1/auth/password/reset":
        if (body.token !== "agp_ok") {
          return problem(400, "invalid_token");
        }
        return new Response(null, { status: 204 });
      default:
        return problem(404, "not_found");
    }
  }
}

/** Web Locks for several tabs: exclusive, FIFO, `ifAvailable` answers `null` when held. */
export class FakeLocks implements LockManagerLike {
  granted = 0;
  #held = new Set<string>();
  #waiting = new Map<string, Array<() => void>>();

  async request<T>(
    name: string,
    options: { ifAvailable?: boolean },
    callback: (lock: unknown) => Promise<T>,
  ): Promise<T> {
    if (this.#held.has(name)) {
      if (options.ifAvailable) {
        return callback(null);
      }
      await new Promise<void>((resolve) => {
        const queue = this.#waiting.get(name) ?? [];
        queue.push(resolve);
        this.#waiting.set(name, queue);
      });
    }
    this.#held.add(name);
    this.granted += 1;
    try {
      return await callback({ name });
    } finally {
      const next = this.#waiting.get(name)?.shift();
      if (next !== undefined) {
        next(); // handed straight to the next waiter, like the browser's lock manager
      } else {
        this.#held.delete(name);
      }
    }
  }
}

/** BroadcastChannels of one origin: a message reaches every other channel, a task later. */
export class ChannelHub {
  #channels = new Set<FakeChannel>();

  channel(): FakeChannel {
    const channel = new FakeChannel(this);
    this.#channels.add(channel);
    return channel;
  }

  deliver(from: FakeChannel, message: unknown): void {
    for (const channel of this.#channels) {
      if (channel !== from) {
        setTimeout(() => channel.receive(structuredClone(message)), 0);
      }
    }
  }

  remove(channel: FakeChannel): void {
    this.#channels.delete(channel);
  }
}

export class FakeChannel implements ChannelLike {
  #listeners: Array<(event: MessageEvent) => void> = [];

  constructor(private readonly hub: ChannelHub) {}

  postMessage(message: unknown): void {
    this.hub.deliver(this, message);
  }

  addEventListener(_type: "message", listener: (event: MessageEvent) => void): void {
    this.#listeners.push(listener);
  }

  receive(data: unknown): void {
    for (const listener of this.#listeners) {
      listener(new MessageEvent("message", { data }));
    }
  }

  close(): void {
    this.hub.remove(this);
  }
}

export const BASE_URL = BASE;
