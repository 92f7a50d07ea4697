/** authgate's errors: RFC 9457 problem documents with a stable `code` (docs/api.md §4). */

const CORE_MEMBERS = new Set(["type", "title", "status", "detail", "code"]);

export interface ProblemInit {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  /** Members beyond the five every problem has. */
  extra?: Record<string, unknown>;
  /** Seconds from `Retry-After` (429, 503). */
  retryAfter?: number | null;
}

/**
 * A refusal by authgate. `code` is the stable identifier to branch on (`invalid_credentials`,
 * `email_not_verified`, `weak_password`, `invalid_token`, `rate_limited`, …); `extra` holds the
 * members some codes add: `errors` (`validation_error`), `reason` (`weak_password`),
 * `mfa_token` and `methods` (`mfa_required`).
 */
export class AuthgateProblem extends Error {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly extra: Readonly<Record<string, unknown>>;
  readonly retryAfter: number | null;

  constructor(init: ProblemInit) {
    super(`${init.status} ${init.code}: ${init.detail}`);
    this.name = "AuthgateProblem";
    this.type = init.type;
    this.title = init.title;
    this.status = init.status;
    this.detail = init.detail;
    this.code = init.code;
    this.extra = Object.freeze({ ...(init.extra ?? {}) });
    this.retryAfter = init.retryAfter ?? null;
  }
}

/** Used when a call needs a signed-in user and there is none (no request is made). */
export function notSignedIn(): AuthgateProblem {
  return new AuthgateProblem({
    type: "about:blank",
    title: "Not signed in",
    status: 401,
    detail: "Sign in first.",
    code: "not_signed_in",
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function retryAfterOf(response: Response): number | null {
  const header = response.headers.get("Retry-After");
  if (header === null || !/^\d+$/.test(header.trim())) {
    return null;
  }
  return Number(header.trim());
}

/**
 * The problem a failed response carries. `body` is what openapi-fetch already parsed (an
 * object for JSON, else text); a response that is not a problem document (a proxy's HTML
 * page, say) still becomes an `AuthgateProblem`, with the code `http_<status>`.
 */
export function problemFromResponse(response: Response, body: unknown): AuthgateProblem {
  const retryAfter = retryAfterOf(response);
  if (isRecord(body) && typeof body.code === "string") {
    const extra: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(body)) {
      if (!CORE_MEMBERS.has(key)) {
        extra[key] = value;
      }
    }
    return new AuthgateProblem({
      type: typeof body.type === "string" ? body.type : "about:blank",
      title: typeof body.title === "string" ? body.title : response.statusText,
      status: typeof body.status === "number" ? body.status : response.status,
      detail: typeof body.detail === "string" ? body.detail : "",
      code: body.code,
      extra,
      retryAfter,
    });
  }
  return new AuthgateProblem({
    type: "about:blank",
    title: response.statusText || `HTTP ${response.status}`,
    status: response.status,
    detail: `authgate answered ${response.status} without a problem document`,
    code: `http_${response.status}`,
    retryAfter,
  });
}
