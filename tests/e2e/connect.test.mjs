// End-to-end test: the public `@useparagon/connect` SDK, unmodified, in Debian Chromium, against
// `para serve`, with a real OAuth 2 authorization server (oidc-provider) and an upstream API on
// loopback. The SDK's wire contract is described in docs/connect-sdk.md. Two flows: headless
// (installIntegration, getUser, settings, workflows, a second configuration of the account,
// request through the proxy, uninstall) and
// the Connect Portal in the SDK's iframe (`paragon.connect()` showing para's /ui page). With
// PARA_SCREENSHOT_DIR set, the iframe test saves screenshots there (docs/screenshots).
//
// ── Protocol (how a Rust integration test drives this file) ────────────────────────────────────
//
//   1. Spawn `node --test tests/e2e/connect.test.mjs` (or plain `node tests/e2e/connect.test.mjs`)
//      with PARA_E2E_INFO=<dir>/info.json and PARA_E2E_SERVER=<dir>/server.json.
//   2. The harness starts the OAuth server and the upstream API, then writes PARA_E2E_INFO
//      (atomically: temp file + rename) — see `info` below for every field:
//        { issuer, authorizationEndpoint, tokenEndpoint, introspectionEndpoint,
//          clientId, clientSecret, scopes, redirectUri|null,
//          upstreamUrl, upstreamApiBase, statsUrl, account: { id, email, name } }
//      Configure `para serve` from it: for `custom.acmecrm` use authorizationEndpoint /
//      tokenEndpoint instead of the project's URLs, clientId/clientSecret as the project's OAuth
//      client, and upstreamApiBase (`${upstreamUrl}/v2`) as its API base URL. The OAuth client
//      accepts client_secret_post and client_secret_basic; PKCE S256 is accepted (and required
//      when PARA_E2E_REQUIRE_PKCE=1); refresh tokens are issued on every code exchange.
//   3. Start `para serve`, mint a user token, then write PARA_E2E_SERVER (atomically):
//        { "baseUrl": "http://127.0.0.1:PORT", "projectId": "...", "userToken": "..." }
//      The harness waits for that file (PARA_E2E_WAIT_MS, default 120000), waits until baseUrl
//      answers HTTP at all, then runs the browser flow against it.
//   4. Exit status 0 = pass. TAP/spec output on stdout names the first failing SDK call and the
//      HTTP requests the SDK made (method, URL, status) before it.
//
//   Instead of PARA_E2E_SERVER the server can be given by env: PARA_BASE_URL, PARA_PROJECT_ID,
//   PARA_USER_TOKEN (e.g. against `para dev`). Then the OAuth redirect URI must be known before
//   start: PARA_OAUTH_REDIRECT, default `${PARA_BASE_URL}/oauth/callback`. With the file protocol
//   the redirect URI is PARA_OAUTH_REDIRECT or `${baseUrl}/oauth/callback` from server.json (the
//   OAuth server resolves it when the authorization request arrives).
//   Fixed ports instead of random ones: PARA_E2E_OAUTH_PORT, PARA_E2E_UPSTREAM_PORT.
//   Without any server configuration only the self-checks run and the SDK flow is skipped
//   (PARA_E2E_REQUIRE_SERVER=1 turns the skip into a failure).
//
//   Other knobs: PARA_E2E_ACCESS_TOKEN_TTL (seconds, default 3600 — small values exercise
//   refresh), PARA_E2E_INTEGRATION (default custom.acmecrm), PARA_E2E_WORKFLOW_ID (default the
//   taskflow "Mirror a task into ACME" workflow), PARA_E2E_HEADFUL=1, PARA_E2E_CHROMIUM
//   (default /usr/bin/chromium).
//
//   What the SDK flow expects of the server besides docs/connect-sdk.md: a fresh user (the
//   integration not installed yet); CORS (the page is served from another loopback port); the
//   authorization request carries state and an S256 challenge and the code exchange a
//   code_verifier (taskflow's usePKCEInCodeExchange); testEndpointPath (GET /v2/me) is called
//   with the new token during install; shared settings are keyed by input id.
//
//   Observability for other tests: GET ${upstreamUrl}/__e2e/stats answers JSON counters —
//   authorization requests (with PKCE method), token requests per grant type and client auth
//   method, upstream calls accepted/refused per route. A concurrent-refresh test can read
//   `token.refresh_token` before and after.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

import Provider from 'oidc-provider';
import { chromium } from 'playwright-core';

import { everySdkMethod, sdkSurface } from './sdk-methods.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const env = process.env;

// ── Fixed test data ─────────────────────────────────────────────────────────────────────────────
const CLIENT_ID = 'para-test';
const CLIENT_SECRET = 'para-test-secret-5f1c2a9e';
const ACCOUNT = { id: 'e2e-user', email: 'e2e-user@acme.example', name: 'E2E User' };
const RESOURCE = 'urn:para-e2e:acme-api';
const RESOURCE_SCOPES = 'tasks.read tasks.write';
const SCOPES = 'tasks.read tasks.write offline_access'; // what taskflow's custom.acmecrm asks for
const ACCESS_TOKEN_TTL = Number(env.PARA_E2E_ACCESS_TOKEN_TTL || 3600);
const REQUIRE_PKCE = env.PARA_E2E_REQUIRE_PKCE === '1';
const INTEGRATION = env.PARA_E2E_INTEGRATION || 'custom.acmecrm';
// An integration connected with values (basic auth) whose test endpoint answers 200, if the
// server's project has one (the Rust driver adds `custom.notesapi`).
const FIELDS_INTEGRATION = env.PARA_E2E_FIELDS_INTEGRATION || '';
// …and one of its workflows with a required number setting (optional).
const FIELDS_WORKFLOW = env.PARA_E2E_FIELDS_WORKFLOW || '';
const FIELDS_WORKFLOW_INPUT = env.PARA_E2E_FIELDS_WORKFLOW_INPUT || '';
// A field_mapping setting of that integration (title → 'title', body → 'Body').
const FIELDS_MAPPING_INPUT = env.PARA_E2E_FIELDS_MAPPING_INPUT || '';
// examples/taskflow: custom.acmecrm "Mirror a task into ACME" and its shared inputs.
const WORKFLOW_ID = env.PARA_E2E_WORKFLOW_ID || '1c9e7f3d-8a52-4b06-9e1f-5d6c7b8a9f70';
const INPUT_PIPELINE = 'b6ca3d7f-5a14-4b2e-9f86-a4bc23de4a56'; // custom_dropdown: sales | support
const INPUT_SYNC_LIMIT = 'c7db4e80-6b25-4c3f-a097-b5cd34ef5b67'; // number
// What connects the API-key catalog integration (apiUrl is set once the upstream listens) and
// the project's API resource, and the lists the former's API answers.
const API_KEY_VALUES = { apiUrl: '', apiKey: 'ac-key-5d2c91' };
const RESOURCE_VALUES = { apiKey: 'resource-key-77e1a0' };
const AC_LISTS = [{ id: '1', name: 'Newsletter' }, { id: '2', name: 'Customers' }, { id: '3', name: 'Partners' }];
const CHROMIUM = env.PARA_E2E_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
];
const SDK_BUNDLE = require.resolve('@useparagon/connect'); // dist/src/index.js (CommonJS bundle)
const SDK_VERSION = JSON.parse(fs.readFileSync(path.join(path.dirname(SDK_BUNDLE), '../../package.json'), 'utf8')).version;

// ── Small HTTP helpers ──────────────────────────────────────────────────────────────────────────
function listen(server, port = 0) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
}
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
function send(res, status, body, headers = {}) {
  const isText = typeof body === 'string';
  res.writeHead(status, {
    'content-type': isText ? 'text/html; charset=utf-8' : 'application/json',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(isText ? body : JSON.stringify(body));
}
function writeJsonAtomic(file, value) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2));
  fs.renameSync(tmp, file);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const isLoopback = (u) => ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);

// ── Counters other tests (and this one) read ────────────────────────────────────────────────────
const stats = {
  authorize: [], // { codeChallengeMethod, hasState, scope, redirectUri }
  token: {}, // grant_type -> count
  tokenRequests: [], // { grantType, authMethod, hasCodeVerifier, redirectUri }
  upstream: {}, // "METHOD /path" -> { accepted, refused }
  pipelines: [], // the pipeline ids of accepted "Mirror a task" calls, in order
};
function countUpstream(key, ok) {
  const s = (stats.upstream[key] ??= { accepted: 0, refused: 0 });
  s[ok ? 'accepted' : 'refused'] += 1;
}

// ── Where the Paragraph server is (env now, or server.json later) ───────────────────────────────
let serverConfig = env.PARA_BASE_URL
  ? { baseUrl: env.PARA_BASE_URL.replace(/\/$/, ''), projectId: env.PARA_PROJECT_ID, userToken: env.PARA_USER_TOKEN }
  : null;
function readServerFile() {
  if (serverConfig || !env.PARA_E2E_SERVER) return serverConfig;
  try {
    const v = JSON.parse(fs.readFileSync(env.PARA_E2E_SERVER, 'utf8'));
    serverConfig = { ...v, baseUrl: String(v.baseUrl).replace(/\/$/, '') };
  } catch {
    /* not there yet */
  }
  return serverConfig;
}
function paraRedirectUri() {
  if (env.PARA_OAUTH_REDIRECT) return env.PARA_OAUTH_REDIRECT;
  const s = readServerFile();
  return s ? `${s.baseUrl}/oauth/callback` : null;
}

// ── 1. OAuth 2 authorization server (oidc-provider) ─────────────────────────────────────────────
let provider;
const oauthServer = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://x');
    if (url.pathname.startsWith('/interaction/')) return await autoInteraction(req, res);
    if (req.method === 'GET' && url.pathname === '/auth') {
      stats.authorize.push({
        codeChallengeMethod: url.searchParams.get('code_challenge')
          ? url.searchParams.get('code_challenge_method') || 'plain'
          : null,
        hasState: url.searchParams.has('state'),
        scope: url.searchParams.get('scope'),
        redirectUri: url.searchParams.get('redirect_uri'),
      });
    }
    if (req.method === 'POST' && url.pathname === '/token') await normaliseClientAuth(req);
    return provider.callback()(req, res);
  } catch (err) {
    send(res, 500, { error: 'harness_error', error_description: String(err?.stack || err) });
  }
});

// The client is registered as client_secret_post; a request using HTTP Basic is rewritten into
// the equivalent body parameters, so para may use either method. oidc-provider accepts an
// already-read body via req.body.
async function normaliseClientAuth(req) {
  const params = new URLSearchParams(await readBody(req));
  let authMethod = params.has('client_secret') ? 'client_secret_post' : 'none';
  const auth = req.headers.authorization || '';
  if (/^basic /i.test(auth)) {
    const [id, secret] = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8').split(':');
    params.set('client_id', decodeURIComponent(id ?? ''));
    params.set('client_secret', decodeURIComponent(secret ?? ''));
    delete req.headers.authorization;
    authMethod = 'client_secret_basic';
  }
  const grantType = params.get('grant_type');
  stats.token[grantType] = (stats.token[grantType] ?? 0) + 1;
  stats.tokenRequests.push({
    grantType,
    authMethod,
    hasCodeVerifier: params.has('code_verifier'),
    redirectUri: params.get('redirect_uri'),
  });
  req.body = params.toString();
}

// Log in the fixed test account and consent to whatever is asked — no page, no clicking.
async function autoInteraction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    return provider.interactionFinished(req, res, { login: { accountId: ACCOUNT.id } }, { mergeWithLastSubmission: false });
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const d = prompt.details;
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

// ── 2. Upstream API: /v2/* only for tokens the provider issued ──────────────────────────────────
const upstreamServer = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/__e2e/stats') return send(res, 200, stats);
  // An API-key catalog integration (ActiveCampaign: its API URL is the user's account origin, so
  // it can be this server) and the project's API resource, each checking its key.
  if (url.pathname.startsWith('/api/3/') || url.pathname.startsWith('/resource/')) {
    const ac = url.pathname.startsWith('/api/3/');
    const ok = ac ? req.headers['api-token'] === API_KEY_VALUES.apiKey : req.headers['x-api-key'] === RESOURCE_VALUES.apiKey;
    const key = `${req.method} ${url.pathname}`;
    countUpstream(key, ok);
    if (!ok) return send(res, 401, { message: 'bad key' });
    if (key === 'GET /api/3/users/me') return send(res, 200, { user: { id: '1', username: ACCOUNT.id } });
    if (key === 'GET /api/3/lists') return send(res, 200, { lists: AC_LISTS });
    if (key === 'GET /resource/me') return send(res, 200, { id: ACCOUNT.id });
    return send(res, 404, { message: 'not here' });
  }
  const route = `${req.method} ${url.pathname.replace(/\/pipelines\/[^/]+\//, '/pipelines/:id/')}`;
  const needs = {
    'GET /v2/me': 'tasks.read',
    'POST /v2/tasks': 'tasks.write',
    'POST /v2/notes': 'tasks.write', // taskflow "Welcome note"
    'POST /v2/pipelines/:id/tasks': 'tasks.write', // taskflow "Mirror a task into ACME"
  }[route];
  if (!needs) return send(res, 404, { error: 'not_found', route });
  const raw = await readBody(req);
  const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
  const token = m && (await provider.AccessToken.find(m[1]));
  const ok = token && token.clientId === CLIENT_ID && token.accountId === ACCOUNT.id
    && String(token.scope || '').split(' ').includes(needs);
  countUpstream(route, !!ok);
  if (!ok) {
    return send(res, 401, { error: 'invalid_token' }, {
      'www-authenticate': `Bearer error="invalid_token", scope="${needs}"`,
    });
  }
  let body = {};
  try { body = raw ? JSON.parse(raw) : {}; } catch { return send(res, 400, { error: 'invalid_json' }); }
  if (route === 'GET /v2/me') return send(res, 200, { ...ACCOUNT });
  if (route === 'POST /v2/pipelines/:id/tasks') stats.pipelines.push(url.pathname.split('/')[3]);
  return send(res, 201, { id: `task_${crypto.randomUUID()}`, ...body, owner: ACCOUNT.id, query: Object.fromEntries(url.searchParams) });
});

// ── 3. The page the browser loads: SDK bundle + a tiny driver ───────────────────────────────────
const sdkScript = () => `(function(){var module={exports:{}};var exports=module.exports;\n${fs.readFileSync(SDK_BUNDLE, 'utf8')}\n;window.ParagonConnect=module.exports;})();`;
const PAGE = `<!doctype html><meta charset="utf-8"><title>para e2e</title>
<script src="/sdk.js"></script>
<button id="install">Connect</button>
<button id="run">Run</button>
<script>
  const { paragon } = window.ParagonConnect;
  const plain = (v) => (v === undefined ? { undefined: true } : JSON.parse(JSON.stringify(v)));
  const failure = (e) => ({ ok: false, name: e && e.name, error: e instanceof Error ? e.message : JSON.stringify(e) });
  window.e2e = {
    // Point every service host at one origin (configureGlobal derives https://<svc>.<host>
    // otherwise, dropping the port).
    configure(base, headless = true) {
      paragon.setHeadless(headless);
      const envs = {};
      for (const k of ['ZEUS_PUBLIC_URL', 'HERMES_PUBLIC_URL', 'WORKER_PROXY_PUBLIC_URL',
        'PASSPORT_PUBLIC_URL', 'PASSPORT_PRODUCTION_URL', 'CONNECT_PUBLIC_URL',
        'DASHBOARD_PUBLIC_URL', 'CDN_PUBLIC_URL', 'API_TRIGGER_KIT_PUBLIC_URL']) envs[k] = base;
      paragon.configureGlobal({ host: new URL(base).hostname }, envs);
      return paragon.getVersion();
    },
    // paragon[fn], or the SDK class's own method where the exported object has none (the
    // exported \`paragon\` binds a subset of ConnectSDK's methods; connectSingleton is the instance).
    async call(fn, args) {
      const sdk = window.ParagonConnect.connectSingleton;
      const target = typeof paragon[fn] === 'function' ? paragon : sdk;
      try { return { ok: true, value: plain(await target[fn](...args)) }; } catch (e) { return failure(e); }
    },
    pendingInstall: null,
    install: null,
    // paragon.connect() opens the Connect Portal in the SDK's iframe and settles once installed.
    connected: null,
    connect(name) {
      window.e2e.connected = null;
      paragon.connect(name).then((v) => { window.e2e.connected = { ok: true, value: plain(v) }; },
        (e) => { window.e2e.connected = failure(e); });
    },
  };
  // A click that runs window.e2e.onClick (set by a test) and records its result in e2e.clicked.
  document.getElementById('run').addEventListener('click', () => {
    Promise.resolve().then(() => window.e2e.onClick())
      .then((v) => { window.e2e.clicked = { ok: true, value: plain(v) }; }, (e) => { window.e2e.clicked = failure(e); });
  });
  // paragon.installFlow with its callbacks recorded: e2e.flow = {next: [stages], complete, error}.
  window.e2e.flow = { next: [], complete: null, error: null };
  window.e2e.startFlow = (name, options = {}) => {
    const f = { next: [], complete: null, error: null };
    window.e2e.flow = f;
    paragon.installFlow.start(name, {
      ...options,
      onNext: (stage) => f.next.push(plain(stage)),
      onComplete: (v) => { f.complete = plain(v ?? null); },
      onError: (e, stage) => { f.error = { ...failure(e), stage: plain(stage ?? null) }; },
    });
  };
  window.e2e.flowCall = async (fn, args) => plain(await paragon.installFlow[fn](...args));
  // installIntegration opens the OAuth popup synchronously, so start it from a real click.
  document.getElementById('install').addEventListener('click', () => {
    const { name, options } = window.e2e.pendingInstall;
    window.e2e.install = paragon.installIntegration(name, options)
      .then((v) => ({ ok: true, value: plain(v) }), failure);
  });
</script>`;

const selfCallbacks = []; // what the self-check's redirect URI received
const mockRequests = []; // what the SDK sent to the /mock prefix in the self-check
const pageServer = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/') return send(res, 200, PAGE);
  if (url.pathname === '/sdk.js') return send(res, 200, sdkScript(), { 'content-type': 'text/javascript' });
  if (url.pathname === '/callback') {
    selfCallbacks.push(Object.fromEntries(url.searchParams));
    return send(res, 200, '<!doctype html><title>callback</title>ok');
  }
  if (url.pathname.startsWith('/mock/')) {
    mockRequests.push({ method: req.method, path: url.pathname, headers: req.headers });
    return send(res, 404, { message: 'mock: nothing here' });
  }
  return send(res, 404, { error: 'not_found' });
});

// ── Start everything, publish the info file ─────────────────────────────────────────────────────
const issuer = await listen(oauthServer, Number(env.PARA_E2E_OAUTH_PORT || 0));
const upstreamUrl = await listen(upstreamServer, Number(env.PARA_E2E_UPSTREAM_PORT || 0));
const pageUrl = await listen(pageServer);
API_KEY_VALUES.apiUrl = upstreamUrl; // an account's origin: the API is below /api/3
const selfCallbackUri = `${pageUrl}/callback`;

const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
provider = new Provider(issuer, {
  jwks: { keys: [{ ...signingKey, kid: 'e2e', use: 'sig', alg: 'RS256' }] },
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [selfCallbackUri, ...(paraRedirectUri() ? [paraRedirectUri()] : [])],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  findAccount: async (ctx, id) => (id === ACCOUNT.id
    ? { accountId: id, claims: async () => ({ sub: id, email: ACCOUNT.email, name: ACCOUNT.name }) }
    : undefined),
  claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
  scopes: ['openid', 'offline_access', 'tasks.read', 'tasks.write'],
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['para-e2e-cookie-key'] },
  // A code for paragon.completeInstall is obtained by the company's page, not by para: it comes
  // without PKCE (state `direct-…`).
  pkce: { methods: ['S256'], required: (ctx) => REQUIRE_PKCE && !String(ctx.oidc.params?.state ?? '').startsWith('direct-') },
  // oidc-provider drops offline_access unless prompt=consent is sent; issue refresh tokens anyway,
  // and keep tokens alive independently of the browser session at the provider.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  rotateRefreshToken: true,
  ttl: { AccessToken: ACCESS_TOKEN_TTL, AuthorizationCode: 300, RefreshToken: 14 * 24 * 3600, Interaction: 600, Session: 3600, Grant: 14 * 24 * 3600 },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({
        scope: RESOURCE_SCOPES,
        audience: RESOURCE,
        accessTokenTTL: ACCESS_TOKEN_TTL,
        accessTokenFormat: 'opaque',
      }),
    },
  },
});
provider.proxy = false;
// Accept the Paragraph callback even when its URL is only known later (server.json).
const registeredRedirectAllowed = provider.Client.prototype.redirectUriAllowed;
provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
  return registeredRedirectAllowed.call(this, value) || (this.clientId === CLIENT_ID && value === paraRedirectUri());
};
provider.on('server_error', (ctx, err) => console.error('# oidc-provider server_error:', err));

const info = {
  issuer,
  authorizationEndpoint: `${issuer}/auth`,
  tokenEndpoint: `${issuer}/token`,
  introspectionEndpoint: `${issuer}/token/introspection`,
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  scopes: SCOPES,
  redirectUri: paraRedirectUri(),
  upstreamUrl,
  upstreamApiBase: `${upstreamUrl}/v2`,
  statsUrl: `${upstreamUrl}/__e2e/stats`,
  account: ACCOUNT,
  resourceApiBase: `${upstreamUrl}/resource`,
};
if (env.PARA_E2E_INFO) writeJsonAtomic(env.PARA_E2E_INFO, info);
console.log(`# PARA_E2E_INFO ${JSON.stringify(info)}`);

let browser;
async function getBrowser() {
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    headless: env.PARA_E2E_HEADFUL !== '1',
    args: env.PARA_E2E_HEADFUL === '1' ? CHROMIUM_ARGS.filter((a) => a !== '--headless') : CHROMIUM_ARGS,
  });
  return browser;
}
// A fresh browser context that can only reach loopback (the SDK singleton would otherwise try
// https://connect.useparagon.com at load), with a log of every request for failure messages.
async function newContext() {
  const context = await (await getBrowser()).newContext();
  await context.route((u) => !isLoopback(u) && !u.protocol.startsWith('data') && u.protocol !== 'about:', (r) => r.abort());
  const log = [];
  context.on('requestfinished', async (r) => {
    const resp = await r.response().catch(() => null);
    log.push(`${r.method()} ${r.url()} -> ${resp ? resp.status() : '?'}`);
  });
  context.on('requestfailed', (r) => log.push(`${r.method()} ${r.url()} -> FAILED ${r.failure()?.errorText}`));
  let pages = 0;
  context.on('page', (p) => {
    const n = pages++ ? `popup${pages - 1}` : 'page';
    p.on('console', (m) => log.push(`${n} console.${m.type()}: ${m.text()}`));
    p.on('framenavigated', (f) => { if (f === p.mainFrame()) log.push(`${n} navigated to ${f.url()}`); });
    p.on('close', () => log.push(`${n} closed`));
  });
  return { context, log };
}

after(async () => {
  await browser?.close().catch(() => {});
  for (const s of [oauthServer, upstreamServer, pageServer]) {
    s.closeAllConnections?.();
    s.close();
  }
});

// ── Self-checks: everything that does not need the Paragraph server ─────────────────────────────
test('oauth server: discovery document', async () => {
  const doc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  assert.equal(doc.issuer, issuer);
  assert.equal(doc.authorization_endpoint, info.authorizationEndpoint);
  assert.equal(doc.token_endpoint, info.tokenEndpoint);
  assert.ok(doc.code_challenge_methods_supported.includes('S256'));
});

test('oauth server: authorization code + PKCE in Chromium, refresh, upstream checks the token', async () => {
  const { context, log } = await newContext();
  try {
    const verifier = b64url(crypto.randomBytes(32));
    const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
    const state = b64url(crypto.randomBytes(12));
    const authorize = new URL(info.authorizationEndpoint);
    for (const [k, v] of Object.entries({
      response_type: 'code', client_id: CLIENT_ID, redirect_uri: selfCallbackUri, scope: SCOPES,
      state, code_challenge: challenge, code_challenge_method: 'S256',
    })) authorize.searchParams.set(k, v);

    const page = await context.newPage();
    await page.goto(authorize.href);
    await page.waitForURL((u) => u.href.startsWith(selfCallbackUri), { timeout: 15000 });
    const cb = Object.fromEntries(new URL(page.url()).searchParams);
    assert.equal(cb.state, state, `callback: ${JSON.stringify(cb)}\n${log.join('\n')}`);
    assert.ok(cb.code, `no code in callback: ${JSON.stringify(cb)}`);
    assert.deepEqual(selfCallbacks.at(-1), cb);

    // Exchange with HTTP Basic client auth (rewritten to client_secret_post by the harness).
    const tokenRes = await fetch(info.tokenEndpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: cb.code, redirect_uri: selfCallbackUri, code_verifier: verifier }),
    });
    const tokens = await tokenRes.json();
    assert.equal(tokenRes.status, 200, JSON.stringify(tokens));
    assert.equal(tokens.token_type, 'Bearer');
    assert.ok(tokens.access_token && tokens.refresh_token, JSON.stringify(tokens));
    assert.equal(tokens.scope.split(' ').sort().join(' '), RESOURCE_SCOPES);
    assert.equal(stats.tokenRequests.at(-1).authMethod, 'client_secret_basic');

    const me = await fetch(`${info.upstreamApiBase}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(me.status, 200);
    assert.deepEqual(await me.json(), ACCOUNT);
    const created = await fetch(`${info.upstreamApiBase}/tasks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'self-check' }),
    });
    assert.equal(created.status, 201);
    assert.equal((await created.json()).title, 'self-check');
    for (const authorization of [`Bearer ${tokens.access_token}x`, 'Bearer nope', undefined]) {
      const r = await fetch(`${info.upstreamApiBase}/me`, { headers: authorization ? { authorization } : {} });
      assert.equal(r.status, 401, `upstream accepted ${authorization}`);
    }

    // A refresh (client_secret_post) yields a new working access token.
    const refreshed = await (await fetch(info.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: CLIENT_ID, client_secret: CLIENT_SECRET }),
    })).json();
    assert.ok(refreshed.access_token && refreshed.access_token !== tokens.access_token, JSON.stringify(refreshed));
    const me2 = await fetch(`${info.upstreamApiBase}/me`, { headers: { authorization: `Bearer ${refreshed.access_token}` } });
    assert.equal(me2.status, 200);

    // The code is single use (replaying it also revokes what it issued, so this goes last).
    const replay = await fetch(info.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: cb.code, redirect_uri: selfCallbackUri, code_verifier: verifier, client_id: CLIENT_ID, client_secret: CLIENT_SECRET }),
    });
    assert.equal(replay.status, 400);
    assert.equal(stats.authorize.at(-1).codeChallengeMethod, 'S256');
  } finally {
    await context.close();
  }
});

test('chromium: SDK bundle loads, configures one origin, and calls the documented URLs', async () => {
  const { context, log } = await newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${pageUrl}/`);
    const version = await page.evaluate((b) => window.e2e.configure(b), `${pageUrl}/mock`);
    assert.equal(version, SDK_VERSION);
    const envs = await page.evaluate(() => window.ParagonConnect.connectSingleton.environments);
    for (const k of ['ZEUS_PUBLIC_URL', 'HERMES_PUBLIC_URL', 'WORKER_PROXY_PUBLIC_URL', 'PASSPORT_PUBLIC_URL', 'CONNECT_PUBLIC_URL']) {
      assert.equal(envs[k], `${pageUrl}/mock`, k);
    }
    // authenticate against the mock prefix: the SDK asks for /sdk/me and /sdk/integrations with
    // the bearer token and its version header, gets 404 and reports the failure.
    const token = `${b64url('{"alg":"none"}')}.${b64url(JSON.stringify({ sub: 'u1', exp: Math.floor(Date.now() / 1000) + 600 }))}.x`;
    const r = await page.evaluate(([t]) => window.e2e.call('authenticate', ['p1', t]), [token]);
    assert.equal(r.ok, false);
    assert.match(r.error, /Failed to authenticate user with Paragon/);
    // The SDK sends both requests at once and gives up at the first 404, so the second may
    // still be on its way: wait for it (up to 5 s) before checking what arrived.
    const apiRequests = () => mockRequests.filter((m) => m.path.startsWith('/mock/projects/'));
    for (let waited = 0; apiRequests().length < 2 && waited < 5000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const api = apiRequests();
    const seen = api.map((m) => `${m.method} ${m.path}`).sort();
    assert.deepEqual(seen, ['GET /mock/projects/p1/sdk/integrations', 'GET /mock/projects/p1/sdk/me'], log.join('\n'));
    // The SDK's iframe is created even in headless mode and loads ${CONNECT_PUBLIC_URL}/ui.
    assert.ok(mockRequests.some((m) => m.path === '/mock/ui'));
    for (const m of api) {
      assert.equal(m.headers.authorization, `Bearer ${token}`);
      assert.equal(m.headers['x-paragon-sdk-version'], SDK_VERSION);
    }
  } finally {
    await context.close();
  }
});

// ── The real thing: the SDK against `para serve` ────────────────────────────────────────────────
async function waitForServer() {
  const deadline = Date.now() + Number(env.PARA_E2E_WAIT_MS || 120000);
  while (!readServerFile()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${env.PARA_E2E_SERVER}`);
    await sleep(100);
  }
  const s = serverConfig;
  for (const k of ['baseUrl', 'projectId', 'userToken']) assert.ok(s[k], `server config lacks ${k}`);
  for (;;) {
    try {
      await fetch(s.baseUrl, { signal: AbortSignal.timeout(2000) });
      return s;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${s.baseUrl} never answered: ${err.message}`);
      await sleep(100);
    }
  }
}

// The end of the browser log for failure messages, and `call(fn, ...args)`: paragon[fn](...args)
// in the page, asserting it succeeded.
function sdkDriver(page, log) {
  const recent = () => {
    const lines = []; // collapse repeats (polling) into "(xN)"
    for (const l of log) {
      const last = lines.at(-1);
      if (last && last.line === l) last.n += 1; else lines.push({ line: l, n: 1 });
    }
    const text = lines.slice(-40).map(({ line, n }) => (n > 1 ? `${line} (x${n})` : line));
    return `\nbrowser log (requests, navigations, console):\n  ${text.join('\n  ')}`;
  };
  const call = async (fn, ...args) => {
    const r = await page.evaluate(([f, a]) => window.e2e.call(f, a), [fn, args]);
    assert.ok(r.ok, `paragon.${fn}(${JSON.stringify(args).slice(1, -1)}) failed: ${r.name ?? ''} ${r.error}${recent()}`);
    return r.value;
  };
  return { recent, call };
}

const haveServer = Boolean(env.PARA_BASE_URL || env.PARA_E2E_SERVER);
const skip = !haveServer && env.PARA_E2E_REQUIRE_SERVER !== '1'
  ? 'no Paragraph server configured (PARA_E2E_SERVER or PARA_BASE_URL)'
  : false;

test('SDK flow against para serve: authenticate, install over OAuth, settings, workflows, proxy, uninstall', { skip, timeout: 180000 }, async (t) => {
  if (!haveServer) assert.fail('PARA_E2E_REQUIRE_SERVER=1 but no server configured');
  const server = await waitForServer();
  const { context, log } = await newContext();
  const page = await context.newPage();
  const { recent, call } = sdkDriver(page, log);
  const user = () => call('getUser');
  const state = async () => (await user()).integrations?.[INTEGRATION];
  const reauthenticate = () => call('authenticate', server.projectId, server.userToken);
  // Steps depend on each other: after the first failure the rest are skipped.
  let failed = null;
  const step = (name, fn) => (failed
    ? t.test(name, { skip: `needs "${failed}"` })
    : t.test(name, async () => {
      try { await fn(); } catch (err) { failed = name; throw err; }
    }));

  try {
    await page.goto(`${pageUrl}/`);
    await page.evaluate((b) => window.e2e.configure(b), server.baseUrl);

    await step('authenticate + getUser', async () => {
      await reauthenticate();
      const u = await user();
      assert.equal(u.authenticated, true);
      assert.equal(typeof u.userId, 'string');
      assert.equal(u.token, undefined, 'getUser must not expose the token');
      assert.ok(u.integrations && typeof u.integrations === 'object');
      const s = u.integrations[INTEGRATION];
      assert.ok(s, `getUser().integrations lacks ${INTEGRATION}: ${Object.keys(u.integrations)}`);
      assert.equal(s.enabled, false, 'the integration must not be installed yet (fresh user)');
      assert.deepEqual(s.allCredentials, []);
      const meta = await call('getIntegrationMetadata', INTEGRATION);
      assert.equal(meta.type, INTEGRATION);
      assert.equal(typeof meta.name, 'string');
      const cfg = await call('getIntegrationConfig', INTEGRATION);
      const ids = (cfg.availableUserSettings ?? []).map((i) => i.id);
      assert.ok(ids.includes(INPUT_PIPELINE) && ids.includes(INPUT_SYNC_LIMIT), `shared inputs: ${JSON.stringify(ids)}`);
    });

    let installed;
    await step('installIntegration (headless) through the OAuth popup', async () => {
      const before = { authorize: stats.authorize.length, token: stats.tokenRequests.length };
      await page.evaluate(([name]) => { window.e2e.pendingInstall = { name, options: {} }; }, [INTEGRATION]);
      const popupPromise = context.waitForEvent('page', { timeout: 10000 });
      await page.click('#install');
      await popupPromise;
      const r = await page.waitForFunction(() => window.e2e.install, null, { timeout: 90000 })
        .then(() => page.evaluate(() => window.e2e.install))
        .catch((err) => ({ ok: false, error: `no result within 90 s (${err.message.split('\n')[0]})` }));
      assert.ok(r.ok, `installIntegration failed: ${r.error}${recent()}`);
      installed = r.value;
      assert.equal(installed.integrationType, INTEGRATION);
      assert.equal(typeof installed.integrationId, 'string');
      assert.equal(typeof installed.credentialId, 'string');

      const s = await state();
      assert.equal(s.enabled, true);
      assert.equal(s.credentialStatus, 'VALID');
      assert.equal(s.credentialId, installed.credentialId);
      assert.equal(s.allCredentials.length, 1);

      // The server talked to the real OAuth server and tested the credential upstream.
      const authz = stats.authorize.slice(before.authorize);
      const tokenReqs = stats.tokenRequests.slice(before.token);
      assert.ok(authz.length >= 1, 'the popup never reached the authorization endpoint');
      assert.ok(authz.every((a) => a.hasState), 'authorization request without state');
      assert.equal(authz.at(-1).codeChallengeMethod, 'S256', 'custom.acmecrm uses PKCE (usePKCEInCodeExchange)');
      const exchange = tokenReqs.find((x) => x.grantType === 'authorization_code');
      assert.ok(exchange, 'no authorization_code exchange at the token endpoint');
      assert.ok(exchange.hasCodeVerifier, 'code exchange without code_verifier');
      assert.ok((stats.upstream['GET /v2/me']?.accepted ?? 0) >= 1, 'testEndpointPath /me was not called with a valid token');

      await reauthenticate(); // state survives a fresh /sdk/me
      const again = await state();
      assert.equal(again.enabled, true);
      assert.equal(again.credentialId, installed.credentialId);
    });

    await step('save shared user settings', async () => {
      const settings = { [INPUT_PIPELINE]: 'sales', [INPUT_SYNC_LIMIT]: 25 };
      const r = await call('updateIntegrationUserSettings', INTEGRATION, settings);
      assert.deepEqual(r.errors, []);
      assert.equal(r.userState.integrations[INTEGRATION].sharedSettings[INPUT_PIPELINE], 'sales');
      await reauthenticate();
      const s = await state();
      assert.equal(s.sharedSettings?.[INPUT_PIPELINE], 'sales');
      assert.equal(Number(s.sharedSettings?.[INPUT_SYNC_LIMIT]), 25);
    });

    await step('enable, configure and disable a workflow', async () => {
      // Mirror a task is defaultEnabled; whatever the server did at install, end up enabled.
      if ((await state()).workflowSettings?.[WORKFLOW_ID]?.enabled) await call('disableWorkflow', WORKFLOW_ID, {});
      await call('enableWorkflow', WORKFLOW_ID);
      assert.equal((await state()).workflowSettings?.[WORKFLOW_ID]?.enabled, true);
      await reauthenticate();
      assert.equal((await state()).workflowSettings?.[WORKFLOW_ID]?.enabled, true, 'enable did not persist');
      const r = await call('updateWorkflowUserSettings', INTEGRATION, WORKFLOW_ID, {});
      assert.deepEqual(r.errors, []);
      await call('disableWorkflow', WORKFLOW_ID, {});
      assert.equal((await state()).workflowSettings?.[WORKFLOW_ID]?.enabled, false);
      await reauthenticate();
      assert.equal((await state()).workflowSettings?.[WORKFLOW_ID]?.enabled ?? false, false, 'disable did not persist');
    });

    await step('a second configuration: its own settings and workflow toggle, a run in it, metadata, destroy', async () => {
      const credentialId = (await state()).credentialId;
      const made = await call('createConfiguration', { credentialId, externalId: 'team-b' });
      assert.equal(made.isDefault, false, JSON.stringify(made));
      assert.equal(made.externalId, 'team-b');
      assert.equal(made.connectCredentialId, credentialId);
      const opts = { selectedCredentialId: credentialId, selectedConfigurationId: made.id };
      const r = await call('updateIntegrationUserSettings', INTEGRATION, { [INPUT_PIPELINE]: 'support' }, opts);
      assert.deepEqual(r.errors, []);
      // Mirror a task is defaultEnabled: on in the new configuration, off in the default one
      // (previous step). Turn it off and on again there.
      await call('disableWorkflow', WORKFLOW_ID, opts);
      await call('enableWorkflow', WORKFLOW_ID, opts);
      await reauthenticate();
      let s = await state();
      assert.equal(s.sharedSettings?.[INPUT_PIPELINE], 'sales', 'the default configuration keeps its settings');
      assert.equal(s.workflowSettings?.[WORKFLOW_ID]?.enabled ?? false, false, 'and its toggle');
      let mine = s.allConfigurations.find((c) => c.id === made.id);
      assert.ok(mine, `allConfigurations lacks the new one: ${JSON.stringify(s.allConfigurations)}`);
      assert.equal(mine.sharedSettings?.[INPUT_PIPELINE], 'support');
      assert.equal(mine.workflowSettings?.[WORKFLOW_ID]?.enabled, true);
      // paragon.workflow() in that configuration runs with its settings.
      const runs = stats.pipelines.length;
      const answer = await call('workflow', WORKFLOW_ID, { body: { title: 'Team B task', tags: [] }, ...opts });
      assert.match(String(answer?.acmeId), /^task_/, JSON.stringify(answer));
      assert.deepEqual(stats.pipelines.slice(runs), ['support'], 'the run read the configuration\'s pipeline');
      await call('updateConfiguration', { id: made.id, credentialId, meta: { label: 'Team B' } });
      await reauthenticate();
      mine = (await state()).allConfigurations.find((c) => c.id === made.id);
      assert.deepEqual(mine.configMeta, { label: 'Team B' });
      await call('destroyConfiguration', { id: made.id, credentialId });
      await reauthenticate();
      s = await state();
      assert.deepEqual(s.allConfigurations.map((c) => c.isDefault), [true], 'only the default configuration is left');
    });

    await step('request() through the proxy to the upstream', async () => {
      const before = structuredClone(stats.upstream);
      const me = await call('request', INTEGRATION, '/me', { method: 'GET' });
      assert.deepEqual(me, ACCOUNT);
      const task = await call('request', INTEGRATION, '/tasks?source=e2e', { method: 'POST', body: { title: 'From the SDK' } });
      assert.equal(task.title, 'From the SDK');
      assert.equal(task.owner, ACCOUNT.id);
      assert.deepEqual(task.query, { source: 'e2e' });
      const accepted = (k) => (stats.upstream[k]?.accepted ?? 0) - (before[k]?.accepted ?? 0);
      assert.ok(accepted('GET /v2/me') >= 1 && accepted('POST /v2/tasks') === 1, JSON.stringify(stats.upstream));
    });

    await step('uninstallIntegration', async () => {
      const r = await call('uninstallIntegration', INTEGRATION, {});
      assert.deepEqual(r, { undefined: true });
      const s = await state();
      assert.equal(s.enabled, false);
      assert.deepEqual(s.allCredentials, []);
      await reauthenticate();
      const again = await state();
      assert.equal(again.enabled, false, 'uninstall did not persist');
      assert.deepEqual(again.allCredentials, []);
    });
  } finally {
    await context.close();
  }
});

// ── The Connect Portal in the SDK's iframe (not headless) ───────────────────────────────────────
test('Connect Portal in the SDK iframe: paragon.connect() shows /ui; connect over OAuth, settings, a workflow, close, disconnect', { skip, timeout: 180000 }, async () => {
  if (!haveServer) assert.fail('PARA_E2E_REQUIRE_SERVER=1 but no server configured');
  const server = await waitForServer();
  const { context, log } = await newContext();
  const page = await context.newPage();
  await page.setViewportSize({ width: 1000, height: 800 });
  const { recent, call } = sdkDriver(page, log);
  const state = async () => (await call('getUser')).integrations?.[INTEGRATION];
  const until = async (check, what, ms = 20000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await check()) return;
      if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}${recent()}`);
      await sleep(100);
    }
  };
  const shot = async (name) => {
    if (!env.PARA_SCREENSHOT_DIR) return;
    const file = path.join(env.PARA_SCREENSHOT_DIR, name);
    await page.screenshot({ path: file });
    console.log(`# screenshot ${file}`);
  };
  const iframeDisplay = () => page.evaluate(() => document.querySelector('iframe[src*="/ui"]')?.style.display);
  try {
    await page.goto(`${pageUrl}/`);
    await page.evaluate((b) => window.e2e.configure(b, false), server.baseUrl);
    await call('authenticate', server.projectId, server.userToken);
    if ((await state())?.enabled) await call('uninstallIntegration', INTEGRATION, {}); // start fresh
    await until(async () => (await iframeDisplay()) === 'none', 'the SDK created its hidden iframe');
    const frame = page.frameLocator('iframe[src*="/ui"]');

    // paragon.connect() → UI_UPDATE → the page renders the integration and asks to be shown.
    await page.evaluate((name) => window.e2e.connect(name), INTEGRATION);
    const meta = await call('getIntegrationMetadata', INTEGRATION);
    await frame.locator('#ui-title').waitFor({ timeout: 15000 });
    assert.equal(await frame.locator('#ui-title').textContent(), meta.name);
    await until(async () => (await iframeDisplay()) === 'block', 'the portal asked the SDK to show the iframe');
    assert.match(await frame.locator('#ui-connect').textContent(), /^Connect /);
    await shot('sdk-portal-connect.png');

    // Connect: the click reaches the SDK, which opens the OAuth popup; the iframe shows the result.
    const popup = context.waitForEvent('page', { timeout: 10000 });
    await frame.locator('#ui-connect').click();
    await popup.catch(async (err) => {
      const banner = await frame.locator('.banner').allTextContents().catch(() => []);
      assert.fail(`no OAuth popup after Connect (${err.message.split('\n')[0]}); the portal says: ${JSON.stringify(banner)}${recent()}`);
    });
    await page.waitForFunction(() => window.e2e.connected, null, { timeout: 90000 });
    const connected = await page.evaluate(() => window.e2e.connected);
    assert.ok(connected.ok, `paragon.connect failed: ${connected.error}${recent()}`);
    const s = await state();
    assert.equal(s.enabled, true);
    assert.equal(s.credentialStatus, 'VALID');
    await frame.locator('#ui-disconnect').waitFor({ timeout: 15000 }).catch(async (err) => {
      const shown = await frame.locator('body').innerText().catch((e) => e.message);
      assert.fail(`the portal does not show the connected account (${err.message.split('\n')[0]}); iframe display ${await iframeDisplay()}, it shows: ${JSON.stringify(shown)}${recent()}`);
    });
    await frame.locator('.pill.VALID').waitFor();

    // Settings saved from the form go through updateIntegrationUserSettings.
    await frame.locator(`[id="input-${INPUT_PIPELINE}"]`).selectOption('support');
    await frame.locator(`[id="input-${INPUT_SYNC_LIMIT}"]`).fill('40');
    await frame.locator('#ui-settings button[type=submit]').click();
    await frame.locator('.banner.ok', { hasText: 'Settings saved' }).waitFor({ timeout: 15000 });
    let saved = await state();
    assert.equal(saved.sharedSettings?.[INPUT_PIPELINE], 'support');
    assert.equal(Number(saved.sharedSettings?.[INPUT_SYNC_LIMIT]), 40);
    await call('authenticate', server.projectId, server.userToken); // persisted, not just local
    saved = await state();
    assert.equal(saved.sharedSettings?.[INPUT_PIPELINE], 'support');

    // A workflow toggle: enableWorkflow / disableWorkflow.
    const box = frame.locator(`input[data-workflow="${WORKFLOW_ID}"]`);
    await box.waitFor({ timeout: 15000 });
    const enabledNow = async () => (await state()).workflowSettings?.[WORKFLOW_ID]?.enabled === true;
    const before = await enabledNow();
    await box.click();
    await until(async () => (await enabledNow()) === !before, `the workflow is ${before ? 'disabled' : 'enabled'}`);
    await until(async () => (await box.isChecked()) === !before, 'the toggle shows the new state');
    if (before) {
      await box.click();
      await until(enabledNow, 'the workflow is enabled again');
    }
    await shot('sdk-portal-settings.png');

    // Another ACME account over OAuth from the same page (the popup signs in again); then that
    // account alone is disconnected, and the first one and the settings stay.
    const idsBefore = new Set((await state()).allCredentials.map((c) => c.id));
    await frame.locator('#ui-add-account').click();
    const secondPopup = context.waitForEvent('page', { timeout: 10000 });
    await frame.locator('#ui-connect').click();
    await secondPopup;
    await until(async () => ((await state())?.allCredentials?.length ?? 0) === idsBefore.size + 1, 'a second account is connected over OAuth');
    const added = (await state()).allCredentials.find((c) => !idsBefore.has(c.id));
    assert.equal(added.status, 'VALID');
    await frame.locator(`.ui-account[data-credential="${added.id}"] button`).click();
    await until(async () => (await state())?.allCredentials?.length === idsBefore.size, 'the added account is disconnected');
    await call('authenticate', server.projectId, server.userToken);
    const kept = await state();
    assert.deepEqual(kept.allCredentials.map((c) => c.id), [...idsBefore], 'the first account stays');
    assert.equal(kept.sharedSettings?.[INPUT_PIPELINE], 'support', 'the settings stay');

    // Close: the iframe is hidden again; reopening shows the connected account; Disconnect.
    await frame.locator('.ui-close').click();
    await until(async () => (await iframeDisplay()) === 'none', 'the iframe is hidden after Close');
    await page.evaluate((name) => window.e2e.connect(name), INTEGRATION);
    await frame.locator('#ui-disconnect').waitFor({ timeout: 15000 });
    await until(async () => (await iframeDisplay()) === 'block', 'the portal is shown again');
    await frame.locator('#ui-disconnect').click();
    await until(async () => (await state())?.enabled === false, 'the integration is uninstalled');
    await call('authenticate', server.projectId, server.userToken);
    assert.equal((await state()).enabled, false, 'the uninstall did not persist');

    // An integration connected with values: the form asks for them, then the SDK posts them.
    if (FIELDS_INTEGRATION) {
      const fields = async () => (await call('getUser')).integrations?.[FIELDS_INTEGRATION];
      if ((await fields())?.enabled) await call('uninstallIntegration', FIELDS_INTEGRATION, {});
      await page.evaluate((name) => window.e2e.connect(name), FIELDS_INTEGRATION);
      await frame.locator('[id="pre-username"]').waitFor({ timeout: 15000 });
      await until(async () => (await iframeDisplay()) === 'block', 'the portal is shown for the second integration');
      await frame.locator('#ui-connect').click();
      await frame.locator('.banner.error', { hasText: 'is required' }).waitFor({ timeout: 5000 });
      assert.equal((await fields()).enabled, false, 'nothing is connected without the required values');
      await frame.locator('[id="pre-username"]').fill('ann');
      await frame.locator('[id="pre-password"]').fill('s3cret');
      await frame.locator('#ui-connect').click();
      await frame.locator('#ui-disconnect').waitFor({ timeout: 15000 });
      const connectedWithValues = await fields();
      assert.equal(connectedWithValues.enabled, true);
      assert.equal(connectedWithValues.credentialStatus, 'VALID');
      await page.waitForFunction(() => window.e2e.connected, null, { timeout: 15000 });
      assert.ok((await page.evaluate(() => window.e2e.connected)).ok, 'paragon.connect() settles on the install');

      if (FIELDS_MAPPING_INPUT) {
        // A field mapping: the object (typed: a custom integration has no catalog record
        // types) and each declared field's counterpart, saved as one object.
        const mapping = `input-${FIELDS_MAPPING_INPUT}`;
        await frame.locator(`[id="${mapping}"]`).waitFor({ timeout: 15000 });
        await frame.locator(`[id="${mapping}"]`).fill('Note');
        await frame.locator(`[id="${mapping}-title"]`).fill('Subject');
        await frame.locator(`[id="${mapping}-Body"]`).fill('Content');
        await frame.locator('#ui-settings button[type=submit]').click();
        await frame.locator('.banner.ok', { hasText: 'Settings saved' }).waitFor({ timeout: 15000 });
        await call('authenticate', server.projectId, server.userToken);
        assert.deepEqual((await fields()).sharedSettings?.[FIELDS_MAPPING_INPUT],
          { record_type: 'Note', title: 'Subject', Body: 'Content' }, 'the mapping did not persist');
        await frame.locator(`[id="${mapping}-title"]`).waitFor({ timeout: 15000 });
        assert.equal(await frame.locator(`[id="${mapping}-title"]`).inputValue(), 'Subject', 'the saved mapping is shown');
        await shot('sdk-portal-field-mapping.png');
      }

      if (FIELDS_WORKFLOW && FIELDS_WORKFLOW_INPUT) {
        // Enabling the workflow shows its own settings; a missing required value is refused.
        const wf = async () => (await fields()).workflowSettings?.[FIELDS_WORKFLOW];
        await frame.locator(`input[data-workflow="${FIELDS_WORKFLOW}"]`).click();
        await until(async () => (await wf())?.enabled === true, 'the workflow is enabled');
        const input = frame.locator(`[id="input-${FIELDS_WORKFLOW}-${FIELDS_WORKFLOW_INPUT}"]`);
        await input.waitFor({ timeout: 15000 });
        const save = frame.locator(`[data-workflow-settings="${FIELDS_WORKFLOW}"] button[type=submit]`);
        await save.click();
        await frame.locator('.banner.error').waitFor({ timeout: 15000 });
        assert.equal((await wf())?.settings?.[FIELDS_WORKFLOW_INPUT], undefined, 'nothing saved');
        await input.fill('25');
        await save.click();
        await frame.locator('.banner.ok', { hasText: 'saved' }).waitFor({ timeout: 15000 });
        assert.equal(Number((await wf())?.settings?.[FIELDS_WORKFLOW_INPUT]), 25);
        await call('authenticate', server.projectId, server.userToken);
        assert.equal(Number((await wf())?.settings?.[FIELDS_WORKFLOW_INPUT]), 25, 'the workflow setting did not persist');
        await shot('sdk-portal-workflow-settings.png');
      }

      // A second account, connected from the same page. Each account is disconnected on its
      // own; the settings stay while an account is left.
      await call('authenticate', server.projectId, server.userToken); // the server's state
      const settingsBefore = JSON.stringify((await fields()).workflowSettings);
      await frame.locator('#ui-add-account').click();
      await frame.locator('[id="pre-username"]').fill('bob');
      await frame.locator('[id="pre-password"]').fill('s3cret');
      await frame.locator('#ui-connect').click();
      await frame.locator('.ui-account').nth(1).waitFor({ timeout: 15000 });
      // The page reads the state again (the SDK's authenticate) after adding an account: the
      // SDK's user is briefly without integrations meanwhile.
      await until(async () => (await fields())?.allCredentials?.length === 2, 'two accounts are connected');
      const both = await fields();
      assert.equal(both.allCredentials.length, 2, 'two accounts are connected');
      assert.ok(both.allCredentials.every((c) => c.status === 'VALID'), JSON.stringify(both.allCredentials));
      if (FIELDS_WORKFLOW) {
        // para keeps one set of settings per integration: the page shows them with both accounts.
        const toggle = frame.locator(`input[data-workflow="${FIELDS_WORKFLOW}"]`);
        await until(async () => toggle.isChecked(), 'the enabled workflow is still shown enabled');
      }
      await shot('sdk-portal-accounts.png');
      const firstAccount = connectedWithValues.credentialId;
      await frame.locator(`.ui-account[data-credential="${firstAccount}"] button`).click();
      await until(async () => (await fields())?.allCredentials?.length === 1, 'one account is disconnected');
      await call('authenticate', server.projectId, server.userToken); // read back from the server
      const left = await fields();
      assert.equal(left.allCredentials.length, 1, 'the other account stays');
      assert.notEqual(left.credentialId, firstAccount);
      assert.equal(left.enabled, true);
      assert.equal(JSON.stringify(left.workflowSettings), settingsBefore, 'the settings stay with the account left');
      await frame.locator('#ui-disconnect').waitFor({ timeout: 15000 });
      await frame.locator('#ui-disconnect').click();
      await until(async () => (await fields())?.enabled === false, 'the second integration is uninstalled');
    }
  } finally {
    await context.close();
  }
});

// ── Every public method and event of the SDK (tests/e2e/sdk-methods.mjs) ────────────────────────
// server.json's `everyMethod` says what the project has for it: { users: [{label, token, meta}]
// (fresh users: one whose token carries meta, one whose does not), basicIntegration,
// apiKeyIntegration, listInput, hiddenWorkflowId, eventName, eventPayload }.
const surface = sdkSurface(path.join(path.dirname(SDK_BUNDLE)));
test(`the SDK's public surface is read from its type declarations (${surface.length} names)`, () => {
  assert.ok(surface.length >= 70, surface.join(' '));
  for (const n of ['paragon.authenticate', 'paragon.getTriggers', 'installFlow.setPostOptions', 'event:onWorkflowChange']) {
    assert.ok(surface.includes(n), `${n} missing from ${surface.join(' ')}`);
  }
});

test('every public method and event of the SDK against para serve', { skip, timeout: 600000 }, async (t) => {
  if (!haveServer) assert.fail('PARA_E2E_REQUIRE_SERVER=1 but no server configured');
  const server = await waitForServer();
  const every = server.everyMethod;
  assert.ok(every?.users?.length, 'server.json has no everyMethod.users');
  for (const u of every.users) {
    await t.test(u.label, async (tt) => {
      const { context, log } = await newContext();
      try {
        const page = await context.newPage();
        await page.setViewportSize({ width: 1000, height: 800 });
        const { recent, call } = sdkDriver(page, log);
        const attempt = (fn, ...args) => page.evaluate(([f, a]) => window.e2e.call(f, a), [fn, args]);
        await page.goto(`${pageUrl}/`);
        await page.evaluate((b) => window.e2e.configure(b), server.baseUrl);
        // A code the company's page obtained itself (paragon.completeInstall): no PKCE.
        const authorizationCode = async () => {
          const state = `direct-${b64url(crypto.randomBytes(9))}`;
          const authorize = new URL(info.authorizationEndpoint);
          for (const [k, v] of Object.entries({ response_type: 'code', client_id: CLIENT_ID, redirect_uri: selfCallbackUri, scope: SCOPES, state })) {
            authorize.searchParams.set(k, v);
          }
          const p = await context.newPage();
          try {
            await p.goto(authorize.href);
            await p.waitForURL((x) => x.href.startsWith(selfCallbackUri), { timeout: 15000 });
            const cb = Object.fromEntries(new URL(p.url()).searchParams);
            assert.equal(cb.state, state);
            assert.ok(cb.code, JSON.stringify(cb));
            return cb.code;
          } finally {
            await p.close();
          }
        };
        await everySdkMethod(tt, {
          page, context, call, attempt, recent, surface, sdkVersion: SDK_VERSION,
          server, token: u.token, tokenMeta: u.meta ?? null,
          oauth: {
            integration: INTEGRATION, workflowId: WORKFLOW_ID, pipelineInput: INPUT_PIPELINE,
            limitInput: INPUT_SYNC_LIMIT, hiddenWorkflowId: every.hiddenWorkflowId, account: ACCOUNT,
            authorizationCode, redirectUri: selfCallbackUri,
            preValue: (o) => (o.type === 'NUMBER' ? 7 : o.type === 'SWITCH' ? true : 'us'),
            postValue: (o) => (o.type === 'NUMBER' ? 7 : o.type === 'SWITCH' ? true : 'team-e2e'),
          },
          basic: { integration: every.basicIntegration },
          apiKey: {
            integration: every.apiKeyIntegration, values: API_KEY_VALUES, listInput: every.listInput,
            listValues: AC_LISTS.map((l) => l.id), listSearch: 'news',
          },
          resource: { values: RESOURCE_VALUES },
          eventName: every.eventName, eventPayload: every.eventPayload ?? {},
        });
      } finally {
        await context.close();
      }
    });
  }
});
