/**
 * `createAuthClient`: signs a browser user in and out of authgate and makes authenticated calls.
 *
 * - The access token lives in this object's memory only: never in localStorage,
 *   sessionStorage or a script-readable cookie.
 * - Cookie transport (the default, docs/api.md §10): the refresh token travels only in
 *   authgate's HttpOnly `authgate_refresh` cookie; `restore()` turns it into an access token on
 *   page load. Body transport keeps the refresh token in memory too (gone on reload).
 * - An access token is refreshed shortly before it expires, and once after a 401 (then the
 *   call is retried once). One refresh at a time per page and, in cookie mode, across the tabs
 *   of the origin (see tabs.ts).
 */
import createClient, { type Client } from "openapi-fetch";
import type {
  ContractPaths,
  MfaMethod,
  PasskeyVerifyBody,
  RefreshBody,
  RefreshTokenTransport,
  TokenPair,
} from "./contract.js";
import { AuthgateProblem, notSignedIn, problemFromResponse } from "./problem.js";
import type { components, paths } from "./schema.js";
import { type ChannelLike, type LockManagerLike, type TabMessage, TabSync } from "./tabs.js";

export type User = components["schemas"]["UserOut"];
export type Session = components["schemas"]["SessionOut"];
export type Passkey = components["schemas"]["PasskeyOut"];

export interface AuthClientOptions {
  /** Where authgate is served, without `/api/v1` (e.g. `https://auth.example.com`). */
  baseUrl: string;
  /**
   * `"cookie"` (default): the refresh token is an HttpOnly cookie this script never sees; the
   * session survives a reload (`restore()`). `"body"`: the refresh token is kept in memory with
   * the access token and is lost on reload.
   */
  transport?: RefreshTokenTransport;
  /** Refresh this many seconds before the access token expires (default 30; at most half its lifetime). */
  refreshLeeway?: number;
  /** A refresh that takes longer is abandoned (ms, default 20 000): other tabs wait for it. */
  refreshTimeout?: number;
  /**
   * How long a tab that waited for another tab's refresh waits for the token that tab
   * broadcasts before it refreshes itself (ms, default 250).
   */
  handoffWait?: number;
  /** The fetch to use (default: the global one). */
  fetch?: (request: Request) => Promise<Response>;
  /** Web Locks for cross-tab refreshes (default `navigator.locks`; null: this page only). */
  locks?: LockManagerLike | null;
  /** Where tabs share a new access token (default a `BroadcastChannel`; null: none). */
  channel?: ChannelLike | null;
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
}

/** A signed-in result: the access token is held by the client. */
export interface SignedIn {
  mfaRequired: false;
  /** The session's id (the access token's `sid`), as in `sessions()`. */
  sessionId: string | null;
  accessTokenExpiresAt: Date;
}

/** The password was right; a second factor completes the sign-in with `verifyMfa`. */
export interface MfaRequired {
  mfaRequired: true;
  mfaToken: string;
  methods: MfaMethod[];
}

export type SignInResult = SignedIn | MfaRequired;

export interface SignUp {
  email: string;
  password: string;
  name?: string | null;
}

type Listener = (signedIn: boolean) => void;

interface ApiResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

const DEFAULT_LEEWAY_S = 30;
const DEFAULT_REFRESH_TIMEOUT_MS = 20_000;
const DEFAULT_HANDOFF_WAIT_MS = 250;

function defaultLocks(): LockManagerLike | null {
  const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
  return nav?.locks ?? null;
}

function defaultChannel(name: string): ChannelLike | null {
  return typeof BroadcastChannel === "function" ? new BroadcastChannel(name) : null;
}

function bearer(token: string): { Authorization: string } {
  return { Authorization: `Bearer ${token}` };
}

/** The `sid` claim of an access token (read, not verified: the server verifies). */
function sessionIdOf(token: string): string | null {
  const payload = token.split(".")[1];
  if (payload === undefined) {
    return null;
  }
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const claims: unknown = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")));
    const sid = (claims as { sid?: unknown }).sid;
    return typeof sid === "string" ? sid : null;
  } catch {
    return null;
  }
}

function publicKeyCredential(credential: Credential | null): PublicKeyCredential {
  if (credential === null || credential.type !== "public-key") {
    throw new DOMException("No passkey was given.", "NotAllowedError");
  }
  return credential as PublicKeyCredential;
}

function methodsOf(value: unknown): MfaMethod[] {
  if (!Array.isArray(value)) {
    return ["totp", "recovery_code"];
  }
  return value.filter((m): m is MfaMethod => m === "totp" || m === "recovery_code");
}

export class AuthClient {
  readonly transport: RefreshTokenTransport;
  /** Typed requests for every generated route (`openapi-fetch`); add `bearer()` headers yourself. */
  readonly api: Client<paths>;
  readonly #contract: Client<ContractPaths>;
  readonly #fetch: (request: Request) => Promise<Response>;
  readonly #now: () => number;
  readonly #leewayMs: number;
  readonly #refreshTimeout: number;
  readonly #handoffWait: number;
  readonly #sync: TabSync | null;
  readonly #listeners = new Set<Listener>();
  readonly #changeWaiters = new Set<() => void>();

  #accessToken: string | null = null;
  #expiresAt = 0;
  #lifetimeMs = 0;
  /** Body transport only: the refresh token (cookie transport never sees it). */
  #refreshToken: string | null = null;
  /** Bumped on every change of the session state, local or from another tab. */
  #generation = 0;
  #inflight: Promise<string | null> | null = null;

  constructor(options: AuthClientOptions) {
    this.transport = options.transport ?? "cookie";
    this.#now = options.now ?? Date.now;
    this.#leewayMs = (options.refreshLeeway ?? DEFAULT_LEEWAY_S) * 1000;
    this.#refreshTimeout = options.refreshTimeout ?? DEFAULT_REFRESH_TIMEOUT_MS;
    this.#handoffWait = options.handoffWait ?? DEFAULT_HANDOFF_WAIT_MS;
    const baseUrl = options.baseUrl.replace(/\/+$/, "");
    const custom = options.fetch;
    // Looked up at call time, so a page (or a test) that replaces window.fetch is honoured.
    const fetcher = (request: Request): Promise<Response> =>
      custom !== undefined ? custom(request) : globalThis.fetch(request);
    this.#fetch = fetcher;
    const init = {
      baseUrl,
      fetch: fetcher,
      // Cookie transport: the browser must store and send authgate's cookie cross-origin.
      credentials: this.transport === "cookie" ? ("include" as const) : ("same-origin" as const),
    };
    this.api = createClient<paths>(init);
    this.#contract = createClient<ContractPaths>(init);

    const name = `authgate:${baseUrl}`;
    const locks = options.locks === undefined ? defaultLocks() : options.locks;
    if (this.transport === "cookie" && locks !== null) {
      const channel = options.channel === undefined ? defaultChannel(name) : options.channel;
      this.#sync = new TabSync(locks, channel, `${name}:refresh`);
      this.#sync.listen((message) => this.#fromOtherTab(message));
    } else {
      this.#sync = null;
    }
  }

  // -- state ------------------------------------------------------------------------------

  /** Whether an access token is held (it may be due for a refresh). */
  get signedIn(): boolean {
    return this.#accessToken !== null;
  }

  /** The current session's id (`sid`), or null when signed out. */
  get sessionId(): string | null {
    return this.#accessToken === null ? null : sessionIdOf(this.#accessToken);
  }

  /** Calls `listener(signedIn)` whenever this tab signs in or out, or another tab does. */
  onChange(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Treats the access token as expired, so the next call refreshes first (for tests, and for
   * picking up a role change at once).
   */
  expireAccessToken(): void {
    this.#expiresAt = 0;
  }

  /** Stops listening to other tabs. */
  close(): void {
    this.#sync?.close();
  }

  // -- sign-up and recovery (no session) ------------------------------------------------------

  async signUp(request: SignUp): Promise<void> {
    const { name, ...rest } = request;
    const body = name ? { ...rest, name } : rest;
    await this.#ok(this.api.POST("/api/v1/auth/register", { body }));
  }

  /** Confirms an address with the `token` of a `/verify-email?token=…` link. */
  async verifyEmail(token: string): Promise<User> {
    return this.#ok(this.api.POST("/api/v1/auth/verify-email", { body: { token } }));
  }

  async resendVerification(email: string): Promise<void> {
    await this.#ok(this.api.POST("/api/v1/auth/verify-email/resend", { body: { email } }));
  }

  async forgotPassword(email: string): Promise<void> {
    await this.#ok(this.api.POST("/api/v1/auth/password/forgot", { body: { email } }));
  }

  /** Sets a new password with the `token` of a `/reset-password?token=…` link. */
  async resetPassword(token: string, newPassword: string): Promise<void> {
    await this.#ok(
      this.api.POST("/api/v1/auth/password/reset", {
        body: { token, new_password: newPassword },
      }),
    );
  }

  // -- signing in and out ---------------------------------------------------------------------

  /** Signs in; an account with a second factor answers `{mfaRequired: true, …}` instead. */
  async signIn(email: string, password: string): Promise<SignInResult> {
    const result = await this.#contract.POST("/api/v1/auth/login", {
      body: { email, password, ...this.#transportField() },
    });
    if (result.data !== undefined) {
      return this.#signedIn(result.data);
    }
    const problem = problemFromResponse(result.response, result.error);
    if (problem.code === "mfa_required" && typeof problem.extra.mfa_token === "string") {
      return {
        mfaRequired: true,
        mfaToken: problem.extra.mfa_token,
        methods: methodsOf(problem.extra.methods),
      };
    }
    throw problem;
  }

  /** Completes an MFA sign-in with a TOTP code or a recovery code. */
  async verifyMfa(mfaToken: string, method: MfaMethod, code: string): Promise<SignedIn> {
    const pair = await this.#ok(
      this.#contract.POST("/api/v1/auth/mfa/verify", {
        body: { mfa_token: mfaToken, method, code, ...this.#transportField() },
      }),
    );
    return this.#signedIn(pair);
  }

  /**
   * Signs in with a passkey (WebAuthn): no email, no password, no second step. The browser
   * offers the user's passkeys for this site; `navigator.credentials.get` rejects (a
   * `DOMException`, e.g. `NotAllowedError`) when the user cancels. A refused passkey is an
   * `AuthgateProblem` `invalid_credentials`.
   */
  async signInWithPasskey(): Promise<SignedIn> {
    const started = await this.#ok(this.api.POST("/api/v1/auth/passkey/options", {}));
    const assertion = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(
        started.options as unknown as PublicKeyCredentialRequestOptionsJSON,
      ),
    });
    const credential = publicKeyCredential(assertion);
    const body: PasskeyVerifyBody = {
      flow_token: started.flow_token,
      credential: credential.toJSON() as unknown as PasskeyVerifyBody["credential"],
      ...this.#transportField(),
    };
    const pair = await this.#ok(this.#contract.POST("/api/v1/auth/passkey/verify", { body }));
    return this.#signedIn(pair);
  }

  /**
   * On page load: signs in again from authgate's refresh cookie, if the browser has a live one.
   * Resolves to whether a session is open. (Body transport: whether one is held in memory.)
   */
  async restore(): Promise<boolean> {
    if (this.#accessToken !== null && !this.#expiringSoon()) {
      return true;
    }
    if (this.transport === "body" && this.#refreshToken === null) {
      return false;
    }
    return (await this.#refresh(this.#accessToken)) !== null;
  }

  /** Ends this session (and clears the cookie). Local state is cleared even if the call fails. */
  async signOut(): Promise<void> {
    const token = this.#accessToken !== null && !this.#expired() ? this.#accessToken : null;
    const refreshToken = this.#refreshToken;
    try {
      if (this.transport === "body" && refreshToken === null) {
        return;
      }
      await this.#ok(
        this.#contract.POST("/api/v1/auth/logout", {
          body: refreshToken !== null ? { refresh_token: refreshToken } : {},
          headers: token !== null ? bearer(token) : {},
        }),
      );
    } finally {
      this.#signedOut(true);
    }
  }

  /** Ends every session of the user (all devices). */
  async signOutEverywhere(): Promise<void> {
    await this.#authed((headers) => this.api.POST("/api/v1/auth/logout-all", { headers }));
    this.#signedOut(true);
  }

  // -- the signed-in user ---------------------------------------------------------------------

  async me(): Promise<User> {
    return this.#authed((headers) => this.api.GET("/api/v1/users/me", { headers }));
  }

  async sessions(): Promise<Session[]> {
    return this.#authed((headers) => this.api.GET("/api/v1/sessions", { headers }));
  }

  /** Ends one session; ending the current one signs this client out. */
  async endSession(sessionId: string): Promise<void> {
    const current = this.sessionId;
    await this.#authed((headers) =>
      this.api.DELETE("/api/v1/sessions/{session_id}", {
        params: { path: { session_id: sessionId } },
        headers,
      }),
    );
    if (sessionId === current) {
      this.#signedOut(true);
    }
  }

  /** Changes the password: the other sessions end, this one continues with new tokens. */
  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    const pair = await this.#authed((headers) =>
      this.#contract.POST("/api/v1/users/me/password", {
        body: {
          current_password: currentPassword,
          new_password: newPassword,
          ...this.#transportField(),
        },
        headers,
      }),
    );
    this.#signedIn(pair);
  }

  /**
   * Registers a passkey of this device (or a phone, a security key: the browser asks) for the
   * signed-in user, named `name`. Rejects with a `DOMException` when the user cancels or the
   * authenticator holds one of the user's passkeys already.
   */
  async registerPasskey(name?: string): Promise<Passkey> {
    const options = await this.#authed((headers) =>
      this.api.POST("/api/v1/users/me/passkeys/options", { headers }),
    );
    const created = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(
        options as unknown as PublicKeyCredentialCreationOptionsJSON,
      ),
    });
    const credential = publicKeyCredential(created).toJSON() as unknown as {
      [key: string]: unknown;
    };
    return this.#authed((headers) =>
      this.api.POST("/api/v1/users/me/passkeys", {
        body: name ? { credential, name } : { credential },
        headers,
      }),
    );
  }

  async passkeys(): Promise<Passkey[]> {
    return this.#authed((headers) => this.api.GET("/api/v1/users/me/passkeys", { headers }));
  }

  async deletePasskey(passkeyId: string): Promise<void> {
    await this.#authed((headers) =>
      this.api.DELETE("/api/v1/users/me/passkeys/{passkey_id}", {
        params: { path: { passkey_id: passkeyId } },
        headers,
      }),
    );
  }

  /** A valid access token (refreshed first when due), or null when signed out. */
  async getAccessToken(): Promise<string | null> {
    return this.#validToken();
  }

  /**
   * `fetch` for your own API with the access token: refreshes when due, and once more after a
   * 401 (then retries once, so the request must be repeatable: no streamed body).
   */
  async fetchWithAuth(input: string | URL, init: RequestInit = {}): Promise<Response> {
    const call = async (token: string): Promise<Response> => {
      const headers = new Headers(init.headers);
      headers.set("Authorization", `Bearer ${token}`);
      return this.#fetch(new Request(input, { ...init, headers }));
    };
    const token = await this.#validToken();
    if (token === null) {
      throw notSignedIn();
    }
    const response = await call(token);
    if (response.status !== 401) {
      return response;
    }
    const next = await this.#refresh(token);
    return next === null ? response : call(next);
  }

  // -- internals ------------------------------------------------------------------------------

  #transportField(): { refresh_token_transport?: "cookie" } {
    // Body transport is the server's default: the field is left out, so older servers work too.
    return this.transport === "cookie" ? { refresh_token_transport: "cookie" } : {};
  }

  async #ok<T>(call: Promise<ApiResult<T>>): Promise<T> {
    const result = await call;
    if (result.response.ok) {
      return result.data as T;
    }
    throw problemFromResponse(result.response, result.error);
  }

  /** A Bearer call: refreshes first when due; after a 401, refreshes and retries once. */
  async #authed<T>(call: (headers: { Authorization: string }) => Promise<ApiResult<T>>): Promise<T> {
    const token = await this.#validToken();
    if (token === null) {
      throw notSignedIn();
    }
    let result = await call(bearer(token));
    if (result.response.status === 401) {
      const next = await this.#refresh(token);
      if (next !== null) {
        result = await call(bearer(next));
      }
    }
    if (result.response.ok) {
      return result.data as T;
    }
    throw problemFromResponse(result.response, result.error);
  }

  #expired(): boolean {
    return this.#now() >= this.#expiresAt;
  }

  #expiringSoon(): boolean {
    const leeway = Math.min(this.#leewayMs, this.#lifetimeMs / 2);
    return this.#now() >= this.#expiresAt - leeway;
  }

  async #validToken(): Promise<string | null> {
    if (this.#accessToken !== null && !this.#expiringSoon()) {
      return this.#accessToken;
    }
    if (this.transport === "body" && this.#refreshToken === null) {
      return null;
    }
    return this.#refresh(this.#accessToken);
  }

  /**
   * A fresh access token in place of `stale` (the one that expired or got a 401): the current
   * one if it already replaced `stale`, else the result of the one refresh in flight.
   */
  #refresh(stale: string | null): Promise<string | null> {
    if (this.#accessToken !== null && this.#accessToken !== stale && !this.#expiringSoon()) {
      return Promise.resolve(this.#accessToken);
    }
    if (this.#inflight === null) {
      const inflight = this.#coordinatedRefresh().finally(() => {
        this.#inflight = null;
      });
      this.#inflight = inflight;
    }
    return this.#inflight;
  }

  async #coordinatedRefresh(): Promise<string | null> {
    const sync = this.#sync;
    if (sync === null) {
      return this.#refreshRequest();
    }
    const generation = this.#generation;
    return sync.exclusive(async (waited) => {
      if (waited && this.#generation === generation) {
        // Another tab refreshed meanwhile: its token is on its way (posted before it let go).
        await this.#changeSince(generation, this.#handoffWait);
      }
      if (this.#generation !== generation) {
        return this.#accessToken; // taken from another tab (or that tab found the session over)
      }
      return this.#refreshRequest();
    });
  }

  /** Resolves when the session state changes after `generation`, or after `ms`. */
  #changeSince(generation: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#generation !== generation) {
        resolve();
        return;
      }
      const done = (): void => {
        clearTimeout(timer);
        this.#changeWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#changeWaiters.add(done);
    });
  }

  async #refreshRequest(): Promise<string | null> {
    let body: RefreshBody;
    if (this.transport === "cookie") {
      body = { refresh_token_transport: "cookie" };
    } else if (this.#refreshToken !== null) {
      body = { refresh_token: this.#refreshToken };
    } else {
      return null;
    }
    const result = await this.#contract.POST("/api/v1/auth/refresh", {
      body,
      signal: AbortSignal.timeout(this.#refreshTimeout),
    });
    if (result.data !== undefined) {
      this.#signedIn(result.data);
      return this.#accessToken;
    }
    if (result.response.status === 401) {
      // No live session behind the cookie (or the body token): signed out, here and in every tab.
      if (this.#accessToken !== null || this.#refreshToken !== null) {
        this.#signedOut(true);
      }
      return null;
    }
    throw problemFromResponse(result.response, result.error);
  }

  #signedIn(pair: TokenPair): SignedIn {
    const lifetime = pair.expires_in * 1000;
    this.#setToken(pair.access_token, this.#now() + lifetime, lifetime);
    if (this.transport === "body") {
      this.#refreshToken = pair.refresh_token;
    }
    this.#sync?.publish({
      kind: "authgate",
      type: "token",
      accessToken: pair.access_token,
      expiresAt: this.#expiresAt,
      lifetime,
    });
    return {
      mfaRequired: false,
      sessionId: sessionIdOf(pair.access_token),
      accessTokenExpiresAt: new Date(this.#expiresAt),
    };
  }

  #setToken(token: string, expiresAt: number, lifetime: number): void {
    const was = this.signedIn;
    this.#accessToken = token;
    this.#expiresAt = expiresAt;
    this.#lifetimeMs = lifetime;
    this.#changed(was);
  }

  #signedOut(broadcast: boolean): void {
    const was = this.signedIn;
    this.#accessToken = null;
    this.#refreshToken = null;
    this.#expiresAt = 0;
    this.#lifetimeMs = 0;
    if (broadcast) {
      this.#sync?.publish({ kind: "authgate", type: "signed-out" });
    }
    this.#changed(was);
  }

  #changed(wasSignedIn: boolean): void {
    this.#generation += 1;
    for (const waiter of [...this.#changeWaiters]) {
      waiter();
    }
    if (wasSignedIn !== this.signedIn) {
      for (const listener of [...this.#listeners]) {
        listener(this.signedIn);
      }
    }
  }

  #fromOtherTab(message: TabMessage): void {
    if (message.type === "token") {
      this.#setToken(message.accessToken, message.expiresAt, message.lifetime);
    } else {
      this.#signedOut(false);
    }
  }
}

export function createAuthClient(options: AuthClientOptions): AuthClient {
  return new AuthClient(options);
}

export { AuthgateProblem };
