/**
 * The parts of authgate's contract (docs/api.md §8 and §10) that the kit uses before
 * `src/schema.d.ts` describes them: the refresh-token transport on the endpoints that issue a
 * token pair, a refresh or logout that carries no token (the cookie does), and the second step
 * of an MFA sign-in.
 *
 * They are written in openapi-typescript's shape so that openapi-fetch types these requests
 * like the generated ones. Once the server's spec has them (`make client` regenerates the
 * schema), these operations can move to the generated `paths`; the shapes here are the
 * contract's, so nothing else changes.
 */
import type { components } from "./schema.js";

/** Where a token pair's refresh token travels (§10): the JSON body, or an HttpOnly cookie. */
export type RefreshTokenTransport = "body" | "cookie";

/** Second factors an `mfa_required` sign-in may be completed with (§8). */
export type MfaMethod = "totp" | "recovery_code";

/** `TokenPair`: `refresh_token` is null when it travels in the cookie. */
export type TokenPair = Omit<components["schemas"]["TokenPair"], "refresh_token"> & {
  refresh_token: string | null;
};

export type Problem = components["schemas"]["Problem"];

interface Transported {
  refresh_token_transport?: RefreshTokenTransport;
}

export interface LoginBody extends Transported {
  email: string;
  password: string;
}

export interface RefreshBody extends Transported {
  /** Omitted in cookie mode: the `authgate_refresh` cookie carries the token. */
  refresh_token?: string;
}

export interface LogoutBody {
  refresh_token?: string;
}

export interface MfaVerifyBody extends Transported {
  mfa_token: string;
  method: MfaMethod;
  code: string;
}

export interface PasskeyVerifyBody extends Transported {
  flow_token: string;
  /** The assertion's `PublicKeyCredential.toJSON()`. */
  credential: { [key: string]: unknown };
}

export interface ChangePasswordBody extends Transported {
  current_password: string;
  new_password: string;
}

interface Json<T> {
  headers: { [name: string]: unknown };
  content: { "application/json": T };
}

interface ProblemResponse {
  headers: { [name: string]: unknown };
  content: { "application/problem+json": Problem };
}

interface NoContent {
  headers: { [name: string]: unknown };
  content?: never;
}

interface Post<Body, Ok> {
  parameters: {
    query?: never;
    header?: { Authorization?: string };
    path?: never;
    cookie?: never;
  };
  requestBody: { content: { "application/json": Body } };
  responses: Ok & {
    400: ProblemResponse;
    401: ProblemResponse;
    403: ProblemResponse;
    422: ProblemResponse;
    429: ProblemResponse;
    503: ProblemResponse;
  };
}

interface Path<Operation> {
  parameters: { query?: never; header?: never; path?: never; cookie?: never };
  get?: never;
  put?: never;
  post: Operation;
  delete?: never;
  options?: never;
  head?: never;
  patch?: never;
  trace?: never;
}

/** The §8 and §10 operations, typed for openapi-fetch. */
export interface ContractPaths {
  "/api/v1/auth/login": Path<Post<LoginBody, { 200: Json<TokenPair> }>>;
  "/api/v1/auth/mfa/verify": Path<Post<MfaVerifyBody, { 200: Json<TokenPair> }>>;
  "/api/v1/auth/passkey/verify": Path<Post<PasskeyVerifyBody, { 200: Json<TokenPair> }>>;
  "/api/v1/auth/refresh": Path<Post<RefreshBody, { 200: Json<TokenPair> }>>;
  "/api/v1/auth/logout": Path<Post<LogoutBody, { 204: NoContent }>>;
  "/api/v1/users/me/password": Path<Post<ChangePasswordBody, { 200: Json<TokenPair> }>>;
}
