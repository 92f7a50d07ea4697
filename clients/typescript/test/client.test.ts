import { readdirSync, readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AuthgateProblem,
  createAuthClient,
  type AuthClientOptions,
  type ChannelLike,
  type LockManagerLike,
} from "../src/index.js";
import { problemFromResponse } from "../src/problem.js";
import { BASE_URL, ChannelHub, EMAIL, FakeAuthgate, FakeLocks, PASSWORD } from "./fakes.js";

let server: FakeAuthgate;

beforeEach(() => {
  server = new FakeAuthgate();
});

function client(options: Partial<AuthClientOptions> = {}) {
  return createAuthClient({
    baseUrl: BASE_URL,
    fetch: server.fetch,
    locks: null,
    channel: null,
    ...options,
  });
}

describe("problems", () => {
  it("parses an RFC 9457 document with its extra members and Retry-After", () => {
    const response = new Response(null, { status: 422, headers: { "Retry-After": "7" } });
    const problem = problemFromResponse(response, {
      type: "about:blank",
      title: "Unprocessable",
      status: 422,
      detail: "too weak",
      code: "weak_password",
      reason: "common",
    });
    expect(problem).toBeInstanceOf(AuthgateProblem);
    expect(problem).toBeInstanceOf(Error);
    expect([problem.status, problem.code, problem.detail]).toEqual([422, "weak_password", "too weak"]);
    expect(problem.extra).toEqual({ reason: "common" });
    expect(problem.retryAfter).toBe(7);
  });

  it("turns a response that is not a problem into one", () => {
    const problem = problemFromResponse(new Response(null, { status: 502 }), "<html>bad gateway</html>");
    expect([problem.status, problem.code]).toEqual([502, "http_502"]);
  });

  it("throws the server's problem from a call", async () => {
    const auth = client();
    const error = await auth.signIn(EMAIL, "wrong password here").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthgateProblem);
    expect((error as AuthgateProblem).code).toBe("invalid_credentials");
    expect((error as AuthgateProblem).status).toBe(401);
  });

  it("refuses a signed-in call without a session, without a request", async () => {
    const auth = client({ transport: "body" });
    await expect(auth.me()).rejects.toMatchObject({ code: "not_signed_in", status: 401 });
    expect(server.requests).toEqual([]);
  });
});

describe("signing in", () => {
  it("cookie transport: asks for the cookie, sends credentials, keeps no refresh token", async () => {
    const auth = client();
    const result = await auth.signIn(EMAIL, PASSWORD);
    expect(result).toMatchObject({ mfaRequired: false, sessionId: server.sid });
    const login = server.requests[0]!;
    expect(login.body).toEqual({ email: EMAIL, password: PASSWORD, refresh_token_transport: "cookie" });
    expect(login.credentials).toBe("include");
    expect((await auth.me()).email).toBe(EMAIL);
    expect(server.requests[1]!.authorization).toMatch(/^Bearer eyJ/);
  });

  it("body transport: the server's default, the refresh token sent back in the body", async () => {
    const auth = client({ transport: "body" });
    await auth.signIn(EMAIL, PASSWORD);
    expect(server.requests[0]!.body).toEqual({ email: EMAIL, password: PASSWORD });
    auth.expireAccessToken();
    await auth.me();
    const refresh = server.requests.find((r) => r.path === "/api/v1/auth/refresh")!;
    expect(refresh.body).toEqual({ refresh_token: "agr_1" });
  });

  it("answers mfaRequired, then verifyMfa completes the sign-in", async () => {
    server.mfa = true;
    const auth = client();
    const result = await auth.signIn(EMAIL, PASSWORD);
    expect(result).toEqual({ mfaRequired: true, mfaToken: "agm_test", methods: ["totp", "recovery_code"] });
    expect(auth.signedIn).toBe(false);

    await expect(auth.verifyMfa("agm_test", "totp", "000000")).rejects.toMatchObject({
      code: "invalid_code",
    });
    const signedIn = await auth.verifyMfa("agm_test", "totp", "123456");
    expect(signedIn.mfaRequired).toBe(false);
    expect(server.requests.at(-1)!.body).toEqual({
      mfa_token: "agm_test",
      method: "totp",
      code: "123456",
      refresh_token_transport: "cookie",
    });
    expect((await auth.me()).email).toBe(EMAIL);
  });

  it("restore() signs in from the cookie, and is false without one", async () => {
    const first = client();
    await first.signIn(EMAIL, PASSWORD);
    const reloaded = client();
    expect(await reloaded.restore()).toBe(true);
    expect((await reloaded.me()).email).toBe(EMAIL);

    server.jar = null;
    expect(await client().restore()).toBe(false);
  });
});

describe("refreshing", () => {
  it("refreshes after a 401 and retries the call once", async () => {
    const auth = client();
    await auth.signIn(EMAIL, PASSWORD);
    server.revokeAccessTokens();
    expect((await auth.me()).email).toBe(EMAIL);
    expect(server.count("/api/v1/users/me")).toBe(2);
    expect(server.count("/api/v1/auth/refresh")).toBe(1);
  });

  it("retries only once: a second 401 is the caller's", async () => {
    const auth = client();
    await auth.signIn(EMAIL, PASSWORD);
    server.refuseAllAccess = true;
    await expect(auth.me()).rejects.toMatchObject({ status: 401, code: "invalid_token" });
    expect(server.count("/api/v1/users/me")).toBe(2);
    expect(server.count("/api/v1/auth/refresh")).toBe(1);
  });

  it("refreshes shortly before expiry, before the call", async () => {
    let now = 1_000_000;
    const auth = client({ now: () => now, refreshLeeway: 30 });
    await auth.signIn(EMAIL, PASSWORD);
    now += (900 - 31) * 1000;
    await auth.me();
    expect(server.count("/api/v1/auth/refresh")).toBe(0);
    now += 2000;
    await auth.me();
    expect(server.count("/api/v1/auth/refresh")).toBe(1);
    expect(server.count("/api/v1/users/me")).toBe(2); // no 401 on the way
  });

  it("runs one refresh for concurrent calls of a page", async () => {
    const auth = client();
    await auth.signIn(EMAIL, PASSWORD);
    auth.expireAccessToken();
    const results = await Promise.all([auth.me(), auth.sessions(), auth.me(), auth.getAccessToken()]);
    expect(results).toHaveLength(4);
    expect(server.count("/api/v1/auth/refresh")).toBe(1);
    expect(server.reuseDetected).toBe(0);
  });

  it("a refresh the server refuses signs the client out", async () => {
    const auth = client();
    const changes: boolean[] = [];
    auth.onChange((signedIn) => changes.push(signedIn));
    await auth.signIn(EMAIL, PASSWORD);
    server.jar = null;
    auth.expireAccessToken();
    await expect(auth.me()).rejects.toMatchObject({ code: "not_signed_in" });
    expect(auth.signedIn).toBe(false);
    expect(changes).toEqual([true, false]);
  });
});

describe("tabs", () => {
  function tabs(locks: LockManagerLike | null) {
    const hub = new ChannelHub();
    const open = () => client({ locks, channel: hub.channel() });
    return [open(), open()] as const;
  }

  it("two tabs due for a refresh at once: one refresh, the other takes its token", async () => {
    const [a, b] = tabs(new FakeLocks());
    await a.signIn(EMAIL, PASSWORD);
    expect(await b.restore()).toBe(true);
    expect(server.count("/api/v1/auth/refresh")).toBe(1);

    a.expireAccessToken();
    b.expireAccessToken();
    const [meA, meB] = await Promise.all([a.me(), b.me()]);
    expect([meA.email, meB.email]).toEqual([EMAIL, EMAIL]);
    expect(server.count("/api/v1/auth/refresh")).toBe(2);
    expect(server.reuseDetected).toBe(0);
    expect(await a.getAccessToken()).toBe(await b.getAccessToken());
  });

  it("without the lock the second tab replays the rotated cookie (why the lock exists)", async () => {
    const [a, b] = tabs(null);
    await a.signIn(EMAIL, PASSWORD);
    await b.restore();
    a.expireAccessToken();
    b.expireAccessToken();
    await Promise.allSettled([a.me(), b.me()]);
    expect(server.reuseDetected).toBe(1);
  });

  it("a tab that waited refreshes itself when no token arrives (the other tab went away)", async () => {
    const locks = new FakeLocks();
    const silent: ChannelLike = { postMessage() {}, addEventListener() {}, close() {} };
    const a = client({ locks, channel: silent });
    const b = client({ locks, channel: silent, handoffWait: 10 });
    await a.signIn(EMAIL, PASSWORD);
    await b.restore();
    a.expireAccessToken();
    b.expireAccessToken();
    await Promise.all([a.me(), b.me()]);
    // Serialised by the lock: the second refresh carries the rotated cookie, not a replay.
    expect(server.count("/api/v1/auth/refresh")).toBe(3);
    expect(server.reuseDetected).toBe(0);
  });

  it("signing out in one tab signs the others out", async () => {
    const [a, b] = tabs(new FakeLocks());
    await a.signIn(EMAIL, PASSWORD);
    await b.restore();
    const seen: boolean[] = [];
    b.onChange((signedIn) => seen.push(signedIn));
    await a.signOut();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(b.signedIn).toBe(false);
    expect(seen).toEqual([false]);
  });
});

describe("the account", () => {
  it("changePassword keeps this session with the new tokens", async () => {
    const auth = client();
    await auth.signIn(EMAIL, PASSWORD);
    const before = await auth.getAccessToken();
    await expect(auth.changePassword("not the password", "new passphrase here ok")).rejects.toMatchObject({
      code: "invalid_password",
      status: 400,
    });
    expect(auth.signedIn).toBe(true);
    await auth.changePassword(PASSWORD, "new passphrase here ok");
    expect(await auth.getAccessToken()).not.toBe(before);
    expect(server.requests.at(-1)!.body).toMatchObject({ refresh_token_transport: "cookie" });
  });

  it("ending the current session signs out", async () => {
    const auth = client();
    await auth.signIn(EMAIL, PASSWORD);
    const [session] = await auth.sessions();
    await auth.endSession(session!.id);
    expect(auth.signedIn).toBe(false);
  });

  it("signOut clears the state; signOutEverywhere too", async () => {
    const auth = client();
    await auth.signIn(EMAIL, PASSWORD);
    await auth.signOut();
    expect(auth.signedIn).toBe(false);
    expect(server.requests.at(-1)!.path).toBe("/api/v1/auth/logout");
    expect(await auth.restore()).toBe(false);

    await auth.signIn(EMAIL, PASSWORD);
    await auth.signOutEverywhere();
    expect(auth.signedIn).toBe(false);
  });

  it("sign-up and reset map their problems", async () => {
    const auth = client();
    await auth.signUp({ email: EMAIL, password: PASSWORD, name: "Ada" });
    expect(server.requests[0]!.body).toEqual({ email: EMAIL, password: PASSWORD, name: "Ada" });
    await auth.resetPassword("agp_ok", "another good passphrase");
    await expect(auth.resetPassword("agp_bad", "x")).rejects.toMatchObject({ code: "invalid_token" });
  });
});

describe("storage", () => {
  const touched: string[] = [];
  const names = ["localStorage", "sessionStorage", "document"] as const;

  beforeEach(() => {
    touched.length = 0;
    for (const name of names) {
      Object.defineProperty(globalThis, name, {
        configurable: true,
        get() {
          touched.push(name);
          throw new Error(`${name} used`);
        },
      });
    }
  });

  afterEach(() => {
    for (const name of names) {
      delete (globalThis as Record<string, unknown>)[name];
    }
  });

  it("no token ever goes to localStorage, sessionStorage or document.cookie", async () => {
    for (const transport of ["cookie", "body"] as const) {
      const auth = client({ transport });
      await auth.signIn(EMAIL, PASSWORD);
      auth.expireAccessToken();
      await auth.me();
      await auth.changePassword(PASSWORD, "new passphrase here ok");
      await auth.signOut();
    }
    expect(touched).toEqual([]);
  });

  it("the kit's source never names them", () => {
    const dir = new URL("../src/", import.meta.url);
    for (const file of readdirSync(dir)) {
      if (file === "schema.d.ts") {
        continue;
      }
      const code = readFileSync(new URL(file, dir), "utf8")
        .replace(/\/\*[\s\S]*?\*\//g, "")
        .replace(/\/\/.*$/gm, "");
      expect(code, file).not.toMatch(/localStorage|sessionStorage|document\.cookie|indexedDB/);
    }
  });
});

describe("browser APIs fit the kit's interfaces", () => {
  it("navigator.locks and BroadcastChannel are accepted as they are", () => {
    // Compile-time: tsc (npm run typecheck) checks these assignments against lib.dom.
    const fit = (locks: LockManager, channel: BroadcastChannel): [LockManagerLike, ChannelLike] => [
      locks,
      channel,
    ];
    expect(typeof fit).toBe("function");
  });
});
