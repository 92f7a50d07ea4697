// A local OpenID provider for authgate's OAuth tests (oidc-provider v9). Never used at run time.
//
// Environment:
//   PORT         port to listen on (127.0.0.1)
//   OIDC_CONFIG  JSON: {
//     clients: [{client_id, client_secret, redirect_uris, token_endpoint_auth_method?}],
//     access_token_ttl?: seconds (default 3600), signing_key?: private RSA JWK (shared by servers)
//   }
//
// Test-only endpoints (plain JSON, outside the OpenID routes):
//   POST /test/next-user {sub, email, email_verified, deny?, tamper?}
//        who the next interaction signs in (or denies); `tamper` rewrites the next ID tokens:
//        {aud?, iss?, nonce?, at_hash? ('matching': the right one), exp_offset?, bad_signature?: true}
//   GET  /test/stats     {refreshes, revocations, codes}
//   GET  /test/github/user, /test/github/user/emails   a GitHub-shaped API (Bearer access token)
//   POST /test/reset     forget the next user, the tamper and the counters
import { createHash, createPrivateKey, createSign, generateKeyPairSync, randomUUID } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 0);
const config = JSON.parse(process.env.OIDC_CONFIG || '{}');
const issuer = `http://127.0.0.1:${port}`;

const signingJwk = config.signing_key
  || { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), kid: randomUUID() };
signingJwk.alg = 'RS256';
signingJwk.use = 'sig';

const accounts = new Map();
let nextUser = null;
let tamper = null;
const stats = { refreshes: 0, revocations: 0, codes: 0 };

const provider = new Provider(issuer, {
  clients: (config.clients || []).map((client) => ({
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: client.token_endpoint_auth_method || 'client_secret_basic',
  })),
  jwks: { keys: [signingJwk] },
  cookies: { keys: ['authgate-test-oidc-cookie-key'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: {
    AccessToken: config.access_token_ttl || 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    RefreshToken: 86400,
  },
  async findAccount(_ctx, sub) {
    const claims = accounts.get(sub);
    if (!claims) return undefined;
    return { accountId: sub, claims: async () => ({ ...claims, sub }) };
  },
});

provider.on('grant.success', (ctx) => {
  if (ctx.oidc.params.grant_type === 'refresh_token') stats.refreshes += 1;
  if (ctx.oidc.params.grant_type === 'authorization_code') stats.codes += 1;
});
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route === 'revocation' && ctx.status === 200) stats.revocations += 1;
});

function b64url(value) {
  return Buffer.from(value).toString('base64url');
}

function resign(idToken, accessToken) {
  const [rawHeader, rawPayload] = idToken.split('.');
  const header = JSON.parse(Buffer.from(rawHeader, 'base64url'));
  const payload = JSON.parse(Buffer.from(rawPayload, 'base64url'));
  for (const claim of ['aud', 'iss', 'nonce', 'at_hash']) {
    if (tamper[claim] !== undefined) payload[claim] = tamper[claim];
  }
  if (tamper.at_hash === 'matching') {
    // The real half hash (RS256: left half of SHA-256) of the access token issued alongside.
    const digest = createHash('sha256').update(accessToken).digest();
    payload.at_hash = digest.subarray(0, digest.length / 2).toString('base64url');
  }
  if (tamper.exp_offset !== undefined) payload.exp = Math.floor(Date.now() / 1000) + tamper.exp_offset;
  const key = tamper.bad_signature
    ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    : createPrivateKey({ key: signingJwk, format: 'jwk' });
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = createSign('RSA-SHA256').update(input).sign(key);
  return `${input}.${signature.toString('base64url')}`;
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/next-user' && ctx.method === 'POST') {
    const body = await readJson(ctx.req);
    nextUser = body;
    tamper = body.tamper || null;
    ctx.body = { ok: true };
    return;
  }
  if (ctx.path === '/test/stats' && ctx.method === 'GET') {
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/test/reset' && ctx.method === 'POST') {
    nextUser = null;
    tamper = null;
    Object.keys(stats).forEach((key) => { stats[key] = 0; });
    ctx.body = { ok: true };
    return;
  }
  if (ctx.path.startsWith('/test/github/user') && ctx.method === 'GET') {
    const [scheme, value] = (ctx.get('authorization') || '').split(' ');
    const token = scheme === 'Bearer' ? await provider.AccessToken.find(value) : undefined;
    const claims = token && accounts.get(token.accountId);
    if (!claims) {
      ctx.status = 401;
      ctx.body = { message: 'Bad credentials' };
      return;
    }
    ctx.body = ctx.path.endsWith('/emails')
      ? [{ email: claims.email, primary: true, verified: claims.email_verified === true }]
      : { id: Number(token.accountId.replace(/\D/g, '')) || token.accountId, login: token.accountId, name: claims.name || null };
    return;
  }
  const interaction = ctx.path.match(/^\/interaction\/([\w-]+)$/);
  if (interaction && ctx.method === 'GET') {
    // Non-interactive sign-in: the account chosen by /test/next-user, every requested scope granted.
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    let result;
    if (!nextUser || nextUser.deny) {
      result = { error: 'access_denied', error_description: 'End-User denied the request' };
    } else {
      const { sub, deny: _deny, tamper: _tamper, ...claims } = nextUser;
      accounts.set(sub, claims);
      const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
      grant.addOIDCScope(String(details.params.scope || 'openid'));
      result = { login: { accountId: sub }, consent: { grantId: await grant.save() } };
    }
    ctx.respond = false;
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    return;
  }
  await next();
  if (ctx.oidc?.route === 'token' && tamper && ctx.status === 200 && ctx.body?.id_token) {
    ctx.body = { ...ctx.body, id_token: resign(ctx.body.id_token, ctx.body.access_token) };
  }
});

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});
