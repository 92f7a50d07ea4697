/**
 * The example SPA: every page of a browser sign-in on @authgate/client, in vanilla TypeScript.
 *
 * Routes are the paths authgate's emails link to (AUTHGATE_FRONTEND_URL + /verify-email?token=…,
 * /reset-password?token=…, /login, /forgot-password) plus /signup and /account.
 */
import { AuthgateProblem, createAuthClient, type MfaMethod, type Passkey, type Session } from "@authgate/client";
import { field, h, value } from "./dom";
import "./style.css";

interface ExampleConfig {
  apiBaseUrl: string;
  transport?: "cookie" | "body";
  testHooks?: boolean;
}

declare global {
  interface Window {
    authgateExample?: ExampleConfig;
    authgateTest?: {
      expireAccessToken(): void;
      me(): Promise<string>;
      signedIn(): boolean;
    };
  }
}

const config: ExampleConfig = window.authgateExample ?? { apiBaseUrl: "http://localhost:8000" };
const auth = createAuthClient({
  baseUrl: config.apiBaseUrl,
  transport: config.transport ?? "cookie",
});

const app = document.getElementById("app") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;

// -- routing ------------------------------------------------------------------------------------

function navigate(path: string, replace = false): void {
  if (replace) {
    history.replaceState(null, "", path);
  } else {
    history.pushState(null, "", path);
  }
  void render();
}

document.addEventListener("click", (event) => {
  const link = (event.target as Element | null)?.closest("a[data-link]");
  if (link instanceof HTMLAnchorElement && link.origin === location.origin) {
    event.preventDefault();
    navigate(link.pathname + link.search);
  }
});
window.addEventListener("popstate", () => void render());

/** A page's link tokens are read once, then dropped from the address bar and history. */
function takeToken(): string | null {
  const token = new URLSearchParams(location.search).get("token");
  if (token !== null) {
    history.replaceState(null, "", location.pathname);
  }
  return token;
}

function page(name: string, ...children: (Node | string)[]): void {
  app.dataset.page = name;
  app.replaceChildren(...children);
}

function link(path: string, text: string): HTMLAnchorElement {
  return h("a", { href: path, "data-link": true }, text);
}

function renderNav(): void {
  nav.replaceChildren(
    ...(auth.signedIn
      ? [link("/account", "Account"), signOutButton()]
      : [link("/login", "Sign in"), link("/signup", "Sign up")]),
  );
}

function signOutButton(): HTMLButtonElement {
  const button = h("button", { type: "button", id: "sign-out" }, "Sign out");
  button.addEventListener("click", async () => {
    try {
      await auth.signOut();
    } finally {
      navigate("/login");
    }
  });
  return button;
}

// -- messages -----------------------------------------------------------------------------------

function describe(error: unknown): { text: string; code: string } {
  if (error instanceof AuthgateProblem) {
    const reason = typeof error.extra.reason === "string" ? ` (${error.extra.reason})` : "";
    return { text: `${error.detail || error.title}${reason}`, code: error.code };
  }
  if (error instanceof DOMException) {
    // The browser's passkey prompt: cancelled, timed out, or not possible here.
    return { text: `The passkey prompt ended: ${error.message}`, code: error.name };
  }
  return { text: `Could not reach authgate: ${String(error)}`, code: "network_error" };
}

function alertBox(): HTMLElement {
  return h("p", { class: "alert", role: "alert", hidden: true });
}

function show(box: HTMLElement, error: unknown): void {
  const { text, code } = describe(error);
  box.textContent = text;
  box.dataset.code = code;
  box.hidden = false;
}

/** A form whose submit runs `action`; a refusal is shown in its alert. */
function form(
  id: string,
  children: (Node | string)[],
  submit: string,
  action: (form: HTMLFormElement) => Promise<void>,
): HTMLFormElement {
  const box = alertBox();
  const button = h("button", { type: "submit" }, submit);
  const element = h("form", { id }, ...children, box, button);
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.hidden = true;
    button.disabled = true;
    try {
      await action(element);
    } catch (error) {
      show(box, error);
    } finally {
      button.disabled = false;
    }
  });
  return element;
}

// -- pages --------------------------------------------------------------------------------------

function signInPage(): void {
  page(
    "login",
    h("h1", {}, "Sign in"),
    form(
      "sign-in",
      [field("Email", "email", "email", { autocomplete: "username" }), field("Password", "password", "password", { autocomplete: "current-password" })],
      "Sign in",
      async (f) => {
        const result = await auth.signIn(value(f, "email"), value(f, "password"));
        if (result.mfaRequired) {
          mfaPage(result.mfaToken, result.methods);
        } else {
          navigate("/account");
        }
      },
    ),
    passkeySignIn(),
    h("p", {}, link("/forgot-password", "Forgot your password?"), " · ", link("/signup", "Create an account")),
  );
}

/** "Sign in with a passkey": no email, no password; the browser offers this site's passkeys. */
function passkeySignIn(): HTMLElement {
  const box = alertBox();
  const button = h("button", { type: "button", id: "passkey-sign-in" }, "Sign in with a passkey");
  button.addEventListener("click", async () => {
    box.hidden = true;
    button.disabled = true;
    try {
      await auth.signInWithPasskey();
      navigate("/account");
    } catch (error) {
      show(box, error);
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { id: "passkey" }, h("p", {}, button), box);
}

function mfaPage(mfaToken: string, methods: MfaMethod[]): void {
  const labels: Record<MfaMethod, string> = {
    totp: "Code from your authenticator app",
    recovery_code: "Recovery code",
  };
  const select = h(
    "select",
    { id: "field-method", name: "method" },
    ...methods.map((m) => h("option", { value: m }, labels[m])),
  );
  page(
    "mfa",
    h("h1", {}, "Second step"),
    h("p", {}, "Your password was right. Enter a code to finish signing in."),
    form(
      "mfa",
      [
        h("p", { class: "field" }, h("label", { for: "field-method" }, "Method"), select),
        field("Code", "code", "text", { autocomplete: "one-time-code", inputmode: "text" }),
      ],
      "Verify",
      async (f) => {
        await auth.verifyMfa(mfaToken, value(f, "method") as MfaMethod, value(f, "code"));
        navigate("/account");
      },
    ),
  );
}

function signUpPage(): void {
  page(
    "signup",
    h("h1", {}, "Create an account"),
    form(
      "sign-up",
      [
        field("Email", "email", "email", { autocomplete: "email" }),
        field("Name", "name", "text", { autocomplete: "name", required: false }),
        field("Password", "password", "password", { autocomplete: "new-password", minlength: "15" }),
      ],
      "Sign up",
      async (f) => {
        const email = value(f, "email");
        await auth.signUp({ email, password: value(f, "password"), name: value(f, "name") || null });
        page(
          "signup-sent",
          h("h1", {}, "Check your mailbox"),
          h("p", { id: "notice" }, `We sent a link to ${email}. Open it to confirm the address, then sign in.`),
        );
      },
    ),
  );
}

async function verifyEmailPage(): Promise<void> {
  const token = takeToken();
  page("verify-email", h("h1", {}, "Confirming your address…"));
  if (token === null) {
    page("verify-email-failed", h("h1", {}, "This link has no token"));
    return;
  }
  try {
    const user = await auth.verifyEmail(token);
    page(
      "verified",
      h("h1", {}, "Address confirmed"),
      h("p", { id: "notice" }, `${user.email} is confirmed.`),
      h("p", {}, link("/login", "Sign in")),
    );
  } catch (error) {
    const box = alertBox();
    show(box, error);
    page("verify-email-failed", h("h1", {}, "This link does not work"), box, h("p", {}, link("/login", "Sign in")));
  }
}

function forgotPasswordPage(): void {
  page(
    "forgot-password",
    h("h1", {}, "Forgot your password?"),
    form("forgot", [field("Email", "email", "email", { autocomplete: "email" })], "Send me a link", async (f) => {
      await auth.forgotPassword(value(f, "email"));
      page(
        "forgot-sent",
        h("h1", {}, "Check your mailbox"),
        h("p", { id: "notice" }, "If an account has this address, a link to choose a new password is on its way."),
      );
    }),
  );
}

function resetPasswordPage(): void {
  const token = takeToken() ?? "";
  page(
    "reset-password",
    h("h1", {}, "Choose a new password"),
    form(
      "reset",
      [field("New password", "new_password", "password", { autocomplete: "new-password", minlength: "15" })],
      "Set password",
      async (f) => {
        await auth.resetPassword(token, value(f, "new_password"));
        page(
          "password-reset",
          h("h1", {}, "Password changed"),
          h("p", { id: "notice" }, "Every session was signed out. Sign in with the new password."),
          h("p", {}, link("/login", "Sign in")),
        );
      },
    ),
  );
}

function sessionRow(session: Session): HTMLTableRowElement {
  const end = h("button", { type: "button", class: "end-session", "data-session": session.id }, "End");
  end.addEventListener("click", async () => {
    end.disabled = true;
    await auth.endSession(session.id);
    await render();
  });
  return h(
    "tr",
    { "data-session": session.id },
    h("td", {}, session.user_agent ?? "unknown browser", session.current ? h("strong", {}, " (this device)") : null),
    h("td", {}, session.ip_address ?? ""),
    h("td", {}, new Date(session.last_used_at).toLocaleString()),
    h("td", {}, end),
  );
}

function passkeyRow(passkey: Passkey): HTMLLIElement {
  const remove = h("button", { type: "button", class: "delete-passkey" }, "Remove");
  remove.addEventListener("click", async () => {
    remove.disabled = true;
    await auth.deletePasskey(passkey.id);
    await render();
  });
  const used = passkey.last_used_at ? `last used ${new Date(passkey.last_used_at).toLocaleString()}` : "never used";
  return h("li", { "data-passkey": passkey.id }, h("span", { class: "passkey-name" }, passkey.name), ` (${used}) `, remove);
}

async function accountPage(): Promise<void> {
  if (!auth.signedIn) {
    navigate("/login", true);
    return;
  }
  const [user, sessions, passkeys] = await Promise.all([auth.me(), auth.sessions(), auth.passkeys()]);
  const everywhere = h("button", { type: "button", id: "sign-out-everywhere" }, "Sign out everywhere");
  everywhere.addEventListener("click", async () => {
    await auth.signOutEverywhere();
    navigate("/login");
  });
  const changed = h("p", { id: "password-changed", hidden: true }, "Password changed; your other sessions were signed out.");
  page(
    "account",
    h("h1", {}, "Your account"),
    h(
      "dl",
      {},
      h("dt", {}, "Email"),
      h("dd", { id: "email" }, user.email),
      h("dt", {}, "Name"),
      h("dd", { id: "name" }, user.name ?? ""),
      h("dt", {}, "Verified"),
      h("dd", {}, user.email_verified ? "yes" : "no"),
    ),
    h("h2", {}, "Sessions"),
    h(
      "table",
      { id: "sessions" },
      h("thead", {}, h("tr", {}, h("th", {}, "Browser"), h("th", {}, "IP address"), h("th", {}, "Last used"), h("th", {}))),
      h("tbody", {}, ...sessions.map(sessionRow)),
    ),
    h("p", {}, everywhere),
    h("h2", {}, "Passkeys"),
    h("ul", { id: "passkeys" }, ...passkeys.map(passkeyRow)),
    form(
      "add-passkey",
      [field("Passkey name", "passkey_name", "text", { required: false, maxlength: "64", placeholder: "This laptop" })],
      "Add a passkey",
      async (f) => {
        await auth.registerPasskey(value(f, "passkey_name").trim() || undefined);
        await render();
      },
    ),
    h("h2", {}, "Change password"),
    form(
      "change-password",
      [
        field("Current password", "current_password", "password", { autocomplete: "current-password" }),
        field("New password", "new_password", "password", { autocomplete: "new-password", minlength: "15" }),
      ],
      "Change password",
      async (f) => {
        await auth.changePassword(value(f, "current_password"), value(f, "new_password"));
        f.reset();
        await render();
        document.getElementById("password-changed")?.removeAttribute("hidden");
      },
    ),
    changed,
  );
}

async function render(): Promise<void> {
  renderNav();
  try {
    switch (location.pathname) {
      case "/":
        navigate(auth.signedIn ? "/account" : "/login", true);
        return;
      case "/login":
        signInPage();
        return;
      case "/signup":
        signUpPage();
        return;
      case "/verify-email":
        await verifyEmailPage();
        return;
      case "/forgot-password":
        forgotPasswordPage();
        return;
      case "/reset-password":
        resetPasswordPage();
        return;
      case "/account":
        await accountPage();
        return;
      default:
        page("not-found", h("h1", {}, "Not found"), h("p", {}, link("/", "Home")));
    }
  } catch (error) {
    if (error instanceof AuthgateProblem && error.status === 401) {
      navigate("/login", true); // the session ended meanwhile
      return;
    }
    const box = alertBox();
    show(box, error);
    page("error", h("h1", {}, "Something went wrong"), box);
  }
}

// -- start --------------------------------------------------------------------------------------

if (config.testHooks) {
  window.authgateTest = {
    expireAccessToken: () => auth.expireAccessToken(),
    me: async () => (await auth.me()).email,
    signedIn: () => auth.signedIn,
  };
}

// Another tab signed in or out: follow it.
auth.onChange((signedIn) => {
  if (!signedIn && location.pathname === "/account") {
    navigate("/login", true);
  } else {
    renderNav();
  }
});

async function start(): Promise<void> {
  try {
    await auth.restore(); // the refresh cookie, if any, becomes an access token
  } catch (error) {
    console.warn("could not restore the session", error);
  }
  await render();
}

void start();
