// node oidc-provider for the gatehouse test bed. Started by testbed/up; configuration comes from
// the environment (see testbed/README.md, "node oidc-provider"). Not a production setup: memory
// adapter (sessions and codes are lost on restart; signing keys are kept in NODE_OIDC_STATE_DIR).
//
// What it offers that Dex and Keycloak do not:
// - `extraParams`: custom authorization parameters (custom_param, ...) are accepted, and every
//   request to the authorization endpoint is recorded as one JSON line in NODE_OIDC_AUTH_LOG;
// - resource indicators (RFC 8707): `resource=https://kubernetes.test` gives a JWT access token
//   with `aud: "https://kubernetes.test"` and the user's email and groups in it;
// - its own login page (/interaction/<uid>): form fields `login` (e-mail) and `password`,
//   submit button `#submit`; consent is granted automatically.
import { createServer } from 'node:https';
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseQuery } from 'node:querystring';

import Provider, { errors } from 'oidc-provider';

function env(name) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    console.error(`server.mjs: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
}

const ISSUER = env('NODE_OIDC_ISSUER'); // https://127.0.0.1:8643
const PORT = Number(new URL(ISSUER).port);
const STATE_DIR = env('NODE_OIDC_STATE_DIR');
const AUTH_LOG = env('NODE_OIDC_AUTH_LOG');
const RESOURCE = env('NODE_OIDC_RESOURCE'); // https://kubernetes.test
const TLS_CERT = readFileSync(env('NODE_OIDC_TLS_CERT'));
const TLS_KEY = readFileSync(env('NODE_OIDC_TLS_KEY'));

// The same users as Dex and Keycloak (same e-mails, same generated passwords).
const USERS = [
  { id: 'alice', email: 'alice@example.com', name: 'Alice Anderson', groups: ['devs'], password: env('ALICE_PASSWORD') },
  { id: 'bob', email: 'bob@example.com', name: 'Bob Brown', groups: ['qa'], password: env('BOB_PASSWORD') },
  { id: 'carol', email: 'carol@example.com', name: 'Carol Clark', groups: [], password: env('CAROL_PASSWORD') },
];
const byId = new Map(USERS.map((u) => [u.id, u]));

function checkPassword(login, password) {
  const u = USERS.find((x) => x.email === login || x.id === login);
  if (!u) return undefined;
  const a = Buffer.from(String(password ?? ''));
  const b = Buffer.from(u.password);
  return a.length === b.length && timingSafeEqual(a, b) ? u : undefined;
}

// Signing key and cookie keys, generated once and kept in the state dir.
function persistent(file, make) {
  const path = join(STATE_DIR, file);
  if (!existsSync(path)) writeFileSync(path, JSON.stringify(make()), { mode: 0o600 });
  return JSON.parse(readFileSync(path, 'utf8'));
}
const jwks = persistent('jwks.json', () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: `testbed-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' }] };
});
const cookieKeys = persistent('cookie-keys.json', () => [randomBytes(32).toString('hex')]);

const CLI_REDIRECTS = ['http://127.0.0.1/callback', 'http://[::1]/callback'];

const configuration = {
  clients: [
    {
      client_id: env('NODE_OIDC_WEB_CLIENT_ID'),
      client_secret: env('NODE_OIDC_WEB_CLIENT_SECRET'),
      client_name: 'gatehouse',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['https://127.0.0.1:8443/auth/callback', 'http://127.0.0.1:8080/auth/callback'],
      post_logout_redirect_uris: ['https://127.0.0.1:8443/', 'http://127.0.0.1:8080/'],
    },
    {
      client_id: env('NODE_OIDC_CLI_CLIENT_ID'),
      client_name: 'gatehouse CLI',
      application_type: 'native', // loopback redirect URIs match any port (RFC 8252)
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: CLI_REDIRECTS,
    },
  ],
  async findAccount(_ctx, id) {
    const u = byId.get(id);
    if (!u) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: u.email,
          email_verified: true,
          name: u.name,
          preferred_username: u.id,
          groups: u.groups,
        };
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  extraParams: ['custom_param', 'custom_param_2', 'audience'],
  conformIdTokenClaims: false,
  pkce: { required: (_ctx, client) => client.tokenEndpointAuthMethod === 'none' },
  cookies: { keys: cookieKeys },
  jwks,
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    DeviceCode: 600,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
    RefreshToken: 86400,
  },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, resourceIndicator) {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        return {
          scope: 'openid email profile groups offline_access',
          audience: RESOURCE,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // JWT access tokens carry the identity, so the kube-apiserver can map them like ID tokens.
  async extraTokenClaims(_ctx, token) {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    const u = byId.get(token.accountId);
    return u ? { email: u.email, email_verified: true, groups: u.groups } : undefined;
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!doctype html><title>oidc-provider error</title><h1>${esc(out.error)}</h1><p id="error_description">${esc(out.error_description ?? '')}</p>`;
  },
};

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const provider = new Provider(ISSUER, configuration);
provider.proxy = false;

// Record every authorization request (GET query or POST form) with the parameters it carried.
provider.use(async (ctx, next) => {
  const isAuth = ctx.path === '/auth' && (ctx.method === 'GET' || ctx.method === 'POST');
  await next();
  if (!isAuth) return;
  const params = ctx.method === 'GET' ? { ...ctx.query } : { ...(ctx.oidc?.params ?? {}) };
  for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
  const entry = { time: new Date().toISOString(), method: ctx.method, status: ctx.status, params };
  appendFileSync(AUTH_LOG, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
});

function loginPage(uid, details, error) {
  const hint = details.params.login_hint ?? '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - test bed oidc-provider</title></head>
<body>
<h1>Sign in to the test bed oidc-provider</h1>
<p>Client: <code id="client_id">${esc(details.params.client_id)}</code></p>
${error ? `<p id="error" role="alert">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
  <label for="login">E-mail</label> <input id="login" name="login" type="text" value="${esc(hint)}" autofocus>
  <label for="password">Password</label> <input id="password" name="password" type="password">
  <button id="submit" type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${esc(uid)}/abort"><button id="abort" type="submit">Cancel</button></form>
</body></html>`;
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(c);
  }
  return parseQuery(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction mismatch');
  const { prompt } = details;
  if (action === 'abort' && req.method === 'POST') {
    return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
  }
  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const user = checkPassword(form.login, form.password);
    if (!user) return send(res, 200, loginPage(uid, details, 'Invalid e-mail or password.'));
    return provider.interactionFinished(req, res, { login: { accountId: user.id } }, { mergeWithLastSubmission: false });
  }
  if (!action && req.method === 'GET') {
    if (prompt.name === 'login') return send(res, 200, loginPage(uid, details));
    if (prompt.name === 'consent') {
      // First-party clients: grant what was asked without a consent page.
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
  }
  return send(res, 400, `unexpected interaction ${esc(prompt.name)} / ${esc(action ?? '')}`);
}

const callback = provider.callback();
const server = createServer({ cert: TLS_CERT, key: TLS_KEY }, (req, res) => {
  const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?\/?(?:\?.*)?$/.exec(req.url);
  if (!m) return callback(req, res);
  interaction(req, res, m[1], m[2]).catch((err) => {
    console.error('interaction error:', err);
    if (!res.headersSent) send(res, 400, `<h1>interaction failed</h1><p id="error">${esc(err.message)}</p>`);
  });
});
server.listen(PORT, '127.0.0.1', () => {
  console.log(`oidc-provider ${ISSUER} listening on https://127.0.0.1:${PORT} (resource ${RESOURCE})`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
