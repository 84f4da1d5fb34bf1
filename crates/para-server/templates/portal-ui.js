// The Connect Portal as the @useparagon/connect SDK shows it. `paragon.connect(type)` loads this
// page (GET /ui) in a full-window iframe and sends it what to show in UI_UPDATE messages; the page
// acts only by asking the SDK in the parent window to run one of its own methods
// (SDK_FUNCTION_INVOCATION: installIntegration, updateIntegrationUserSettings, enableWorkflow…).
// What it renders is a function of the state the SDK sent (settings inputs in the SDK's
// vocabulary: TEXT_NO_VARS, NUMBER, SWITCH, PASSWORD, CUSTOM_DROPDOWN, DYNAMIC_ENUM,
// FIELD_MAPPER…); choices come through the SDK too: dropdown options the app gave it
// (connect(type, { dropdowns }), setDataSources) and the account's choices of a data source
// (getFieldOptions, by page and search). Its one request of its own, with the token the SDK
// sent, starts an OAuth sign-in (build-oauth). Everything is built with DOM calls and
// textContent: no HTML from the state is ever parsed.
'use strict';
(function () {
  const parentWindow = window.parent;
  let parentOrigin = null; // learned from the first UI_UPDATE
  let context = null;
  let modal = null;
  let shown = false;
  let currentType = null;
  let busy = null; // the label of the action in flight
  let notice = null; // { kind: 'ok' | 'error', lines: [..] }
  let drafts = {}; // unsaved values of the settings form, by input id
  let adding = false; // connecting another account of a connected integration
  // Choices of the shown integration's settings, by list id (`source:<key>` for a data source,
  // `dropdown:<key>` for a dropdown the app loads): { loading, options, next, search, error, seq }.
  let lists = {};
  // Where each custom dropdown's options come from, by dropdown key (asked of the SDK).
  let dropdownSources = {};
  let calls = 0;
  const pending = new Map();

  function invoke(type, ...parameters) {
    const id = `para-ui-${++calls}`;
    return new Promise((resolve, reject) => {
      if (!parentOrigin || parentWindow === window) {
        reject(new Error('this portal only works inside the page that opened it'));
        return;
      }
      pending.set(id, { resolve, reject });
      parentWindow.postMessage({ messageType: 'SDK_FUNCTION_INVOCATION', type, id, parameters }, parentOrigin);
    });
  }

  window.addEventListener('message', (event) => {
    const data = event.data;
    if (event.source !== parentWindow || !data || typeof data !== 'object') return;
    if (data.messageType === 'UI_UPDATE') {
      // A page with an opaque origin (sandboxed, file:) can only be answered with '*'.
      parentOrigin = event.origin === 'null' ? '*' : event.origin;
      context = data.nextContext || null;
      modal = data.nextModalState || null;
      render();
    } else if (data.messageType === 'SDK_FUNCTION_RESPONSE' || data.messageType === 'SDK_FUNCTION_ERROR') {
      const call = pending.get(data.id);
      if (!call) return;
      pending.delete(data.id);
      if (data.messageType === 'SDK_FUNCTION_RESPONSE') call.resolve(data.result);
      else call.reject(new Error(data.message || 'the action failed'));
    }
  });

  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && shown) close();
  });
  document.addEventListener('click', (event) => {
    if (event.target && event.target.id === 'overlay') close();
  });

  // The SDK's name for an integration (getIntegrationTypeName): custom ones go by their slug.
  function typeOf(integration) {
    if (integration.type === 'custom') return integration.customIntegration && integration.customIntegration.slug;
    return integration.type;
  }

  // The SDK's state of one integration for the user (empty when it has none).
  function stateOf(type) {
    return (((context && context.user) || {}).integrations || {})[type] || {};
  }

  function connected(type) {
    const state = stateOf(type);
    return state.enabled === true && state.credentialStatus !== 'INVALID';
  }

  // The SDK shows a newly added account with that account's own settings (Paragon keeps them
  // per account); para keeps one set per integration, shared by all of the user's accounts, so
  // after adding one the state is read again from the server.
  function refreshState() {
    return invoke('authenticate', context.projectId, context.user.token).catch(() => {});
  }

  function accountCount(type) {
    return (stateOf(type).allCredentials || []).length;
  }

  function color(value) {
    return typeof value === 'string' && /^#[0-9a-fA-F]{3,8}$/.test(value) ? value : '#4B5563';
  }

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key in node && typeof value !== 'string') node[key] = value;
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  // Overview Markdown as text: paragraphs and "- " lists; emphasis and heading marks dropped.
  function overview(text) {
    const box = el('div', { class: 'ui-overview' });
    const plain = (line) => line.replace(/^#+\s*/, '').replace(/\*\*|__|`/g, '');
    for (const block of String(text).split(/\n\s*\n/)) {
      const lines = block.split('\n').map((l) => l.trim()).filter(Boolean);
      if (lines.length === 0) continue;
      if (lines.every((l) => /^[-*]\s+/.test(l))) {
        box.append(el('ul', {}, lines.map((l) => el('li', {}, plain(l.replace(/^[-*]\s+/, ''))))));
      } else {
        box.append(el('p', {}, plain(lines.join(' '))));
      }
    }
    return box;
  }

  function resetTransient() {
    if (signing) return; // a sign-in window is open: keep its state
    preValues = {};
    busy = null;
    notice = null;
    drafts = {};
    adding = false;
    lists = {};
    dropdownSources = {};
  }

  function apiBase() {
    const env = context.environments || {};
    return String(env.ZEUS_PUBLIC_URL || location.origin).replace(/\/$/, '');
  }

  // The text of an error the SDK passed on: its API errors carry the server's JSON body.
  function messageOf(error) {
    const text = error && error.message ? error.message : String(error);
    try {
      const body = JSON.parse(text);
      if (body && typeof body.message === 'string') return body.message;
    } catch (_) { /* plain text */ }
    return text;
  }

  // One page of a data source's choices for the account shown, through the SDK's
  // getFieldOptions (POST /sdk/actions with X-Paragon-Credential; a dropdown key the app gave a
  // loader for is answered by that loader instead).
  function sourcePage(type, key) {
    return (cursor, search) => invoke('getFieldOptions', {
      integration: type, action: key, search: search || undefined, cursor,
      selectedCredentialId: stateOf(type).credentialId || undefined,
    }).then((r) => ({
      options: ((r && r.data) || []).filter((o) => o && o.value !== undefined && o.value !== null),
      next: (r && r.nextPageCursor) || null,
    }));
  }

  // Loads a list of choices once per opening of the portal; `more` appends the next page and a
  // `search` starts over with that text. A newer load wins over an older one still running.
  function loadList(id, fetchPage, { more = false, search } = {}) {
    const current = lists[id];
    if (current && !more && search === undefined) return;
    if (more && (!current || current.loading || !current.next)) return;
    const query = search !== undefined ? search : (current ? current.search : '');
    const previous = more ? current.options : [];
    const seq = (current ? current.seq : 0) + 1;
    const shownType = currentType;
    lists[id] = { loading: true, options: previous, next: null, search: query, error: null, seq };
    const settle = (entry) => {
      if (currentType !== shownType || !lists[id] || lists[id].seq !== seq) return;
      lists[id] = { ...entry, search: query, seq };
      render();
    };
    fetchPage(more ? current.next : undefined, query).then(
      ({ options, next }) => settle({ loading: false, options: previous.concat(options), next, error: null }),
      (error) => settle({ loading: false, options: previous, next: null, error: messageOf(error) }));
  }

  // Where a custom dropdown's options come from, asked of the SDK once per opening, in the
  // SDK's own order (getSourcesForInput): what setDataSources gave for its key, else the app's
  // loader (connect(type, { dropdowns: { key: { loadOptions } } })), else the input's
  // customDropdownOptions (which connect(type, { dropdowns: { key: [...] } }) replaces).
  function dropdownSource(type, key) {
    if (!key) return { kind: 'config' };
    if (dropdownSources[key]) return dropdownSources[key];
    dropdownSources[key] = { kind: 'asking' };
    const shownType = currentType;
    (async () => {
      const given = await invoke('resolveCustomDropdownSource', key, type);
      if (Array.isArray(given)) return { kind: 'static', options: given };
      if (await invoke('hasCustomDropdownLoader', key)) return { kind: 'loader' };
      return { kind: 'config' };
    })().catch(() => ({ kind: 'config' })).then((found) => {
      if (currentType !== shownType || !dropdownSources[key]) return;
      dropdownSources[key] = found;
      render();
    });
    return dropdownSources[key];
  }

  async function act(label, work) {
    if (busy) return;
    busy = label;
    notice = null;
    render();
    try {
      const outcome = await work();
      notice = outcome || null;
    } catch (error) {
      notice = { kind: 'error', lines: [error && error.message ? error.message : String(error)] };
    } finally {
      busy = null;
      render();
    }
  }

  function close() {
    if (!shown) return;
    invoke('updateContainerStyle', { isModalShown: false }).catch(() => {});
    invoke('closePortal').catch(() => {});
  }

  // The SDK reports installs, uninstalls, opening and closing itself (from the methods invoked
  // here), but a workflow's change only when its portal says so: its onWorkflowChange
  // listeners and connect()'s callback get { integrationId, workflowId, workflowStateChange }.
  function workflowChanged(integration, type, workflowId, change) {
    invoke('triggerSDKEvent', {
      type: 'onWorkflowChange', integrationId: integration.id, integrationType: type,
      workflowId, workflowStateChange: change,
    }).catch(() => {});
  }

  // ── Connecting over OAuth ──────────────────────────────────────────────────────────────────
  // As the SDK does in headless mode, but from this page: the popup opens on the click here (the
  // SDK only opens it itself when no values are asked before signing in), the server's nonce
  // page tells this page it is ready and the authorize URL comes from build-oauth. The SDK polls
  // the sign-in session for the credential; a failure the popup posts here is passed on to it.
  const SIGNING_IN = 'Waiting for the sign-in window…';
  let preValues = {};
  let signing = null; // { popup, type, redirect: Promise<string> }

  function preInput(input) {
    const key = input.key || input.id;
    const controlId = `pre-${key}`;
    const secret = input.secret === true || input.type === 'password';
    const help = input.help || input.tooltip;
    return el('label', { class: 'ui-field', for: controlId },
      el('span', {}, input.label || input.title || key, input.required ? ' *' : ''),
      el('input', {
        type: secret ? 'password' : 'text', id: controlId, autocomplete: 'off',
        placeholder: input.placeholder || '', value: preValues[key] || '',
        oninput: (e) => { preValues[key] = e.target.value; },
      }),
      help ? el('div', { class: 'hint' }, help) : null);
  }

  // Required values missing before connecting, reported on the form; true when all are there.
  function complete(before) {
    const missing = before.filter((i) => i.required && !String(preValues[i.key || i.id] || '').trim());
    if (missing.length === 0) return true;
    notice = { kind: 'error', lines: missing.map((i) => `${i.label || i.title || i.key} is required.`) };
    render();
    return false;
  }

  function valuesOf(before) {
    const values = {};
    for (const i of before) {
      const key = i.key || i.id;
      if (preValues[key]) values[key] = preValues[key];
    }
    return values;
  }

  // Integrations connected with values (API key, basic, password, client credentials): the SDK
  // posts them to /sdk/credentials itself (_oauthCallback, its path for non-OAuth credentials),
  // tests the account, updates its state and reports the install, or puts the server's reason
  // in the modal state.
  const CONNECTING = 'Connecting…';
  function connectWithValues(integration, type, before) {
    if (busy || !complete(before)) return;
    const values = valuesOf(before);
    const another = adding;
    act(CONNECTING, async () => {
      // The SDK answers with the stored credential, or nothing when it was refused.
      const result = await invoke('_oauthCallback', { integrationId: integration.id, payload: values });
      const credential = result && result.credential;
      if (credential ? credential.status === 'VALID' : !another && connected(type)) {
        preValues = {};
        adding = false;
        if (another) await refreshState();
        return { kind: 'ok', lines: [`Connected to ${integration.name || type}.`] };
      }
      const why = (credential && credential.statusReason) || (modal && modal.connectionError && modal.connectionError.message);
      return { kind: 'error', lines: [why || `${integration.name || type} did not accept these values.`] };
    });
  }

  function signIn(integration, type, before) {
    if (busy || !complete(before)) return;
    const api = apiBase();
    const token = context.user.token;
    const project = context.projectId;
    const origin = location.origin;
    const action = integration.type === 'custom' ? 'custom' : integration.type;
    const nonce = `${api}/projects/${encodeURIComponent(project)}/sdk/actions/oauth-nonce?` + new URLSearchParams({
      action, integrationId: integration.id, originForPostMessage: origin, userToken: token,
    });
    const popup = window.open(nonce, 'para-oauth', 'width=500,height=600,left=100,top=150');
    if (!popup) {
      notice = { kind: 'error', lines: ['The browser blocked the sign-in window: allow pop-ups for this site and try again.'] };
      render();
      return;
    }
    const values = valuesOf(before);
    const session = Math.random().toString(36).slice(2, 15);
    const query = new URLSearchParams({
      action, integrationId: integration.id, originForPostMessage: origin,
      endUserSuppliedValues: JSON.stringify(values), parameters: '{}',
      installOptions: JSON.stringify(adding ? { allowMultipleCredentials: true } : {}),
      oauthMetaKeyId: session,
    });
    const redirect = fetch(`${api}/v2/projects/${encodeURIComponent(project)}/sdk/actions/build-oauth?${query}`, {
      headers: { Authorization: `Bearer ${token}` },
    }).then(async (response) => {
      const body = await response.json().catch(() => ({}));
      if (!response.ok || !body.redirectUrl) throw new Error(body.message || `the server answered ${response.status}`);
      return body.redirectUrl;
    });
    signing = { popup, type, redirect };
    busy = SIGNING_IN;
    notice = null;
    render();
    redirect.catch((error) => finishSignIn({ kind: 'error', lines: [`Could not start signing in: ${error.message}`] }));
    // The server records the new credential under the session; the SDK polls it, saves it in
    // its state (a UI_UPDATE follows) and reports the install to the app.
    const accountsBefore = accountCount(type);
    invoke('pollForCredential', type, session).then(() => {
      if (signing && signing.popup === popup) {
        const added = stateOf(type).enabled && accountCount(type) > accountsBefore;
        if (added && adding) {
          adding = false;
          refreshState();
        }
        finishSignIn(added ? { kind: 'ok', lines: [`Connected to ${integration.name || type}.`] } : null);
      }
    }, (error) => finishSignIn({ kind: 'error', lines: [error.message] }));
    const watch = setInterval(() => {
      if (signing && signing.popup === popup && popup.closed) {
        clearInterval(watch);
        finishSignIn(null);
      } else if (!signing || signing.popup !== popup) {
        clearInterval(watch);
      }
    }, 500);
  }

  function finishSignIn(outcome) {
    if (!signing) return;
    try { if (outcome && outcome.kind === 'error') signing.popup.close(); } catch (_) { /* gone */ }
    signing = null;
    busy = null;
    notice = outcome;
    render();
  }

  window.addEventListener('message', (event) => {
    const data = event.data;
    if (!signing || event.source !== signing.popup || !data || typeof data !== 'object') return;
    if (data.type === 'oauth-nonce-loaded') {
      const popup = signing.popup;
      signing.redirect.then((url) => { popup.location.href = url; }, () => {});
    } else if (data.type === 'oauth_error_callback' && event.origin === location.origin) {
      parentWindow.postMessage({ type: 'oauth_error_callback', error: data.error }, parentOrigin);
      finishSignIn({ kind: 'error', lines: [`Signing in failed: ${typeof data.error === 'string' ? data.error : (data.error && data.error.message) || 'the provider refused'}`] });
    }
  });

  // A select of `options` ({label, value}); a current value not among them stays choosable.
  function choiceSelect(attributes, options, current, set) {
    const value = current === undefined || current === null ? '' : String(current);
    const shown = options.slice();
    if (value && !shown.some((o) => String(o.value) === value)) shown.unshift({ label: value, value });
    return el('select', { ...attributes, onchange: (e) => set(e.target.value) },
      el('option', { value: '' }, 'Choose…'),
      shown.map((o) => el('option', { value: String(o.value), selected: String(o.value) === value }, o.label ?? String(o.value))));
  }

  // The choices of one loaded list: a select, and when the list has more pages a search box and
  // "More choices". `fallback()` is the control when the list could not be loaded at all.
  function listedControl(listId, fetchPage, attributes, current, set, fallback) {
    loadList(listId, fetchPage);
    const list = lists[listId];
    if (list.error && list.options.length === 0 && !list.search) {
      return { control: fallback(), why: list.error };
    }
    const select = list.loading && list.options.length === 0
      ? el('select', { ...attributes, disabled: true }, el('option', { value: '' }, 'Loading choices…'))
      : choiceSelect(attributes, list.options, current, set);
    const searchable = Boolean(list.next) || Boolean(list.search);
    const tools = searchable || list.error ? el('div', { class: 'ui-choice-tools' },
      searchable ? el('input', {
        type: 'search', id: `${attributes.id}-search`, placeholder: 'Search choices…', value: list.search || '',
        'aria-label': 'Search choices',
        onkeydown: (e) => {
          if (e.key !== 'Enter') return;
          e.preventDefault(); // not the settings form's submit
          loadList(listId, fetchPage, { search: e.target.value.trim() });
          render();
        },
        onchange: (e) => { if (e.target.value.trim() !== (lists[listId] || {}).search) { loadList(listId, fetchPage, { search: e.target.value.trim() }); render(); } },
      }) : null,
      list.next ? el('button', {
        class: 'ui-button secondary', type: 'button', id: `${attributes.id}-more`, disabled: list.loading,
        onclick: () => { loadList(listId, fetchPage, { more: true }); render(); },
      }, list.loading ? 'Loading…' : 'More choices') : null,
      list.error ? el('span', { class: 'hint' }, `Could not load more choices (${list.error}).`) : null) : null;
    return { control: tools ? [select, tools] : select, why: null };
  }

  // A field mapping (FIELD_MAPPER): which object of the integration (record type) and, per
  // field of the company's app (savedFieldMappings), the integration's field it maps to. The
  // saved value is one object: { record_type, <field key>: <integration field>, … }.
  function mappingField(input, value, set, latest, controlId) {
    const declared = (input.savedFieldMappings || input.fieldMappings || [])
      .filter((m) => m && typeof m.label === 'string')
      .map((m) => ({ label: m.label, key: typeof m.value === 'string' && m.value !== '' ? m.value : m.label }));
    const current = value && typeof value === 'object' && !Array.isArray(value) ? value : {};
    const update = (key, v) => {
      // From the latest draft: several rows are edited between renders.
      const now = latest();
      const next = { ...(now && typeof now === 'object' && !Array.isArray(now) ? now : {}) };
      if (v === '') delete next[key]; else next[key] = v;
      set(next);
    };
    const keys = declared.concat(Object.keys(current)
      .filter((k) => k !== 'record_type' && !declared.some((d) => d.key === k))
      .map((k) => ({ label: k, key: k })));
    const record = String(current.record_type ?? '');
    const typed = () => el('input', { type: 'text', id: controlId, 'data-mapping': 'record_type', value: record, oninput: (e) => update('record_type', e.target.value) });
    // The record types come from the mapper's record source (sdkIntegrationConfig.dataSources),
    // when the integration has one; else the object is typed.
    const sources = (((modal && modal.integration) || {}).sdkIntegrationConfig || {}).dataSources || {};
    const mapper = input.sourceType ? sources[input.sourceType] : null;
    const recordKey = mapper && mapper.recordSource && mapper.recordSource.cacheKey;
    let recordControl = typed();
    let why = null;
    if (recordKey) {
      ({ control: recordControl, why } = listedControl(`source:${recordKey}`, sourcePage(currentType, recordKey),
        { id: controlId, 'data-mapping': 'record_type' }, record, (v) => update('record_type', v), typed));
    }
    return el('fieldset', { class: 'ui-field ui-mapping' },
      el('legend', {}, input.title || input.key || input.id, input.required ? ' *' : ''),
      el('div', { class: 'ui-field' }, el('label', { class: 'ui-label', for: controlId }, 'Object'), recordControl,
        why ? el('div', { class: 'hint' }, `The objects could not be listed (${why}); type one.`) : null),
      keys.map(({ label, key }) => {
        const id = `${controlId}-${key}`;
        return el('label', { class: 'ui-field', for: id }, el('span', {}, `${label} →`),
          el('input', { type: 'text', id, 'data-mapping': key, value: String(current[key] ?? ''), placeholder: 'field of the integration', oninput: (e) => update(key, e.target.value) }));
      }),
      input.tooltip ? el('div', { class: 'hint' }, input.tooltip) : null);
  }

  // Unsaved values are kept by scope ('' for the integration's settings, else the workflow id)
  // and input id.
  function draftKey(scope, id) {
    return scope ? `${scope}/${id}` : id;
  }

  // One settings input (SerializedConnectInput); `scope` tells integration settings ('') from a
  // workflow's (its id).
  function field(input, saved, scope) {
    const id = input.id;
    const draft = draftKey(scope, id);
    const value = draft in drafts ? drafts[draft] : saved;
    const controlId = scope ? `input-${scope}-${id}` : `input-${id}`;
    const set = (v) => { drafts[draft] = v; };
    const title = input.title || input.key || id;
    const current = value === undefined || value === null ? '' : String(value);
    const text = (type) => el('input', { type, id: controlId, value: current, oninput: (e) => set(e.target.value) });
    let control;
    let hint = input.tooltip || null;
    let why = null;
    switch (input.type) {
      case 'FIELD_MAPPER':
        return mappingField(input, value, set, () => (draft in drafts ? drafts[draft] : saved), controlId);
      case 'SWITCH':
      case 'BOOLEAN_INPUT':
        control = el('input', { type: 'checkbox', id: controlId, checked: value === true || value === 'true', onchange: (e) => set(e.target.checked) });
        return el('label', { class: 'ui-field' }, control, ' ', el('strong', {}, title),
          input.tooltip ? el('div', { class: 'hint' }, input.tooltip) : null);
      case 'CUSTOM_DROPDOWN': {
        const source = dropdownSource(currentType, input.key);
        if (source.kind === 'loader') {
          ({ control, why } = listedControl(`dropdown:${input.key}`, sourcePage(currentType, input.key),
            { id: controlId }, value, set, () => text('text')));
        } else {
          const options = source.kind === 'static' ? source.options : input.customDropdownOptions;
          control = choiceSelect({ id: controlId }, (Array.isArray(options) ? options : []).filter((o) => o && o.value !== undefined), value, set);
        }
        break;
      }
      case 'DYNAMIC_ENUM':
        // A data source of the integration (a Slack channel…): the account's choices, else a
        // text box.
        if (input.sourceType) {
          ({ control, why } = listedControl(`source:${input.sourceType}`, sourcePage(currentType, input.sourceType),
            { id: controlId }, value, set, () => text('text')));
        } else {
          control = text('text');
        }
        break;
      case 'PASSWORD':
        // A stored secret is never shown back: leaving the field empty keeps it.
        control = el('input', { type: 'password', id: controlId, autocomplete: 'off', placeholder: saved ? 'saved — type to replace' : '', oninput: (e) => set(e.target.value) });
        break;
      case 'NUMBER':
        control = text('number');
        break;
      case 'EMAIL':
        control = text('email');
        break;
      case 'URL':
        control = text('url');
        break;
      default:
        control = text('text');
    }
    if (why) hint = `${hint ? `${hint} ` : ''}The list of choices could not be loaded (${why}); type the value.`;
    return el('div', { class: 'ui-field' },
      el('label', { class: 'ui-label', for: controlId }, title, input.required ? ' *' : ''),
      control,
      hint ? el('div', { class: 'hint' }, hint) : null);
  }

  function settingsValues(inputs, scope) {
    const values = {};
    for (const input of inputs) {
      const draft = draftKey(scope, input.id);
      if (!(draft in drafts)) continue;
      let v = drafts[draft];
      if (input.type === 'PASSWORD' && v === '') continue;
      if (input.type === 'NUMBER') v = v === '' ? null : Number(v);
      values[input.id] = v;
    }
    return values;
  }

  // Saves the drafts of `inputs` in `scope` through the SDK method `save` (given the values);
  // the server's refusals become the notice, and saved drafts are dropped.
  function saveSettings(inputs, scope, save, done) {
    act('Saving…', async () => {
      const result = await save(settingsValues(inputs, scope));
      const errors = (result && result.errors) || [];
      if (errors.length > 0) return { kind: 'error', lines: errors.map((e) => (typeof e === 'string' ? e : e.message || JSON.stringify(e))) };
      for (const input of inputs) delete drafts[draftKey(scope, input.id)];
      return { kind: 'ok', lines: [done] };
    });
  }

  function render() {
    // The view is rebuilt: the control being typed in keeps the focus (a search box, while its
    // choices arrive).
    const active = document.activeElement;
    const focused = active && active.id && active !== document.body ? active.id : null;
    const caret = focused && typeof active.selectionStart === 'number' ? [active.selectionStart, active.selectionEnd] : null;
    try {
      draw();
      const again = focused && document.getElementById(focused);
      if (again && again !== document.activeElement) {
        again.focus();
        if (caret && typeof again.setSelectionRange === 'function') {
          try { again.setSelectionRange(caret[0], caret[1]); } catch (_) { /* not a text control */ }
        }
      }
    } catch (error) {
      // Never leave a stale view behind: say what went wrong where the portal would be.
      console.error('para portal:', error);
      document.getElementById('modal').replaceChildren(el('div', { class: 'ui-section' },
        el('div', { class: 'banner error', role: 'alert' }, `The portal could not show this integration: ${error && error.message}`)));
    }
  }

  function draw() {
    const overlay = document.getElementById('overlay');
    const root = document.getElementById('modal');
    const integration = modal && modal.integration;
    const user = context && context.user;
    if (!integration || !user || !user.authenticated) {
      overlay.hidden = true;
      root.replaceChildren();
      if (shown) {
        shown = false;
        invoke('updateContainerStyle', { isModalShown: false }).catch(() => {});
      }
      currentType = null;
      resetTransient();
      return;
    }
    const type = typeOf(integration);
    if (type !== currentType) {
      resetTransient();
      currentType = type;
    }
    const config = modal.config || {};
    const state = stateOf(type);
    const accent = color(config.accentColor || integration.brandColor);
    document.documentElement.style.setProperty('--accent', accent);
    overlay.hidden = false;
    if (!shown) {
      shown = true;
      invoke('updateContainerStyle', { isModalShown: true }).catch(() => {});
      invoke('onOpen').catch(() => {});
    }

    const isConnected = connected(type);
    const status = state.credentialStatus === 'INVALID' ? 'INVALID' : isConnected ? 'VALID' : null;
    const name = integration.name || type;
    const parts = [];
    parts.push(el('header', { class: 'ui-head' },
      el('div', { class: 'ui-monogram', 'aria-hidden': 'true' }, name.trim().charAt(0).toUpperCase()),
      el('div', { class: 'body' },
        el('h1', { id: 'ui-title' }, name),
        config.description ? el('p', {}, config.description) : null),
      status ? el('span', { class: `pill ${status}` }, status === 'VALID' ? 'Connected' : 'Needs reconnecting') : null,
      el('button', { class: 'ui-close', type: 'button', 'aria-label': 'Close', onclick: close }, '×')));

    const account = el('div', { class: 'ui-section' });
    if (notice) {
      account.append(el('div', { class: `banner ${notice.kind}`, role: notice.kind === 'error' ? 'alert' : 'status' },
        notice.lines.length === 1 ? notice.lines[0] : el('ul', {}, notice.lines.map((l) => el('li', {}, l)))));
    }
    // Every account the user connected (several with allowMultipleCredentials); each can be
    // disconnected on its own, and the settings go with the last one.
    const accounts = (state.allCredentials || []).filter((c) => c && c.id);
    if (isConnected && accounts.length > 1) {
      account.append(el('h2', {}, 'Accounts'));
      accounts.forEach((credential, index) => {
        const label = credential.providerId ? String(credential.providerId) : `Account ${index + 1}`;
        const valid = credential.status === 'VALID';
        account.append(el('div', { class: 'ui-actions ui-account', 'data-credential': credential.id },
          el('span', {}, label),
          el('span', { class: `pill ${valid ? 'VALID' : 'INVALID'}` }, valid ? 'Connected' : 'Needs reconnecting'),
          el('button', {
            class: 'ui-button danger', type: 'button', disabled: Boolean(busy),
            onclick: () => act('Disconnecting…', async () => {
              await invoke('uninstallIntegration', type, { selectedCredentialId: credential.id });
              return { kind: 'ok', lines: [`Disconnected ${label} from ${name}.`] };
            }),
          }, 'Disconnect')));
      });
    } else if (isConnected) {
      account.append(el('div', { class: 'ui-actions' },
        el('span', { class: 'muted' }, state.providerId ? `Connected as ${state.providerId}` : 'Your account is connected.'),
        el('button', {
          class: 'ui-button danger', type: 'button', id: 'ui-disconnect', disabled: Boolean(busy),
          onclick: () => act('Disconnecting…', async () => {
            await invoke('uninstallIntegration', type, {});
            return { kind: 'ok', lines: [`Disconnected from ${name}.`] };
          }),
        }, busy === 'Disconnecting…' ? busy : 'Disconnect')));
    }
    if (isConnected && !adding) {
      account.append(el('div', { class: 'ui-actions' },
        el('button', {
          class: 'ui-button secondary', type: 'button', id: 'ui-add-account', disabled: Boolean(busy),
          onclick: () => { adding = true; notice = null; render(); },
        }, 'Connect another account')));
    }
    if (!isConnected || adding) {
      if (!isConnected && state.credentialStatus === 'INVALID') {
        account.append(el('div', { class: 'banner error' }, `The connected ${name} account stopped working. Connect it again.`));
      }
      if (!isConnected && config.overview) account.append(overview(config.overview));
      if (adding) account.append(el('h2', {}, 'Another account'));
      // para's /sdk/integrations says how each integration connects and what it asks first.
      const kind = integration.connectKind || (integration.authenticationType === 'oauth' ? 'oauth' : 'fields');
      const before = integration.connectFields
        || (integration.customIntegration && integration.customIntegration.inputFields) || [];
      for (const input of before) account.append(preInput(input));
      account.append(el('div', { class: 'ui-actions' },
        el('button', {
          class: 'ui-button', type: 'button', id: 'ui-connect', disabled: Boolean(busy),
          onclick: () => (kind === 'oauth' ? signIn(integration, type, before) : connectWithValues(integration, type, before)),
        }, busy === SIGNING_IN || busy === CONNECTING ? busy : adding ? `Connect another ${name} account` : `Connect ${name}`),
        adding ? el('button', {
          class: 'ui-button secondary', type: 'button', id: 'ui-cancel-add', disabled: Boolean(busy),
          onclick: () => { adding = false; preValues = {}; render(); },
        }, 'Cancel') : null));
    }
    parts.push(account);

    if (isConnected) {
      const inputs = ((config.sharedMeta || {}).inputs) || [];
      if (inputs.length > 0) {
        const form = el('form', {
          class: 'ui-section', id: 'ui-settings', novalidate: true,
          onsubmit: (event) => {
            event.preventDefault();
            saveSettings(inputs, '', (values) => invoke('updateIntegrationUserSettings', type, values), 'Settings saved.');
          },
        }, el('h2', {}, 'Settings'), inputs.map((input) => field(input, (state.sharedSettings || {})[input.id], '')),
        el('div', { class: 'ui-actions' },
          el('button', { class: 'ui-button', type: 'submit', disabled: Boolean(busy) }, busy === 'Saving…' ? busy : 'Save settings')));
        parts.push(form);
      }
      const meta = config.workflowMeta || {};
      // Hidden workflows are in the list (the SDK's hiddenWorkflows) but not shown.
      const workflows = (integration.workflows || []).filter((w) => !(meta[w.id] && meta[w.id].hidden));
      if (workflows.length > 0) {
        const section = el('div', { class: 'ui-section', id: 'ui-workflows' }, el('h2', {}, 'Workflows'));
        for (const workflow of workflows) {
          const settings = (state.workflowSettings || {})[workflow.id];
          const enabled = settings ? settings.enabled === true : false;
          const info = meta[workflow.id] && meta[workflow.id].infoText;
          const inputs = (meta[workflow.id] && meta[workflow.id].inputs) || [];
          const row = el('div', { class: 'ui-workflow-item' });
          row.append(el('label', { class: 'ui-workflow' },
            el('input', {
              type: 'checkbox', checked: enabled, disabled: Boolean(busy), 'data-workflow': workflow.id,
              onchange: (event) => {
                const on = event.target.checked;
                act(on ? 'Enabling…' : 'Disabling…', async () => {
                  await invoke(on ? 'enableWorkflow' : 'disableWorkflow', workflow.id, {});
                  workflowChanged(integration, type, workflow.id, { enabled: on });
                  return null;
                });
              },
            }),
            el('div', { class: 'body' }, el('strong', {}, workflow.description || workflow.id), info ? el('p', {}, info) : null)));
          // An enabled workflow's own settings, saved with updateWorkflowUserSettings.
          if (enabled && inputs.length > 0) {
            const values = (settings && settings.settings) || {};
            row.append(el('form', {
              class: 'ui-workflow-settings', 'data-workflow-settings': workflow.id, novalidate: true,
              onsubmit: (event) => {
                event.preventDefault();
                saveSettings(inputs, workflow.id, async (values) => {
                  const result = await invoke('updateWorkflowUserSettings', type, workflow.id, values);
                  if (!(result && result.errors && result.errors.length > 0)) {
                    workflowChanged(integration, type, workflow.id, { settings: values });
                  }
                  return result;
                },
                  `Settings of “${workflow.description || workflow.id}” saved.`);
              },
            }, inputs.map((input) => field(input, values[input.id], workflow.id)),
            el('div', { class: 'ui-actions' },
              el('button', { class: 'ui-button secondary', type: 'submit', disabled: Boolean(busy) }, 'Save workflow settings'))));
          }
          section.append(row);
        }
        parts.push(section);
      }
    }
    root.replaceChildren(...parts);
  }
})();
