/**
 * Tabs of one origin share the refresh cookie, so they must not refresh with it at the same
 * time: the second request would replay a rotated token, which authgate answers by ending the
 * whole session (reuse detection). Every refresh therefore runs under a Web Lock of the origin,
 * and the tab that refreshed broadcasts the new access token on a BroadcastChannel so the tabs
 * that waited for the lock take it instead of refreshing again.
 */

/** The part of the Web Locks API (`navigator.locks`) the kit uses. */
export interface LockManagerLike {
  request<T>(
    name: string,
    options: { ifAvailable?: boolean },
    callback: (lock: unknown) => Promise<T>,
  ): Promise<T>;
}

/** The part of `BroadcastChannel` the kit uses. */
export interface ChannelLike {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
  close(): void;
}

export type TabMessage =
  | { kind: "authgate"; type: "token"; accessToken: string; expiresAt: number; lifetime: number }
  | { kind: "authgate"; type: "signed-out" };

export function parseTabMessage(data: unknown): TabMessage | null {
  if (typeof data !== "object" || data === null) {
    return null;
  }
  const message = data as Record<string, unknown>;
  if (message.kind !== "authgate") {
    return null;
  }
  if (
    message.type === "token" &&
    typeof message.accessToken === "string" &&
    typeof message.expiresAt === "number" &&
    typeof message.lifetime === "number"
  ) {
    return {
      kind: "authgate",
      type: "token",
      accessToken: message.accessToken,
      expiresAt: message.expiresAt,
      lifetime: message.lifetime,
    };
  }
  if (message.type === "signed-out") {
    return { kind: "authgate", type: "signed-out" };
  }
  return null;
}

const NOT_GRANTED: unique symbol = Symbol("not granted");

export class TabSync {
  constructor(
    private readonly locks: LockManagerLike,
    private readonly channel: ChannelLike | null,
    private readonly lockName: string,
  ) {}

  /**
   * Runs `task` holding the origin's refresh lock. `waited` is true when another tab held the
   * lock first (it was refreshing): the task then looks at what that tab broadcast before it
   * refreshes itself.
   */
  async exclusive<T>(task: (waited: boolean) => Promise<T>): Promise<T> {
    const first = await this.locks.request<T | typeof NOT_GRANTED>(
      this.lockName,
      { ifAvailable: true },
      async (lock) => (lock === null ? NOT_GRANTED : task(false)),
    );
    if (first !== NOT_GRANTED) {
      return first;
    }
    return this.locks.request<T>(this.lockName, {}, async () => task(true));
  }

  publish(message: TabMessage): void {
    this.channel?.postMessage(message);
  }

  listen(handler: (message: TabMessage) => void): void {
    this.channel?.addEventListener("message", (event) => {
      const message = parseTabMessage(event.data);
      if (message !== null) {
        handler(message);
      }
    });
  }

  close(): void {
    this.channel?.close();
  }
}
