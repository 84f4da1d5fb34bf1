// Browser test of the Connect Portal pages served by `para serve`, in Debian Chromium via
// playwright-core, with screenshots.
//
//   PARA_PORTAL_URL=http://127.0.0.1:7433/projects/<id>/portal?token=<user token> \
//   PARA_SCREENSHOT_DIR=docs/screenshots node tests/e2e/portal.test.mjs
//
// What it expects of the server: the taskflow example (examples/taskflow), the
// token's user already holding a credential for PARA_PORTAL_INTEGRATION (default
// custom.acmecrm: settings can only be saved once connected) and none for
// PARA_PORTAL_CONNECT_INTEGRATION (default slack). crates/para-cli/tests/it/portal_browser.rs
// sets that up and runs this file.
//
// It opens the list (the token must leave the address), the page of an integration not yet
// connected (the connect flow starts there), the settings form of the connected one, submits
// invalid values (a required dropdown left empty, text in a number field) and expects the
// form back with inline errors and status 422, then saves valid values and turns a workflow
// on, and loads the portal in an iframe of another origin; if the user also connected PARA_PORTAL_MAPPING_INTEGRATION (default salesforce), it
// fills in its field mapping. Screenshots: portal-list.png, portal-connect.png,
// portal-settings.png, portal-validation-error.png (and portal-field-mapping.png) in
// PARA_SCREENSHOT_DIR (default: a temporary folder).
//
// Without PARA_PORTAL_URL the test is skipped. PARA_E2E_CHROMIUM overrides /usr/bin/chromium;
// PARA_E2E_HEADFUL=1 shows the browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

const env = process.env;
const PORTAL_URL = env.PARA_PORTAL_URL;
const SHOTS = path.resolve(env.PARA_SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'para-portal-')));
const CONNECTED = env.PARA_PORTAL_INTEGRATION || 'custom.acmecrm';
const UNCONNECTED = env.PARA_PORTAL_CONNECT_INTEGRATION || 'slack';
const MAPPING = env.PARA_PORTAL_MAPPING_INTEGRATION || 'salesforce';
const CHROMIUM = env.PARA_E2E_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
];

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot ${file}`);
}

/** Runs `action` (a click that submits a form) and returns the response of the POST. */
async function submit(page, action) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && r.request().isNavigationRequest()),
    action(),
  ]);
  await page.waitForLoadState('domcontentloaded');
  return response;
}

test('Connect Portal pages in Chromium', { skip: !PORTAL_URL && 'PARA_PORTAL_URL is not set' }, async () => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: env.PARA_E2E_HEADFUL !== '1',
    args: env.PARA_E2E_HEADFUL === '1' ? CHROMIUM_ARGS.filter((a) => a !== '--headless') : CHROMIUM_ARGS,
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1120, height: 820 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    // Console errors (a CSP violation is one), except the "failed to load" lines Chromium
    // logs for non-2xx documents; those are checked below, by response.
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(m.text());
    });
    page.on('response', (r) => {
      const expected = r.status() === 422 && r.request().method() === 'POST';
      if (r.status() >= 400 && !expected && !r.url().endsWith('/favicon.ico')) {
        pageErrors.push(`${r.request().method()} ${r.url()} answered ${r.status()}`);
      }
    });

    // 1. The list. The token is traded for a cookie and leaves the address.
    const listResponse = await page.goto(PORTAL_URL);
    assert.equal(listResponse.status(), 200, `the portal list answered ${listResponse.status()}`);
    assert.ok(!page.url().includes('token='), `the token stayed in the address: ${page.url()}`);
    const headers = listResponse.headers();
    assert.match(headers['content-security-policy'] || '', /frame-ancestors \*/);
    assert.equal(headers['x-frame-options'], undefined, 'the portal must be embeddable');
    await page.getByRole('heading', { name: 'Integrations', level: 1 }).waitFor();
    const listUrl = page.url();
    const tiles = page.locator('a.tile');
    assert.ok((await tiles.count()) >= 2, 'the list shows the integrations');
    await shot(page, 'portal-list.png');

    // 2. The connect flow starts on the page of an integration not connected yet.
    await page.locator(`a.tile[href$="/${UNCONNECTED}"]`).click();
    await page.waitForURL(`**/${UNCONNECTED}`);
    const connectButton = page.locator('#connection button[type=submit]');
    assert.match(await connectButton.innerText(), /^Connect /);
    assert.ok(await page.locator('#settings fieldset[disabled]').count(), 'settings wait for a connection');
    await shot(page, 'portal-connect.png');

    // 3. The settings form of the connected integration.
    await page.goto(listUrl);
    await page.locator(`a.tile[href$="/${CONNECTED}"]`).click();
    await page.waitForURL(`**/${CONNECTED}`);
    assert.equal(await page.locator('#settings fieldset[disabled]').count(), 0,
      `${CONNECTED} must be connected for this test (see the header of this file)`);
    assert.ok(await page.getByRole('button', { name: 'Disconnect' }).isVisible());
    const overview = page.locator('section.overview');
    if (await overview.count()) {
      assert.equal(await overview.locator('script, [onerror], a[href^="javascript:"]').count(), 0);
    }
    await shot(page, 'portal-settings.png');

    // 4. Invalid values come back inline with 422, as typed.
    const settings = page.locator('#settings form');
    const select = settings.locator('select').first();
    const number = settings.locator('input[inputmode=decimal]').first();
    assert.ok(await select.count(), 'the settings form has a dropdown');
    assert.ok(await number.count(), 'the settings form has a number field');
    await select.selectOption('');
    await number.fill('lots');
    const refused = await submit(page, () => settings.getByRole('button', { name: 'Save settings' }).click());
    assert.equal(refused.status(), 422, 'invalid settings answer 422');
    const errors = page.locator('#settings .error-text');
    assert.ok((await errors.count()) >= 2, 'one message per invalid field');
    assert.match(await errors.allInnerTexts().then((t) => t.join('\n')), /is required: choose one of the options/);
    assert.match(await errors.allInnerTexts().then((t) => t.join('\n')), /must be a number/);
    assert.equal(await page.locator('#settings input[inputmode=decimal]').first().inputValue(), 'lots',
      'what the user typed is kept');
    await page.locator('.banner.error').waitFor();
    await shot(page, 'portal-validation-error.png');

    // 5. Valid values are saved (post/redirect/get) and shown back.
    const options = await page.locator('#settings select').first().locator('option').evaluateAll(
      (os) => os.map((o) => o.value).filter(Boolean));
    await page.locator('#settings select').first().selectOption(options[0]);
    await page.locator('#settings input[inputmode=decimal]').first().fill('25');
    const saved = await submit(page, () => page.getByRole('button', { name: 'Save settings' }).click());
    assert.equal(saved.status(), 303);
    await page.getByText('Settings saved.').waitFor();
    assert.equal(await page.locator('#settings select').first().inputValue(), options[0]);
    assert.equal(await page.locator('#settings input[inputmode=decimal]').first().inputValue(), '25');

    // 6. A workflow is turned on.
    const workflow = page.locator('form.workflow').first();
    if (await workflow.count()) {
      const toggle = workflow.locator('input[name=enabled]');
      const wasOn = await toggle.isChecked();
      await workflow.locator('header .switch-row').click();
      const toggled = await submit(page, () => page.locator('form.workflow').first().getByRole('button', { name: 'Save workflow' }).click());
      assert.equal(toggled.status(), 303);
      await page.getByText('Workflow saved.').waitFor();
      assert.equal(await page.locator('form.workflow').first().locator('input[name=enabled]').isChecked(), !wasOn);
    }

    // 7. The field-mapping editor, when the user connected an integration that has one.
    await page.goto(listUrl);
    const mappingTile = page.locator(`a.tile[href$="/${MAPPING}"]`);
    if (await mappingTile.count()) {
      await mappingTile.click();
      await page.waitForURL(`**/${MAPPING}`);
      const mapping = page.locator('#settings fieldset:not([disabled]) fieldset.mapping');
      if (await mapping.count()) {
        await mapping.locator('select').selectOption('Task');
        await mapping.locator('input[name$=".value"]').first().fill('Subject');
        await mapping.locator('input[name$=".value"]').nth(1).fill('ActivityDate');
        const mapped = await submit(page, () => page.getByRole('button', { name: 'Save settings' }).click());
        assert.equal(mapped.status(), 303);
        await page.getByText('Settings saved.').waitFor();
        assert.equal(await page.locator('fieldset.mapping select').inputValue(), 'Task');
        await shot(page, 'portal-field-mapping.png');
      }
    }

    // 8. Embedded in another page (another origin of the same site: a Lax cookie is sent).
    const host = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>Host app</title><h1>Host app</h1>
        <iframe id="portal" src="${PORTAL_URL.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}"
          style="width:1000px;height:600px;border:1px solid #ccc"></iframe>`);
    });
    await new Promise((resolve) => host.listen(0, '127.0.0.1', resolve));
    try {
      const embedding = await context.newPage();
      await embedding.goto(`http://127.0.0.1:${host.address().port}/`);
      const frame = embedding.frameLocator('#portal');
      await frame.getByRole('heading', { name: 'Integrations', level: 1 }).waitFor({ timeout: 15000 });
      assert.ok((await frame.locator('a.tile').count()) >= 2, 'the embedded portal lists the integrations');
      await embedding.close();
    } finally {
      host.close();
    }

    assert.deepEqual(pageErrors, [], 'no errors in the page (CSP violations show up here)');
    await context.close();
  } finally {
    await browser.close();
  }
});
