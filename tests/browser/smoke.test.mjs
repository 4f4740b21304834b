// Smoke test of the browser test set-up: headless Debian Chromium (playwright-core) reaches each
// identity provider of the test bed over HTTPS and signs in through its login page.
// Run: testbed/up && node --test tests/browser/
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { catchCallback, launchBrowser, pkce, testbedEnv } from './testbed.mjs';

const env = testbedEnv();
const skip = env ? false : 'test bed not up (run testbed/up)';

function authUrl(issuerAuthEndpoint, params) {
  const u = new URL(issuerAuthEndpoint);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

describe('test bed identity providers in Chromium', { skip }, () => {
  let browser;
  let context;
  before(async () => {
    browser = await launchBrowser(env);
  });
  after(async () => {
    await browser?.close();
  });

  async function newPage() {
    context = await browser.newContext();
    return context.newPage();
  }

  test('Dex shows its connector chooser without connector_id, the password form with connector_id=local', async () => {
    const page = await newPage();
    const redirectUri = 'http://127.0.0.1:45901/callback';
    const callback = catchCallback(page, redirectUri);
    const base = { client_id: env.DEX_CLI_CLIENT_ID, redirect_uri: redirectUri, response_type: 'code', scope: 'openid email groups', state: 'smoke' };

    await page.goto(authUrl(`${env.DEX_ISSUER}/auth`, base));
    // Chooser: one link per connector.
    assert.ok(await page.locator('a[href*="connector_id=local"], a[href*="/auth/local"]').count() >= 1, 'chooser lists the local connector');
    assert.ok(await page.locator('a[href*="connector_id=mock"], a[href*="/auth/mock"]').count() >= 1, 'chooser lists the mock connector');
    assert.equal(await page.locator('input[name="password"]').count(), 0);

    await page.goto(authUrl(`${env.DEX_ISSUER}/auth`, { ...base, connector_id: 'local' }));
    await page.locator('#login').fill(env.ALICE_EMAIL);
    await page.locator('#password').fill(env.ALICE_PASSWORD);
    await page.locator('#submit-login').click();
    const cb = await callback;
    assert.equal(cb.searchParams.get('state'), 'smoke');
    assert.ok(cb.searchParams.get('code'), 'Dex redirected back with a code');
    await context.close();
  });

  test('Keycloak: login_hint pre-fills the username, and alice signs in', { skip: env?.TESTBED_WITH_KEYCLOAK === '1' ? false : 'Keycloak not in this test bed' }, async () => {
    const page = await newPage();
    const redirectUri = 'http://127.0.0.1:45902/callback';
    const callback = catchCallback(page, redirectUri);
    const { challenge } = pkce();
    await page.goto(authUrl(`${env.KEYCLOAK_ISSUER}/protocol/openid-connect/auth`, {
      client_id: env.KEYCLOAK_CLI_CLIENT_ID, redirect_uri: redirectUri, response_type: 'code',
      scope: 'openid email groups', state: 'smoke', code_challenge: challenge, code_challenge_method: 'S256',
      login_hint: env.ALICE_EMAIL,
    }));
    assert.equal(await page.locator('#username').inputValue(), env.ALICE_EMAIL);
    assert.ok(await page.locator('#social-upstream').count(), 'the upstream identity provider is offered');
    await page.locator('#password').fill(env.ALICE_PASSWORD);
    await page.locator('#kc-login').click();
    const cb = await callback;
    assert.equal(cb.searchParams.get('state'), 'smoke');
    assert.ok(cb.searchParams.get('code'));
    await context.close();
  });

  test('Keycloak: kc_idp_hint=upstream goes straight to the upstream realm, dave signs in there', { skip: env?.TESTBED_WITH_KEYCLOAK === '1' ? false : 'Keycloak not in this test bed' }, async () => {
    const page = await newPage();
    const redirectUri = 'http://127.0.0.1:45903/callback';
    const callback = catchCallback(page, redirectUri);
    const { challenge } = pkce();
    await page.goto(authUrl(`${env.KEYCLOAK_ISSUER}/protocol/openid-connect/auth`, {
      client_id: env.KEYCLOAK_CLI_CLIENT_ID, redirect_uri: redirectUri, response_type: 'code',
      scope: 'openid email', state: 'smoke', code_challenge: challenge, code_challenge_method: 'S256',
      kc_idp_hint: 'upstream',
    }));
    assert.match(page.url(), /\/realms\/upstream\/protocol\/openid-connect\/auth/);
    await page.locator('#username').fill(env.DAVE_EMAIL);
    await page.locator('#password').fill(env.DAVE_PASSWORD);
    await page.locator('#kc-login').click();
    const cb = await callback;
    assert.equal(cb.searchParams.get('state'), 'smoke');
    assert.ok(cb.searchParams.get('code'));
    await context.close();
  });

  test('node oidc-provider: login page, and the custom parameter is recorded', async () => {
    const page = await newPage();
    const redirectUri = 'http://127.0.0.1:45904/callback';
    const callback = catchCallback(page, redirectUri);
    const { challenge } = pkce();
    const marker = `smoke-${Date.now()}`;
    await page.goto(authUrl(`${env.NODE_OIDC_ISSUER}/auth`, {
      client_id: env.NODE_OIDC_CLI_CLIENT_ID, redirect_uri: redirectUri, response_type: 'code',
      scope: 'openid email groups', state: 'smoke', code_challenge: challenge, code_challenge_method: 'S256',
      custom_param: marker, login_hint: env.BOB_EMAIL,
    }));
    assert.equal(await page.locator('#login').inputValue(), env.BOB_EMAIL);
    await page.locator('#password').fill(env.BOB_PASSWORD);
    await page.locator('#submit').click();
    const cb = await callback;
    assert.equal(cb.searchParams.get('state'), 'smoke');
    assert.ok(cb.searchParams.get('code'));
    const recorded = readFileSync(env.NODE_OIDC_AUTH_LOG, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(recorded.some((r) => r.params.custom_param === marker), 'custom_param reached the IdP');
    await context.close();
  });
});
