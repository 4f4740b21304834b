// End-to-end tests of gatehouse's browser sign-in and web UI in real headless Chromium, against
// the test bed's real identity providers (Dex, Keycloak, node oidc-provider).
//
// Every IdP registers gatehouse's web client with https://127.0.0.1:8443/auth/callback, so the
// tests in this file run one after another and start the gatehouse binary on port 8443 with a
// configuration per scenario. Screenshots of every page go to docs/screenshots/ and are shown in
// docs/browser-sign-in.md.
// Run: testbed/up && cargo build -p gatehouse && node --test tests/browser/
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { launchBrowser, testbedEnv } from './testbed.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const env = testbedEnv();
assert.ok(env, 'the test bed is not up: run testbed/up first');
const BASE = 'https://127.0.0.1:8443';
// With secure cookies the session cookie carries the __Host- prefix (Path=/, no Domain).
const SESSION_COOKIE = '__Host-gatehouse_session';
const binary = join(root, 'target', 'debug', 'gatehouse');
assert.ok(existsSync(binary), `build gatehouse first (cargo build -p gatehouse): ${binary} is missing`);
const shots = join(root, 'docs', 'screenshots');
mkdirSync(shots, { recursive: true });

function get(url) {
  return new Promise((resolve) => {
    const req = request(url, { ca: readFileSync(env.TESTBED_CA_FILE), timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => { req.destroy(); resolve(0); });
    req.end();
  });
}

let current;

/** Starts gatehouse on 8443 with the given IdP settings (stopping the one before); resolves
 * when /readyz answers 200. */
async function startGatehouse(oidc) {
  await stopGatehouse(current);
  for (let i = 0; i < 50 && (await get(`${BASE}/healthz`)) !== 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(await get(`${BASE}/healthz`), 0, 'port 8443 is busy: stop whatever gatehouse runs there');
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-browser-'));
  const lines = [
    'listen: 127.0.0.1:8443',
    `publicUrl: ${BASE}`,
    `tls: { certFile: "${env.GATEHOUSE_TLS_CERT}", keyFile: "${env.GATEHOUSE_TLS_KEY}" }`,
    `kubernetes: { kubeconfig: "${env.GATEHOUSE_KUBECONFIG}" }`,
    'oidc:',
    `  issuerUrl: "${oidc.issuer}"`,
    `  clientId: "${oidc.clientId}"`,
    `  clientSecret: "${oidc.clientSecret}"`,
    `  caFile: "${env.TESTBED_CA_FILE}"`,
    `  additionalScopes: ${JSON.stringify(oidc.scopes ?? ['groups'])}`,
    `  additionalParameters: ${JSON.stringify(oidc.params ?? {})}`,
    `  userParameters: ${JSON.stringify(oidc.userParams ?? {})}`,
    // The fixture teams' namespaces are mappable (no namespace is until listed).
    'serviceAccounts: { namespaces: [team-a, team-b] }',
    `session: { key: "${randomBytes(32).toString('hex')}" }`,
    'admin:',
    '  enabled: true',
    `  passwordHash: '${env.GATEHOUSE_ADMIN_PASSWORD_HASH}'`,
    `  tokenSigningKey: '${env.GATEHOUSE_ADMIN_SIGNING_KEY}'`,
  ];
  const config = join(dir, 'config.yaml');
  writeFileSync(config, lines.join('\n') + '\n');
  const child = spawn(binary, ['serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) throw new Error(`gatehouse exited: ${log}`);
    if ((await get(`${BASE}/readyz`)) === 200) {
      current = { child, log: () => log };
      return current;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill();
  throw new Error(`gatehouse did not become ready: ${log}`);
}

// Every gatehouse log is kept in target/e2e-logs/, where scripts/leak-scan (the last tier of
// scripts/test) searches them for secrets, JWTs and bearer credentials.
const keptLogs = join(root, 'target', 'e2e-logs');
let kept = 0;

async function stopGatehouse(gh) {
  if (!gh || gh.kept) return;
  gh.kept = true;
  if (gh.child.exitCode === null) {
    const exited = new Promise((r) => gh.child.once('exit', r));
    gh.child.kill('SIGTERM');
    await exited;
  }
  mkdirSync(keptLogs, { recursive: true });
  writeFileSync(join(keptLogs, `browser-${process.pid}-${kept++}.log`), gh.log());
}

/** A fresh browser context whose main-frame page loads are recorded. */
async function open(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  const visited = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) visited.push(f.url()); });
  return { context, page, visited };
}

const dex = () => ({ issuer: env.DEX_ISSUER, clientId: env.DEX_WEB_CLIENT_ID, clientSecret: env.DEX_WEB_CLIENT_SECRET, scopes: ['groups', 'offline_access'] });
const keycloak = () => ({ issuer: env.KEYCLOAK_ISSUER, clientId: env.KEYCLOAK_WEB_CLIENT_ID, clientSecret: env.KEYCLOAK_WEB_CLIENT_SECRET, scopes: ['groups'] });
const node = () => ({ issuer: env.NODE_OIDC_ISSUER, clientId: env.NODE_OIDC_WEB_CLIENT_ID, clientSecret: env.NODE_OIDC_WEB_CLIENT_SECRET, scopes: ['groups'] });

async function dexPasswordLogin(page, user) {
  await page.locator('#login').fill(env[`${user}_EMAIL`]);
  await page.locator('#password').fill(env[`${user}_PASSWORD`]);
  await page.locator('#submit-login').click();
}

describe('gatehouse in Chromium', () => {
  let browser;
  let gh;
  before(async () => { browser = await launchBrowser(env); });
  after(async () => { await stopGatehouse(current); await browser?.close(); });

  test('Dex with connector_id: no chooser; every UI page renders for alice', async () => {
    gh = await startGatehouse({ ...dex(), params: { connector_id: 'local' } });
    const { context, page, visited } = await open(browser);
    await page.goto(`${BASE}/`);
    assert.equal(await page.title(), 'Sign in · gatehouse');
    await page.screenshot({ path: join(shots, 'signin.png'), fullPage: true });
    await page.getByRole('link', { name: /Sign in with/ }).click();
    await page.waitForURL(/\/dex\/auth\/local\/login/);
    assert.ok(!visited.some((u) => new URL(u).pathname === '/dex/auth'), `the chooser must not appear: ${visited.join(' ')}`);
    await dexPasswordLogin(page, 'ALICE');
    await page.waitForURL(`${BASE}/ui/whoami`);
    assert.ok(!page.url().includes('code='), 'the code is gone from the address bar');
    assert.equal(await page.locator('#username').innerText(), 'alice@example.com');
    assert.match(await page.locator('#service-accounts').innerText(), /team-a\/dev/);
    assert.match(await page.locator('#kubernetes-user').innerText(), /system:serviceaccount:team-a:dev/);
    await page.screenshot({ path: join(shots, 'whoami.png'), fullPage: true });
    // Readable on a phone: nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways on a phone by ${overflow}px`);
    await page.screenshot({ path: join(shots, 'whoami-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1100, height: 800 });
    // Keyboard: the first Tab reaches the skip link, which leads to the content.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');

    await page.getByRole('link', { name: 'What can I do' }).click();
    await page.getByLabel('Namespace').fill('team-a');
    await page.getByRole('button', { name: 'Show' }).click();
    const rules = await page.locator('#rules').innerText();
    assert.match(rules, /configmaps/);
    assert.match(rules, /watch/);
    await page.screenshot({ path: join(shots, 'access.png'), fullPage: true });

    await page.getByRole('link', { name: 'CLI and kubeconfig' }).click();
    assert.match(await page.locator('main').innerText(), /gatehouse login --sso https:\/\/127\.0\.0\.1:8443/);
    await page.screenshot({ path: join(shots, 'cli.png'), fullPage: true });
    const download = page.waitForEvent('download');
    await page.getByRole('link', { name: 'Download a kubeconfig' }).click();
    const file = await (await download).path();
    assert.match(readFileSync(file, 'utf8'), /command: gatehouse/);

    // The session cookie is HttpOnly and Secure: no script could read it.
    const cookie = (await context.cookies(BASE)).find((c) => c.name === SESSION_COOKIE);
    assert.ok(cookie && cookie.httpOnly && cookie.secure && cookie.sameSite === 'Lax');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${BASE}/?signed_out=1`);
    assert.match(await page.locator('main').innerText(), /You are signed out/);
    assert.ok(!(await context.cookies(BASE)).some((c) => c.name === SESSION_COOKIE));

    await page.goto(`${BASE}/auth/login?return_to=%2F%2Fevil.example`);
    assert.match(await page.locator('#error-message').innerText(), /must be a path on this gatehouse/);
    await page.screenshot({ path: join(shots, 'error.png'), fullPage: true });
    await context.close();
  });

  test('admin signs in with the password form', async () => {
    const { context, page } = await open(browser);
    await page.goto(`${BASE}/`);
    await page.getByLabel('Admin password').fill(env.GATEHOUSE_ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in as admin' }).click();
    await page.waitForURL(`${BASE}/ui/whoami`);
    assert.match(await page.locator('#authenticated-by').innerText(), /admin account/);
    assert.match(await page.locator('#kubernetes-user').innerText(), /gatehouse:admin/);
    await page.screenshot({ path: join(shots, 'whoami-admin.png'), fullPage: true });
    await context.close();
    await stopGatehouse(gh);
  });

  test('Dex without connector_id: the chooser appears', async () => {
    gh = await startGatehouse(dex());
    const { context, page, visited } = await open(browser);
    await page.goto(`${BASE}/auth/login`);
    await page.waitForURL((u) => u.pathname === '/dex/auth');
    assert.ok(visited.some((u) => new URL(u).pathname === '/dex/auth'));
    await page.locator('a[href*="/auth/local"], a[href*="connector_id=local"]').first().click();
    await dexPasswordLogin(page, 'BOB');
    await page.waitForURL(`${BASE}/ui/whoami`);
    assert.equal(await page.locator('#username').innerText(), 'bob@example.com');
    assert.match(await page.locator('#kubernetes-user').innerText(), /fall-through/);
    await context.close();
    await stopGatehouse(gh);
  });

  test('Keycloak: login_hint pre-fills the username; kc_idp_hint goes to the upstream realm', async () => {
    gh = await startGatehouse({ ...keycloak(), userParams: { login_hint: { pattern: '[a-z]+@example\\.com' }, kc_idp_hint: {} } });
    const { context, page } = await open(browser);
    await page.goto(`${BASE}/`);
    await page.getByLabel('login_hint').fill('alice@example.com');
    await page.getByRole('button', { name: 'Sign in with these options' }).click();
    await page.locator('#kc-login').waitFor().catch(async (e) => {
      throw new Error(`no Keycloak login form at ${page.url()}: ${(await page.locator('body').innerText()).slice(0, 300)} (${e.message})`);
    });
    assert.equal(await page.locator('#username').inputValue(), 'alice@example.com', 'login_hint pre-filled the username');
    await page.locator('#password').fill(env.ALICE_PASSWORD);
    await page.locator('#kc-login').click();
    await page.waitForURL(`${BASE}/ui/whoami`);
    assert.equal(await page.locator('#username').innerText(), 'alice@example.com');
    assert.match(await page.locator('#service-accounts').innerText(), /team-a\/dev/);
    await context.close();

    const second = await open(browser);
    await second.page.goto(`${BASE}/auth/login?kc_idp_hint=upstream`);
    await second.page.waitForURL(/\/realms\/upstream\//);
    assert.ok(!second.visited.some((u) => /\/realms\/gatehouse\/.*login-actions\/authenticate/.test(u) && !u.includes('upstream')), 'no gatehouse-realm login form');
    await second.page.locator('#username').fill(env.DAVE_EMAIL);
    await second.page.locator('#password').fill(env.DAVE_PASSWORD);
    await second.page.locator('#kc-login').click();
    await second.page.waitForURL(`${BASE}/ui/whoami`, { timeout: 20000 });
    assert.equal(await second.page.locator('#username').innerText(), env.DAVE_EMAIL);
    await second.context.close();
    await stopGatehouse(gh);
  });

  test('Keycloak: static prompt=login forces a fresh sign-in while the IdP session lives', async () => {
    // Without prompt=login, a live Keycloak session signs the user in without a form.
    gh = await startGatehouse(keycloak());
    const { context, page } = await open(browser);
    await page.goto(`${BASE}/auth/login`);
    await page.locator('#username').fill(env.ALICE_EMAIL);
    await page.locator('#password').fill(env.ALICE_PASSWORD);
    await page.locator('#kc-login').click();
    await page.waitForURL(`${BASE}/ui/whoami`);
    await context.clearCookies({ name: SESSION_COOKIE });
    await page.goto(`${BASE}/auth/login`);
    await page.waitForURL(`${BASE}/ui/whoami`);
    assert.equal(await page.locator('#kc-login').count(), 0);
    await stopGatehouse(gh);

    // With prompt=login configured, the same live IdP session gets the form again.
    gh = await startGatehouse({ ...keycloak(), params: { prompt: 'login' } });
    await context.clearCookies({ name: SESSION_COOKIE });
    await page.goto(`${BASE}/auth/login`);
    await page.locator('#kc-login').waitFor();
    assert.ok(await page.locator('#password').isVisible(), 'the password is asked again');
    await page.locator('#password').fill(env.ALICE_PASSWORD);
    // Keycloak re-authenticates the known user: the username may be shown, not asked.
    if ((await page.locator('#username').count()) > 0) await page.locator('#username').fill(env.ALICE_EMAIL);
    await page.locator('#kc-login').click();
    await page.waitForURL(`${BASE}/ui/whoami`);
    await context.close();
    await stopGatehouse(gh);
  });

  test('Keycloak: sign-out ends the Keycloak session too (RP-initiated logout)', async () => {
    gh = await startGatehouse(keycloak());
    const { context, page } = await open(browser);
    const requested = [];
    page.on('request', (r) => requested.push(r.url()));
    await page.goto(`${BASE}/auth/login`);
    await page.locator('#username').fill(env.ALICE_EMAIL);
    await page.locator('#password').fill(env.ALICE_PASSWORD);
    await page.locator('#kc-login').click();
    await page.waitForURL(`${BASE}/ui/whoami`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${BASE}/?signed_out=1`);
    const endSession = requested.find((u) => u.startsWith(`${env.KEYCLOAK_ISSUER}/protocol/openid-connect/logout`));
    assert.ok(endSession, `the browser went to Keycloak's end-session endpoint: ${requested.join(' ')}`);
    assert.ok(new URL(endSession).searchParams.get('id_token_hint'), 'with id_token_hint');
    assert.ok(!(await context.cookies(BASE)).some((c) => c.name === SESSION_COOKIE));
    // The Keycloak session is gone as well: signing in again asks for the password.
    await page.goto(`${BASE}/auth/login`);
    await page.locator('#kc-login').waitFor();
    assert.ok(await page.locator('#password').isVisible());
    await context.close();
    await stopGatehouse(gh);
  });

  test('node oidc-provider: a custom static parameter reaches the IdP', async () => {
    const marker = `gatehouse-${randomBytes(6).toString('hex')}`;
    gh = await startGatehouse({ ...node(), params: { custom_param: marker } });
    const { context, page } = await open(browser);
    await page.goto(`${BASE}/auth/login`);
    await page.locator('#login').fill(env.ALICE_EMAIL);
    await page.locator('#password').fill(env.ALICE_PASSWORD);
    await page.locator('#submit').click();
    await page.waitForURL(`${BASE}/ui/whoami`);
    assert.equal(await page.locator('#username').innerText(), 'alice@example.com');
    const recorded = readFileSync(env.NODE_OIDC_AUTH_LOG, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const ours = recorded.filter((r) => JSON.stringify(r).includes(marker));
    assert.ok(ours.length >= 1, 'the IdP recorded the custom parameter');
    assert.equal((ours[0].params ?? ours[0]).custom_param, marker);
    await context.close();
    await stopGatehouse(gh);
  });
});
