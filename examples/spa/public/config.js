// Where the example SPA finds authgate. Served as is, before the app: edit it, or serve your own
// /config.js in front of the build (the browser tests do).
//   apiBaseUrl  authgate's address, without /api/v1. Keep it on the SPA's site (localhost with
//               another port is the same site; 127.0.0.1 is another), or the browser will not
//               send authgate's SameSite=Strict refresh cookie.
//   transport   "cookie" (refresh token in an HttpOnly cookie, survives a reload) or "body".
//   testHooks   true exposes window.authgateTest for the browser tests.
window.authgateExample = {
  apiBaseUrl: "http://localhost:8000",
  transport: "cookie",
  testHooks: false,
};
