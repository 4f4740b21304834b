// Helpers for browser tests against the local test bed (testbed/up).
//
// The test bed's variables come from the environment (`source testbed/.state/env`) or, when
// they are not set, from the env file itself ($TESTBED_STATE_DIR/env, else testbed/.state/env).
// Chromium is Debian's (/usr/bin/chromium, $CHROMIUM), driven by playwright-core: no browser
// download.
import { existsSync, readFileSync } from 'node:fs';
import { X509Certificate, createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));

// Parses `export NAME=value` lines as written by testbed/up (bash printf %q quoting).
function parseEnvFile(path) {
  const out = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2];
    if (v.startsWith("$'") && v.endsWith("'")) {
      v = v.slice(2, -1).replace(/\\(.)/g, '$1');
    } else if (v.startsWith("'") && v.endsWith("'")) {
      v = v.slice(1, -1);
    } else {
      v = v.replace(/\\(.)/g, '$1');
    }
    out[m[1]] = v;
  }
  return out;
}

/** The test bed's environment, or undefined when the test bed has never been brought up. */
export function testbedEnv() {
  if (process.env.TESTBED_STATE && process.env.DEX_ISSUER) return process.env;
  const file = join(process.env.TESTBED_STATE_DIR ?? join(here, '..', '..', 'testbed', '.state'), 'env');
  if (!existsSync(file)) return undefined;
  return { ...parseEnvFile(file), ...process.env };
}

// SHA-256 of each test bed serving certificate's public key (SubjectPublicKeyInfo), for
// Chromium's --ignore-certificate-errors-spki-list: Chromium then accepts exactly these
// certificates (the test bed CA is not in its trust store), and any other certificate error
// still fails the page.
function testbedSpkiHashes(env) {
  const pki = join(env.TESTBED_STATE, 'pki');
  return ['dex', 'keycloak', 'oidc-provider', 'gatehouse-serving', 'kube-apiserver']
    .map((n) => join(pki, `${n}.crt`))
    .filter((f) => existsSync(f))
    .map((f) => {
      const spki = new X509Certificate(readFileSync(f)).publicKey.export({ type: 'spki', format: 'der' });
      return createHash('sha256').update(spki).digest('base64');
    });
}

/** Launches headless Debian Chromium that accepts the test bed's serving certificates. */
export async function launchBrowser(env) {
  return chromium.launch({
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      `--ignore-certificate-errors-spki-list=${testbedSpkiHashes(env).join(',')}`,
    ],
  });
}

/**
 * Routes a loopback redirect URI (nothing listens there) to a small page, and returns a
 * promise of the first callback URL the browser reached.
 */
export async function catchCallback(page, redirectUri) {
  let resolve;
  const reached = new Promise((r) => { resolve = r; });
  await page.route(`${redirectUri}**`, (route) => {
    resolve(new URL(route.request().url()));
    return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>callback</title><p id="callback">callback reached</p>' });
  });
  return reached;
}

/** A PKCE S256 pair. */
export function pkce() {
  const verifier = createHash('sha256').update(String(Math.random()) + Date.now()).digest('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}
