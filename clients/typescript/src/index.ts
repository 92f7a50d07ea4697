export {
  AuthClient,
  type AuthClientOptions,
  createAuthClient,
  type MfaRequired,
  type Passkey,
  type Session,
  type SignedIn,
  type SignInResult,
  type SignUp,
  type User,
} from "./client.js";
export type { MfaMethod, RefreshTokenTransport, TokenPair } from "./contract.js";
export { AuthgateProblem, type ProblemInit } from "./problem.js";
export type { components, paths } from "./schema.js";
export type { ChannelLike, LockManagerLike } from "./tabs.js";
