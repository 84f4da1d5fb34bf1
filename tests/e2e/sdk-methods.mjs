// Every public method and event of the `@useparagon/connect` SDK, called in Chromium against
// `para serve` (issue 19). The list of what must be called is read from the package's own type
// declarations, not written here: a method the SDK has and this file does not call (or list in
// NOT_CALLED with the reason) fails the test, and so does a name here the SDK no longer has.
//
// connect.test.mjs runs `everySdkMethod` once per user token the driver hands it (one whose
// token carries `meta`, one whose token does not), each for a fresh user.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

// ── What the SDK declares ───────────────────────────────────────────────────────────────────────

/** The public methods a class declares in a `.d.ts` (neither private, protected, static nor the constructor). */
function declaredMethods(file, cls) {
  const text = fs.readFileSync(file, 'utf8');
  const start = text.search(new RegExp(`class ${cls}\\b`));
  assert.ok(start >= 0, `${file} declares no class ${cls}`);
  const body = text.slice(start, text.indexOf('\n}', start));
  const names = new Set();
  for (const m of body.matchAll(/^ {4}(?!private |protected |static |constructor)([A-Za-z_$][\w$]*)\s*[<(]/gm)) names.add(m[1]);
  return [...names];
}

/**
 * The SDK's public surface, from its `.d.ts` files in `distSrc` (`dist/src` of the package):
 * `paragon.<m>` for ConnectSDK's methods and those it inherits from SDKEventEmitter,
 * `installFlow.<m>` for InstallFlow's, `event:<name>` for each SDK_EVENT value.
 */
export function sdkSurface(distSrc) {
  const sdk = declaredMethods(path.join(distSrc, 'ConnectSDK.d.ts'), 'ConnectSDK');
  const emitter = declaredMethods(path.join(distSrc, 'SDKEventEmitter.d.ts'), 'SDKEventEmitter');
  const flow = declaredMethods(path.join(distSrc, 'ConnectSDK.d.ts'), 'InstallFlow');
  const types = fs.readFileSync(path.join(distSrc, 'types/sdk.d.ts'), 'utf8');
  const at = types.indexOf('enum SDK_EVENT');
  assert.ok(at >= 0, 'types/sdk.d.ts declares no SDK_EVENT');
  const events = [...types.slice(at, types.indexOf('}', at)).matchAll(/= "(\w+)"/g)].map((m) => m[1]);
  return [
    ...new Set([...sdk, ...emitter].map((m) => `paragon.${m}`)),
    ...flow.map((m) => `installFlow.${m}`),
    ...events.map((e) => `event:${e}`),
  ];
}

/** Names of the surface that are not called, each with the reason (none today). */
export const NOT_CALLED = {};

// ── The calls ───────────────────────────────────────────────────────────────────────────────────

/**
 * Calls every method of the surface for one user, as subtests of `t`, and checks at the end that
 * each name of the surface was called (or is in NOT_CALLED). `ctx`:
 * - `page`, `context`: a fresh Playwright page (the harness's PAGE loaded) and its context;
 * - `call(fn, ...args)` / `attempt(fn, ...args)`: `paragon[fn](...args)` in the page, asserted to
 *   succeed / returning `{ok, value | error}`; `recent()`: the end of the browser log;
 * - `server` ({baseUrl, projectId}), `token` and `tokenMeta` (the token's `meta` claim or null);
 * - `surface`: from sdkSurface; `sdkVersion`;
 * - `oauth`: { integration, workflowId, pipelineInput, limitInput, account, authorizationCode(): a
 *   fresh code for redirectUri, redirectUri } (custom.acmecrm over the harness's OAuth server);
 * - `basic`: { integration } (a custom integration connected with username and password);
 * - `apiKey`: { integration, values, listInput } (a catalog API-key integration whose API is the
 *   harness's upstream, with a setting whose choices the API lists);
 * - `resource`: { values } (what connecting the project's API resource takes);
 * - `upstreamStats()`: the harness's counters.
 */
export async function everySdkMethod(t, ctx) {
  const { page, context, call, attempt, recent, server } = ctx;
  const called = new Set();
  const touch = (...names) => names.forEach((n) => called.add(n));
  let failed = null;
  // Steps build on each other: after a failure the rest are skipped (PARA_E2E_KEEP_GOING=1 runs
  // them anyway, to see every failure at once while fixing the server).
  const keepGoing = process.env.PARA_E2E_KEEP_GOING === '1';
  const step = (name, names, fn) => (failed && !keepGoing
    ? t.test(name, { skip: `needs "${failed}"` })
    : t.test(name, async () => {
      try {
        await fn();
        touch(...names);
      } catch (err) {
        failed = name;
        throw err;
      }
    }));
  const user = () => call('getUser');
  const integrationState = async (type) => (await user()).integrations?.[type];
  const until = async (check, what, ms = 20000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await check()) return;
      if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}${recent()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const events = () => page.evaluate(() => window.e2e.events);
  const clearEvents = () => page.evaluate(() => { window.e2e.events.length = 0; window.e2e.callbacks.length = 0; });
  const eventsOf = async (type) => (await events()).filter((e) => e.type === type);
  const callbacksOf = async (name) => (await page.evaluate(() => window.e2e.callbacks)).filter((c) => c.name === name);
  const authenticate = () => call('authenticate', server.projectId, ctx.token);
  // A flow of the SDK's installFlow, started in the page; its callbacks are recorded.
  const flow = () => page.evaluate(() => window.e2e.flow);
  const startFlow = (name, options = {}) => page.evaluate(([n, o]) => window.e2e.startFlow(n, o), [name, options]);
  const flowCall = (fn, ...args) => page.evaluate(([f, a]) => window.e2e.flowCall(f, a), [fn, args]);
  const clickAndWait = async (what, ms = 90000) => {
    const popup = context.waitForEvent('page', { timeout: 10000 });
    await page.click('#run');
    await popup.catch((err) => assert.fail(`no OAuth popup for ${what} (${err.message.split('\n')[0]})${recent()}`));
    await page.waitForFunction(() => window.e2e.clicked, null, { timeout: ms })
      .catch((err) => assert.fail(`${what}: no result in ${ms / 1000} s (${err.message.split('\n')[0]})${recent()}`));
    const r = await page.evaluate(() => window.e2e.clicked);
    assert.ok(r.ok, `${what} failed: ${r.error}${recent()}`);
    return r.value;
  };
  const { oauth, basic, apiKey } = ctx;

  // Per-integration callbacks (subscribeToIntegration keeps each until it has run once).
  const subscribeCallbacks = () => page.evaluate(([integrations]) => {
    const paragon = window.ParagonConnect.connectSingleton;
    for (const integration of integrations) {
      const record = (name) => (...args) => window.e2e.callbacks.push({ name, integration, args: JSON.parse(JSON.stringify(args.map((a) => (a instanceof Error ? { message: a.message } : a)))) });
      paragon.subscribeToIntegration(integration, {
        onInstall: record('onInstall'), onUninstall: record('onUninstall'), onOpen: record('onOpen'),
        onClose: record('onClose'), onWorkflowChange: record('onWorkflowChange'), onError: record('onError'),
      });
    }
  }, [[oauth.integration, basic.integration, apiKey.integration]]);
  // Listeners for every event, before anything happens.
  await page.evaluate(([integrations]) => {
    const paragon = window.ParagonConnect.connectSingleton;
    window.e2e.events = [];
    window.e2e.callbacks = [];
    window.e2e.unsubscribers = [];
    for (const type of ['onIntegrationInstall', 'onIntegrationUninstall', 'onWorkflowChange', 'onPortalOpen', 'onPortalClose']) {
      window.e2e.unsubscribers.push(paragon.subscribe(type, (payload, userState) => {
        window.e2e.events.push({ type, payload: JSON.parse(JSON.stringify(payload)), authenticated: userState?.authenticated });
      }));
    }
  }, [[oauth.integration, basic.integration, apiKey.integration]]);
  await subscribeCallbacks();
  touch('paragon.subscribe', 'paragon.subscribeToIntegration', 'paragon.configureGlobal');

  await step('local: version, assets, headless flag, (un)subscribe', ['paragon.getVersion', 'paragon.getAssetUrl', 'paragon.setHeadless', 'paragon.unsubscribe'], async () => {
    assert.equal(await call('getVersion'), ctx.sdkVersion);
    assert.equal(await call('getAssetUrl', 'logo'), `${server.baseUrl}/images/logo.png`);
    await call('setHeadless', false);
    assert.equal(await page.evaluate(() => window.ParagonConnect.connectSingleton.isHeadless), false);
    await call('setHeadless', true);
    assert.equal(await page.evaluate(() => window.ParagonConnect.connectSingleton.isHeadless), true);
    const removed = await page.evaluate(() => {
      const paragon = window.ParagonConnect.connectSingleton;
      const listener = () => {};
      paragon.subscribe('onPortalOpen', listener);
      return [paragon.unsubscribe('onPortalOpen', listener), paragon.unsubscribe('onPortalOpen', listener)];
    });
    assert.deepEqual(removed, [true, false]);
  });

  await step('authenticate and getUser', ['paragon.authenticate', 'paragon.getUser'], async () => {
    await authenticate();
    const u = await user();
    assert.equal(u.authenticated, true);
    assert.equal(u.token, undefined, 'getUser must not expose the token');
    assert.equal(typeof u.userId, 'string');
    for (const type of [oauth.integration, basic.integration, apiKey.integration]) {
      const s = u.integrations?.[type];
      assert.ok(s, `getUser().integrations lacks ${type}: ${Object.keys(u.integrations ?? {})}`);
      assert.equal(s.enabled, false, `${type} must not be installed yet (fresh user)`);
      assert.deepEqual(s.allCredentials, []);
    }
    assert.ok(Array.isArray(u.resources), 'resources is a list');
    const resource = u.resources.find((r) => r.slug);
    assert.ok(resource && typeof resource.id === 'string', `the project's API resource is in resources: ${JSON.stringify(u.resources)}`);
    if (ctx.tokenMeta) {
      for (const [k, v] of Object.entries(ctx.tokenMeta)) assert.deepEqual(u.meta?.[k], v, `meta.${k} from the token`);
    }
  });

  await step('integration lookups: metadata, ids, slugs, validation, headless support', ['paragon.getIntegrationMetadata', 'paragon.getIntegrationId', 'paragon._getIntegration', 'paragon.getIntegrationBySlug', 'paragon.validateAction', 'paragon.ensureHeadlessIsSupported'], async () => {
    const all = await call('getIntegrationMetadata');
    assert.ok(Array.isArray(all));
    for (const type of [oauth.integration, basic.integration, apiKey.integration]) {
      const m = all.find((x) => x.type === type);
      assert.ok(m, `getIntegrationMetadata() lacks ${type}`);
      assert.equal(typeof m.name, 'string');
      assert.equal(typeof m.icon, 'string');
      assert.deepEqual(await call('getIntegrationMetadata', type), m);
      const id = await call('getIntegrationId', type);
      assert.match(id, /^[0-9a-f-]{36}$/);
      const byId = await call('_getIntegration', id);
      assert.equal(byId.id, id);
      const bySlug = await call('getIntegrationBySlug', type);
      assert.equal(bySlug.id, id);
      assert.equal(bySlug.isActive, true);
      assert.deepEqual(await call('validateAction', type), { undefined: true });
    }
    const bad = await attempt('validateAction', 'no-such-integration');
    assert.equal(bad.ok, false);
    assert.match(bad.error, /not a valid integration type/);
    assert.deepEqual(await call('ensureHeadlessIsSupported'), { undefined: true });
  });

  let pipeline;
  await step('getIntegrationConfig in the SDK\'s input vocabulary; getSourcesForInput', ['paragon.getIntegrationConfig', 'paragon.getSourcesForInput'], async () => {
    const cfg = await call('getIntegrationConfig', oauth.integration);
    assert.ok(Array.isArray(cfg.availableWorkflows) && Array.isArray(cfg.hiddenWorkflows), JSON.stringify(cfg).slice(0, 400));
    assert.ok(cfg.availableWorkflows.some((w) => w.id === oauth.workflowId), 'the workflow is available');
    const inputs = cfg.availableUserSettings ?? [];
    pipeline = inputs.find((i) => i.id === oauth.pipelineInput);
    const limit = inputs.find((i) => i.id === oauth.limitInput);
    assert.ok(pipeline && limit, `shared inputs: ${JSON.stringify(inputs)}`);
    assert.equal(pipeline.type, 'CUSTOM_DROPDOWN');
    assert.ok(Array.isArray(pipeline.customDropdownOptions) && pipeline.customDropdownOptions.length >= 2, JSON.stringify(pipeline));
    for (const o of pipeline.customDropdownOptions) assert.ok(typeof o.label === 'string' && typeof o.value === 'string', JSON.stringify(o));
    assert.equal(limit.type, 'NUMBER');
    const sources = await call('getSourcesForInput', oauth.integration, pipeline);
    assert.equal(sources?.kind, 'single', JSON.stringify(sources));
    assert.equal(sources.source.type, 'STATIC_ENUM_DATA_SOURCE');
    assert.deepEqual(sources.source.values, pipeline.customDropdownOptions);
    if (oauth.hiddenWorkflowId) {
      assert.ok(cfg.hiddenWorkflows.some((w) => w.id === oauth.hiddenWorkflowId), `hiddenWorkflows: ${JSON.stringify(cfg.hiddenWorkflows)}`);
    }
  });

  await step('data sources given by the page: setDataSources, dropdowns, loaders, BYO field mapping', ['paragon.setDataSources', 'paragon.resolveCustomDropdownSource', 'paragon.hasCustomDropdownLoader', 'paragon._loadCustomDropdownOptions', 'paragon._fetchBYOFieldMappingOptions', 'paragon.getSourcesForActionInput'], async () => {
    const key = pipeline.key ?? pipeline.id;
    const r = await page.evaluate(async ([k, integration, input]) => {
      const paragon = window.ParagonConnect.connectSingleton;
      paragon.setDataSources({
        dropdowns: {
          [k]: [{ label: 'From the page', value: 'page' }],
          pageLoader: { loadOptions: (cursor, search) => ({ options: [{ label: `found ${search}`, value: 'x' }], nextPageCursor: cursor ? null : 'p2' }) },
        },
        mapObjectFields: {
          byo: {
            objectTypes: { get: async () => ({ options: [{ label: 'Contact', value: 'contact' }], nextPageCursor: null }) },
            integrationFields: { get: async ({ objectType }) => ({ options: [{ label: `${objectType}.email`, value: 'email' }], nextPageCursor: null }) },
            applicationFields: { fields: [{ label: 'Email', value: 'email' }] },
          },
        },
      });
      return {
        resolved: paragon.resolveCustomDropdownSource(k, integration),
        unknown: paragon.resolveCustomDropdownSource('nothing', integration),
        hasLoader: paragon.hasCustomDropdownLoader('pageLoader'),
        noLoader: paragon.hasCustomDropdownLoader(k),
        loaded: await paragon._loadCustomDropdownOptions('pageLoader', undefined, 'acme'),
        sources: paragon.getSourcesForInput(integration, input),
        objectTypes: await paragon._fetchBYOFieldMappingOptions(integration, 'objectTypes', 'byo', {}),
        fields: await paragon._fetchBYOFieldMappingOptions(integration, 'integrationFields', 'byo', { objectType: 'contact' }),
        actionInput: paragon.getSourcesForActionInput({ id: 'size', title: 'Size', type: 'ENUM', values: ['S', { label: 'Large', value: 'L' }] }),
        dynamicActionInput: paragon.getSourcesForActionInput({ id: 'list', title: 'List', type: 'DYNAMIC_ENUM', valuesSource: { sourceType: 'lists', dependencies: [] } }),
      };
    }, [key, oauth.integration, pipeline]);
    assert.deepEqual(r.resolved, [{ label: 'From the page', value: 'page' }]);
    assert.equal(r.unknown, null);
    assert.equal(r.hasLoader, true);
    assert.equal(r.noLoader, false);
    assert.deepEqual(r.loaded, { options: [{ label: 'found acme', value: 'x' }], nextPageCursor: 'p2' });
    assert.deepEqual(r.sources.source.values, [{ label: 'From the page', value: 'page' }], 'dropdown options from the page win');
    assert.deepEqual(r.objectTypes.options, [{ label: 'Contact', value: 'contact' }]);
    assert.deepEqual(r.fields.options, [{ label: 'contact.email', value: 'email' }]);
    assert.deepEqual(r.actionInput.source.values, [{ label: 'S', value: 'S' }, { label: 'Large', value: 'L' }]);
    assert.equal(r.dynamicActionInput.source.cacheKey, 'lists');
    const local = await call('getFieldOptions', { integration: oauth.integration, action: 'pageLoader', search: 'q' });
    assert.deepEqual(local, { data: [{ label: 'found q', value: 'x' }], nestedData: [], nextPageCursor: 'p2' });
    await page.evaluate(() => window.ParagonConnect.connectSingleton.setDataSources({}));
  });

  await step('local user state: updateAuthenticatedUser, triggerSDKEvent, triggerEvent, emitError', ['paragon.updateAuthenticatedUser', 'paragon.triggerSDKEvent', 'paragon.triggerEvent', 'paragon.emitError'], async () => {
    await clearEvents();
    const before = await user();
    await call('updateAuthenticatedUser', { meta: { ...before.meta, localOnly: 1 } });
    assert.equal((await user()).meta.localOnly, 1);
    await call('updateAuthenticatedUser', { meta: before.meta });
    const id = await call('getIntegrationId', oauth.integration);
    const change = { type: 'onWorkflowChange', integrationId: id, integrationType: oauth.integration, workflowId: oauth.workflowId, workflowStateChange: { enabled: true } };
    await call('triggerSDKEvent', change);
    const seen = await eventsOf('onWorkflowChange');
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0].payload, { integrationId: id, workflowId: oauth.workflowId, workflowStateChange: { enabled: true } });
    assert.equal(seen[0].authenticated, true, 'listeners get the user state');
    await page.evaluate((c) => window.ParagonConnect.connectSingleton.triggerEvent(c, { authenticated: true }), change);
    assert.equal((await eventsOf('onWorkflowChange')).length, 2);
    assert.equal((await callbacksOf('onWorkflowChange')).length, 1, 'subscribeToIntegration callbacks run once');
    await page.evaluate((type) => window.ParagonConnect.connectSingleton.emitError(new Error('boom'), type), oauth.integration);
    const errors = await callbacksOf('onError');
    assert.equal(errors.length, 1);
    assert.deepEqual(errors[0].args[0], { message: 'boom' });
    await clearEvents();
  });

  await step('installFlow for a basic-auth integration: preOptions, then done', ['installFlow.start', 'installFlow.next', 'paragon.getPreOptions', 'installFlow.setPreOptions', 'installFlow.getPreOptionsValue', 'paragon._oauthCallback', 'event:onIntegrationInstall'], async () => {
    await startFlow(basic.integration);
    await until(async () => (await flow()).next.length >= 1 || (await flow()).error, 'installFlow.start reports a stage');
    let f = await flow();
    assert.equal(f.error, null, JSON.stringify(f.error));
    const first = f.next[0];
    assert.equal(first.stage, 'preOptions', JSON.stringify(f.next));
    assert.equal(first.done, false);
    const ids = first.options.map((o) => o.id);
    assert.ok(ids.includes('username') && ids.includes('password'), `pre options: ${JSON.stringify(first.options)}`);
    for (const o of first.options) assert.ok(typeof o.title === 'string' && typeof o.type === 'string', JSON.stringify(o));
    assert.equal(first.options.find((o) => o.id === 'password').type, 'PASSWORD');
    assert.deepEqual(await call('getPreOptions', basic.integration), first.options);
    assert.deepEqual(await flowCall('next'), first, 'next() repeats the stage until it is answered');
    await flowCall('setPreOptions', { username: 'ann', password: 's3cret' });
    await until(async () => (await flow()).complete || (await flow()).error, 'the flow completes');
    f = await flow();
    assert.equal(f.error, null, JSON.stringify(f.error));
    assert.equal(typeof f.complete.credentialId, 'string', JSON.stringify(f.complete));
    assert.deepEqual(await flowCall('getPreOptionsValue'), { username: 'ann', password: 's3cret' });
    const s = await integrationState(basic.integration);
    assert.equal(s.enabled, true);
    assert.equal(s.credentialStatus, 'VALID');
    assert.equal(s.credentialId, f.complete.credentialId);
    const installs = await eventsOf('onIntegrationInstall');
    assert.equal(installs.length, 1);
    assert.equal(installs[0].payload.integrationType, basic.integration);
    // The same call the flow made, once more: a second account from values.
    const id = await call('getIntegrationId', basic.integration);
    const again = await call('_oauthCallback', { integrationId: id, payload: { username: 'bob', password: 's3cret' } });
    assert.equal(again.integrationType, basic.integration);
    assert.notEqual(again.credentialId, f.complete.credentialId);
    assert.equal((await integrationState(basic.integration)).allCredentials.length, 2);
    await authenticate();
    assert.equal((await integrationState(basic.integration)).allCredentials.length, 2, 'both accounts are stored');
    const bad = await attempt('_oauthCallback', { integrationId: id, payload: { username: 'eve' } });
    assert.equal(bad.ok, false, 'a missing password is refused');
  });

  let apiKeyCredential;
  await step('installFlow for a catalog API-key integration; getFieldOptions and getDataSourceOptions read its API', ['paragon.getFieldOptions', 'paragon.getDataSourceOptions', 'installFlow.cancel'], async () => {
    await startFlow(apiKey.integration);
    await until(async () => (await flow()).next.length >= 1 || (await flow()).error, 'installFlow.start reports a stage');
    let f = await flow();
    assert.equal(f.next[0]?.stage, 'preOptions', JSON.stringify(f));
    const ids = f.next[0].options.map((o) => o.id);
    for (const k of Object.keys(apiKey.values)) assert.ok(ids.includes(k), `pre options lack ${k}: ${JSON.stringify(ids)}`);
    await flowCall('setPreOptions', apiKey.values);
    await until(async () => (await flow()).complete || (await flow()).error, 'the flow completes');
    f = await flow();
    assert.equal(f.error, null, JSON.stringify(f.error));
    apiKeyCredential = f.complete.credentialId;
    const connected = await integrationState(apiKey.integration);
    assert.equal(connected.credentialStatus, 'VALID', JSON.stringify(connected.allCredentials));
    await flowCall('cancel');
    assert.equal(await flowCall('getPreOptionsValue'), null, 'cancel forgets the values');
    assert.equal((await integrationState(apiKey.integration)).enabled, true, 'cancel after done keeps the account');

    const cfg = await call('getIntegrationConfig', apiKey.integration);
    const input = (cfg.availableUserSettings ?? []).find((i) => i.id === apiKey.listInput);
    assert.ok(input?.sourceType, `the list setting has a sourceType: ${JSON.stringify(input)}`);
    const source = await call('getDataSourceOptions', apiKey.integration, input.sourceType);
    assert.ok(source && typeof source === 'object', `getDataSourceOptions: ${JSON.stringify(source)}`);
    assert.equal(source.type, 'DYNAMIC_DATA_SOURCE', JSON.stringify(source));
    assert.ok(await call('getSourcesForInput', apiKey.integration, input), 'getSourcesForInput finds the source');
    const options = await call('getFieldOptions', { integration: apiKey.integration, action: input.sourceType });
    assert.deepEqual(options.data.map((o) => o.value).sort(), apiKey.listValues.slice().sort(), JSON.stringify(options));
    assert.ok(options.data.every((o) => typeof o.label === 'string'));
    assert.ok(Array.isArray(options.nestedData));
    const searched = await call('getFieldOptions', { integration: apiKey.integration, action: input.sourceType, search: apiKey.listSearch });
    assert.ok(searched.data.length >= 1 && searched.data.length < options.data.length, `search narrows: ${JSON.stringify(searched)}`);
  });

  await step('getTriggers lists the integration\'s trigger types', ['paragon.getTriggers'], async () => {
    const r = await call('getTriggers', apiKey.integration);
    const list = r.triggers?.[apiKey.integration];
    assert.ok(Array.isArray(list) && list.length > 0, JSON.stringify(r).slice(0, 400));
    for (const d of list) {
      assert.equal(typeof d.type, 'string');
      assert.ok(['POLLING', 'WEBHOOK'].includes(d.triggerModel), JSON.stringify(d));
      assert.equal(typeof d.title, 'string');
      assert.equal(typeof d.description, 'string');
      assert.ok(Array.isArray(d.parameters));
    }
  });

  let oauthInstall;
  await step('installIntegration over OAuth (headless popup)', ['paragon.installIntegration'], async () => {
    await clearEvents();
    await page.evaluate((name) => { window.e2e.clicked = null; window.e2e.onClick = () => window.ParagonConnect.connectSingleton.installIntegration(name, {}); }, oauth.integration);
    oauthInstall = await clickAndWait('installIntegration');
    assert.equal(oauthInstall.integrationType, oauth.integration);
    assert.equal(typeof oauthInstall.credentialId, 'string');
    const s = await integrationState(oauth.integration);
    assert.equal(s.enabled, true);
    assert.equal(s.credentialStatus, 'VALID');
    assert.equal((await eventsOf('onIntegrationInstall')).length, 1);
    // (installIntegration puts its own callbacks in subscribeToIntegration's place.)
  });

  await step('getIntegrationAccount with the account\'s auth', ['paragon.getIntegrationAccount'], async () => {
    const a = await call('getIntegrationAccount', oauth.integration, { includeAccountAuth: true });
    // (A custom integration is typed `custom`, named by customIntegration.slug.)
    assert.equal(a.customIntegration?.slug ?? a.type, oauth.integration, JSON.stringify(a).slice(0, 400));
    assert.equal(a.credentialId, oauthInstall.credentialId);
    assert.ok(a.providerData && typeof a.providerData === 'object', 'providerData');
    assert.ok(a.accountAuth && typeof a.accountAuth === 'object', 'accountAuth');
    const plain = await call('getIntegrationAccount', oauth.integration, { includeAccountAuth: false });
    assert.equal(plain.credentialId, oauthInstall.credentialId);
    assert.equal(plain.accountAuth, undefined, 'no auth unless asked for');
  });

  await step('settings and workflows: updateIntegrationUserSettings, updateWorkflowUserSettings, updateWorkflowState, enable/disable', ['paragon.updateIntegrationUserSettings', 'paragon.updateWorkflowUserSettings', 'paragon.updateWorkflowState', 'paragon.enableWorkflow', 'paragon.disableWorkflow'], async () => {
    const r = await call('updateIntegrationUserSettings', oauth.integration, { [oauth.pipelineInput]: 'sales', [oauth.limitInput]: 25 });
    assert.deepEqual(r.errors, []);
    const on = await call('updateWorkflowState', { [oauth.workflowId]: true });
    assert.ok(Array.isArray(on.errors) && on.user.authenticated, JSON.stringify(on).slice(0, 300));
    assert.equal((await integrationState(oauth.integration)).workflowSettings?.[oauth.workflowId]?.enabled, true);
    const w = await call('updateWorkflowUserSettings', oauth.integration, oauth.workflowId, {});
    assert.deepEqual(w.errors, []);
    await call('disableWorkflow', oauth.workflowId, {});
    assert.equal((await integrationState(oauth.integration)).workflowSettings?.[oauth.workflowId]?.enabled, false);
    await call('enableWorkflow', oauth.workflowId);
    await authenticate();
    const s = await integrationState(oauth.integration);
    assert.equal(s.workflowSettings?.[oauth.workflowId]?.enabled, true, 'enabled, after a fresh /sdk/me');
    assert.equal(s.sharedSettings?.[oauth.pipelineInput], 'sales');
  });

  await step('running: workflow(), event(), request(), sendConnectRequest()', ['paragon.workflow', 'paragon.event', 'paragon.request', 'paragon.sendConnectRequest'], async () => {
    const answer = await call('workflow', oauth.workflowId, { body: { title: 'From every-method', tags: [] } });
    assert.match(String(answer?.acmeId), /^task_/, JSON.stringify(answer));
    assert.deepEqual(await call('event', ctx.eventName, ctx.eventPayload), { undefined: true });
    assert.deepEqual(await call('request', oauth.integration, '/me', { method: 'GET' }), oauth.account);
    const me = await call('sendConnectRequest', '/sdk/me');
    assert.equal(me.userId, (await user()).userId);
  });

  await step('configurations: create, update, destroy', ['paragon.createConfiguration', 'paragon.updateConfiguration', 'paragon.destroyConfiguration'], async () => {
    const credentialId = oauthInstall.credentialId;
    const made = await call('createConfiguration', { credentialId, externalId: 'every-method' });
    assert.equal(made.connectCredentialId, credentialId);
    assert.equal(made.externalId, 'every-method');
    assert.equal(made.isDefault, false);
    const updated = await call('updateConfiguration', { id: made.id, credentialId, meta: { label: 'Every method' } });
    assert.deepEqual(updated.configMeta, { label: 'Every method' });
    await call('destroyConfiguration', { id: made.id, credentialId });
    await authenticate();
    assert.deepEqual((await integrationState(oauth.integration)).allConfigurations.map((c) => c.isDefault), [true]);
  });

  await step('setUserMetadata is kept across authentications', ['paragon.setUserMetadata'], async () => {
    const u = await call('setUserMetadata', { plan: 'pro', seats: 3 });
    assert.equal(u.meta.plan, 'pro');
    assert.equal(u.meta.seats, 3);
    await authenticate(); // the same token again: its claims must not undo the patch
    const again = await user();
    assert.equal(again.meta.plan, 'pro', `meta after re-authenticating: ${JSON.stringify(again.meta)}`);
    assert.equal(again.meta.seats, 3);
    for (const [k, v] of Object.entries(ctx.tokenMeta ?? {})) {
      if (!(k in { plan: 1, seats: 1 })) assert.deepEqual(again.meta[k], v, `meta.${k} from the token stays`);
    }
  });

  await step('connectAction connects the project\'s API resource', ['paragon.connectAction'], async () => {
    const resource = (await user()).resources.find((r) => r.slug);
    const credential = await call('connectAction', resource.slug, ctx.resource.values);
    assert.equal(typeof credential.id, 'string', JSON.stringify(credential));
    assert.equal(credential.status, 'VALID', JSON.stringify(credential));
    await authenticate();
    const after = (await user()).resources.find((r) => r.id === resource.id);
    assert.equal(after.credentialId, credential.id, JSON.stringify(after));
    const bad = await attempt('connectAction', 'no-such-resource', {});
    assert.equal(bad.ok, false);
  });

  await step('getCustomWebhookUserManualUrl forms a URL para answers', ['paragon.getCustomWebhookUserManualUrl'], async () => {
    // (For a custom integration the SDK needs the credential named: it looks the account up by
    // the integration's type, which a custom one does not carry.)
    const url = await call('getCustomWebhookUserManualUrl', oauth.workflowId, oauthInstall.credentialId);
    assert.ok(url.startsWith(`${server.baseUrl}/triggers/connect/${server.projectId}/`), url);
    assert.ok(url.endsWith(`?id=${oauthInstall.credentialId}`), url);
    // This workflow starts from no custom webhook trigger (the URL ends in /undefined): para
    // answers that there is no such trigger, in JSON (custom triggers' own URLs are tested in
    // crates/para-server/tests/it/webhooks.rs).
    const r = await fetch(url, { headers: { origin: 'http://127.0.0.1:1' } });
    assert.equal(r.status, 404, `${url}: ${r.status}`);
    const body = await r.json();
    assert.ok(body.message.includes('no custom trigger'), JSON.stringify(body));
  });

  await step('uninstallIntegration, then completeInstall with a code the page obtained', ['paragon.uninstallIntegration', 'paragon.completeInstall', 'event:onIntegrationUninstall'], async () => {
    await clearEvents();
    await call('uninstallIntegration', oauth.integration, {});
    assert.equal((await integrationState(oauth.integration)).enabled, false);
    const un = await eventsOf('onIntegrationUninstall');
    assert.equal(un.length, 1);
    assert.equal(un[0].payload.integrationType, oauth.integration);
    const code = await ctx.oauth.authorizationCode();
    await call('completeInstall', oauth.integration, { authorizationCode: code, redirectUrl: oauth.redirectUri, showPortalAfterInstall: false });
    const s = await integrationState(oauth.integration);
    assert.equal(s.enabled, true);
    assert.equal(s.credentialStatus, 'VALID');
    await authenticate();
    assert.equal((await integrationState(oauth.integration)).credentialStatus, 'VALID', 'stored, after a fresh /sdk/me');
  });

  await step('startOAuthFlow adds a second account', ['paragon.startOAuthFlow', 'paragon._oauthErrorCallback'], async () => {
    const before = (await integrationState(oauth.integration)).allCredentials.length;
    await page.evaluate((name) => {
      window.e2e.clicked = null;
      window.e2e.onClick = () => new Promise((resolve, reject) => {
        window.ParagonConnect.connectSingleton.startOAuthFlow(name, { allowMultipleCredentials: true }, { onSuccess: resolve, onError: reject });
      });
    }, oauth.integration);
    const r = await clickAndWait('startOAuthFlow');
    assert.equal(typeof r.credentialId, 'string');
    await until(async () => (await integrationState(oauth.integration)).allCredentials.length === before + 1, 'the second account is in the user state');
    // What the popup posts when the provider refuses: the integration's onError callback.
    await clearEvents();
    await subscribeCallbacks(); // a callback runs once, then is gone
    const id = await call('getIntegrationId', oauth.integration);
    await page.evaluate((i) => window.ParagonConnect.connectSingleton._oauthErrorCallback('access_denied', { data: { integrationId: i, errorResponse: { message: 'access_denied' } } }), id);
    const errors = await callbacksOf('onError');
    assert.equal(errors.length, 1);
    assert.deepEqual(errors[0].args[0], { message: 'access_denied' });
  });

  await step('installFlow over OAuth with post-install options; account types', ['installFlow.setPostOptions', 'installFlow.getPostOptionsValue', 'paragon.getPostOptions', 'paragon.getAccountTypeOptions', 'installFlow.setAccountType', 'installFlow.getAccountTypeValue'], async () => {
    const post = await call('getPostOptions', oauth.integration);
    assert.ok(post.length >= 1, `post-install options of ${oauth.integration}: ${JSON.stringify(post)}`);
    const types = await call('getAccountTypeOptions', oauth.integration);
    assert.ok(Array.isArray(types));
    // Before the sign-in the flow asks for the integration's pre-OAuth inputs (the region); the
    // answer opens the sign-in popup, so it is given from a click.
    await startFlow(oauth.integration, { allowMultipleCredentials: true });
    await until(async () => (await flow()).next.length >= 1 || (await flow()).error, 'the flow starts');
    let f = await flow();
    assert.equal(f.next[0]?.stage, 'preOptions', JSON.stringify(f));
    const pre = Object.fromEntries(f.next[0].options.map((o) => [o.id, oauth.preValue(o)]));
    await page.evaluate((values) => {
      window.e2e.clicked = null;
      window.e2e.onClick = async () => { window.e2e.flowCall('setPreOptions', [values]); return null; };
    }, pre);
    const popup = context.waitForEvent('page', { timeout: 10000 });
    await page.click('#run');
    await popup.catch((err) => assert.fail(`no OAuth popup after the pre options (${err.message.split('\n')[0]})${recent()}`));
    await until(async () => (await flow()).next.some((n) => n.stage === 'postOptions') || (await flow()).error, 'the flow asks for post-install options', 90000);
    f = await flow();
    assert.equal(f.error, null, JSON.stringify(f.error));
    const stage = f.next.find((n) => n.stage === 'postOptions');
    assert.deepEqual(stage.options, post);
    const values = Object.fromEntries(post.map((o) => [o.id, oauth.postValue(o)]));
    await flowCall('setPostOptions', values);
    await until(async () => (await flow()).complete || (await flow()).error, 'the flow completes', 30000);
    f = await flow();
    assert.equal(f.error, null, JSON.stringify(f.error));
    assert.deepEqual(await flowCall('getPostOptionsValue'), values);
    // setAccountType on a flow: the value is kept and the flow moves on (an integration without
    // account types needs none: the SDK then goes by the chosen option, here none).
    await startFlow(basic.integration, { allowMultipleCredentials: true });
    await until(async () => (await flow()).next.length >= 1, 'the flow starts');
    const choice = types[0]?.id ?? 'default';
    await flowCall('setAccountType', choice);
    assert.equal(await flowCall('getAccountTypeValue'), choice);
    await flowCall('cancel');
    assert.equal(await flowCall('getAccountTypeValue'), null);
  });

  await step('connect() in the SDK\'s iframe: dropdowns from the page, open/close events, a workflow toggle tells the SDK', ['paragon.connect', 'paragon.setModalState', 'paragon.updateContainerStyle', 'paragon.onOpen', 'paragon.onClose', 'paragon.closePortal', 'event:onPortalOpen', 'event:onPortalClose', 'event:onWorkflowChange'], async () => {
    await call('setHeadless', false);
    await clearEvents();
    const iframeDisplay = () => page.evaluate(() => document.querySelector('iframe[src*="/ui"]')?.style.display);
    const key = pipeline.key ?? pipeline.id;
    await page.evaluate(([name, k]) => {
      window.e2e.connected = null;
      window.ParagonConnect.connectSingleton.connect(name, { dropdowns: { [k]: [{ label: 'Chosen by the page', value: 'sales' }] } })
        .then((v) => { window.e2e.connected = { ok: true, value: v ?? null }; }, (e) => { window.e2e.connected = { ok: false, error: String(e?.message ?? e) }; });
    }, [oauth.integration, key]);
    const frame = page.frameLocator('iframe[src*="/ui"]');
    await frame.locator('#ui-title').waitFor({ timeout: 15000 });
    await until(async () => (await iframeDisplay()) === 'block', 'the portal is shown');
    await until(async () => (await eventsOf('onPortalOpen')).length >= 1, 'onPortalOpen fired');
    assert.equal((await eventsOf('onPortalOpen'))[0].payload.integrationType, oauth.integration);
    const select = frame.locator(`[id="input-${oauth.pipelineInput}"]`);
    await select.waitFor({ timeout: 15000 });
    await until(async () => (await select.locator('option').allTextContents()).includes('Chosen by the page'), 'the dropdown shows the options the page passed');

    const box = frame.locator(`input[data-workflow="${oauth.workflowId}"]`);
    await box.waitFor({ timeout: 15000 });
    const was = await box.isChecked();
    await box.click();
    await until(async () => (await eventsOf('onWorkflowChange')).length >= 1, 'onWorkflowChange fired for the toggle');
    const change = (await eventsOf('onWorkflowChange'))[0].payload;
    assert.equal(change.workflowId, oauth.workflowId);
    assert.equal(change.workflowStateChange?.enabled, !was, JSON.stringify(change));
    await box.click();
    await until(async () => (await eventsOf('onWorkflowChange')).length >= 2, 'onWorkflowChange fired for the toggle back');

    await call('updateContainerStyle', { isModalShown: false });
    assert.equal(await iframeDisplay(), 'none');
    await call('updateContainerStyle', { isModalShown: true });
    assert.equal(await iframeDisplay(), 'block');
    const opens = (await eventsOf('onPortalOpen')).length;
    await call('onOpen');
    assert.equal((await eventsOf('onPortalOpen')).length, opens + 1);
    await call('setModalState', {});
    assert.equal(await iframeDisplay(), 'block', 'an empty modal state changes nothing');
    await call('onClose');
    await until(async () => (await eventsOf('onPortalClose')).length >= 1, 'onPortalClose fired');
    await call('closePortal');
    await until(async () => (await iframeDisplay()) === 'none', 'the portal is hidden');
    await call('setHeadless', true);
  });

  await step('logout', ['paragon.logout'], async () => {
    await call('logout');
    assert.equal((await user()).authenticated, false);
    const r = await attempt('sendConnectRequest', '/sdk/me');
    assert.equal(r.ok, false, 'no request without a user');
    await authenticate();
  });

  await t.test('every public method and event of the SDK was called', () => {
    const missing = ctx.surface.filter((n) => !called.has(n) && !(n in NOT_CALLED));
    const stale = [...called, ...Object.keys(NOT_CALLED)].filter((n) => !ctx.surface.includes(n));
    assert.deepEqual(stale, [], 'names this test calls that the SDK does not declare');
    assert.deepEqual(missing, [], `not called (${ctx.surface.length} in the SDK's surface)${failed ? `; steps stopped at "${failed}"` : ''}`);
  });
}
