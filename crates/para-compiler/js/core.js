// @useparagon/core, as provided by `para` while building a project.
//
// Nothing here performs I/O or computes run-time values. Project code runs once, at build time,
// and everything it declares is *recorded*: inputs, configs, steps, and references to values that
// only exist when a workflow runs (step outputs, credentials, user settings). A reference is a
// chainable handle; reading a property extends its path, and using it inside a template string
// turns it into a token that the compiler later splits back out of the string.

const REF = Symbol('para.reference');
const INPUT = Symbol('para.input');
const OPEN = '\uE000';
const CLOSE = '\uE001';
// A whole value that is a reference, as JSON.stringify writes it (through toJSON).
const BARE = '\uE002';
// Tokens are minted cheaply, as `[base index, ...path]`; `bases` holds each reference root once.
const tokens = [];
const bases = [];
const BASE_INDEX = Symbol('para.baseIndex');
// How many tokens and bases the compiler has been sent (see describeWorkflow).
let tokensSent = 0;
let basesSent = 0;

// A reference's target holds its base descriptor and, for a property read, its parent and the
// property: the path is materialised only when the reference is used. One handler serves all.
function pathOf(target) {
  const path = [];
  for (let t = target; t.parent !== null; t = t.parent) path.push(t.prop);
  return path.reverse();
}

function mint(target, prefix) {
  const base = target.base;
  let index = base[BASE_INDEX];
  if (index === undefined) {
    index = bases.length;
    bases.push(base);
    base[BASE_INDEX] = index;
  }
  const entry = pathOf(target);
  entry.unshift(index);
  tokens.push(entry);
  return prefix + (tokens.length - 1) + CLOSE;
}

function tokenDescriptor(i) {
  const entry = tokens[i];
  const base = bases[entry[0]];
  const descriptor = Object.assign({}, base);
  descriptor.path = base.path.concat(entry.slice(1));
  return descriptor;
}

function tokenFor(descriptor) {
  return mint({ base: descriptor, parent: null, prop: null }, OPEN);
}

function descriptorOf(target) {
  if (target.descriptor === null) {
    const descriptor = Object.assign({}, target.base);
    descriptor.path = target.base.path.concat(pathOf(target));
    target.descriptor = descriptor;
  }
  return target.descriptor;
}

const referenceHandler = {
  get(target, prop) {
    if (prop === REF) return descriptorOf(target);
    if (prop === Symbol.toPrimitive || prop === 'toString' || prop === 'valueOf') {
      return () => mint(target, OPEN);
    }
    if (prop === 'toJSON') {
      return () => mint(target, BARE);
    }
    if (typeof prop === 'symbol' || prop === 'then') return undefined; // never look like a promise
    return new Proxy({ base: target.base, parent: target, prop, descriptor: null }, referenceHandler);
  },
  set() {
    throw new TypeError('a reference is read-only: it stands for a value that exists only when the workflow runs');
  },
  has() {
    return false;
  },
  ownKeys() {
    return [];
  },
  getOwnPropertyDescriptor() {
    return undefined;
  },
};

function reference(descriptor) {
  return new Proxy({ base: descriptor, parent: null, prop: null, descriptor }, referenceHandler);
}

function referenceOf(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') ? value[REF] : undefined;
}

// ---------------------------------------------------------------------------------------- inputs

const inputPrototype = {
  [Symbol.toPrimitive]() {
    const meta = this[INPUT];
    return tokenFor({ kind: meta.kind, id: this.id, key: meta.key, path: [] });
  },
};

function wrapInputs(definitions, kind) {
  if (definitions === null || typeof definitions !== 'object' || Array.isArray(definitions)) {
    throw new TypeError(`${kind === 'configInput' ? 'createConfigInputs' : 'createInputs'}() takes an object of { key: { id, title, type, … } }`);
  }
  const out = {};
  for (const key of Object.keys(definitions)) {
    const definition = definitions[key];
    if (definition === null || typeof definition !== 'object') {
      out[key] = definition;
      continue;
    }
    const input = Object.assign(Object.create(inputPrototype), definition);
    Object.defineProperty(input, INPUT, { value: { kind, key }, enumerable: false });
    out[key] = input;
  }
  Object.defineProperty(out, INPUT, { value: { kind: kind + 's' }, enumerable: false });
  return out;
}

export function createInputs(definitions) {
  return wrapInputs(definitions, 'input');
}

export function createConfigInputs(definitions) {
  return wrapInputs(definitions, 'configInput');
}

export const credentials = reference({ kind: 'credential', path: [] });

// ------------------------------------------------------------------------------------- operators

function operator(name, arity) {
  return (...operands) => ({ operator: name, operands: operands.slice(0, arity) });
}

export const Operators = {};
const OPERATOR_TABLE = [
  ['StringContains', '$stringContains', 2], ['StringDoesNotContain', '$stringDoesNotContain', 2],
  ['StringExactlyMatches', '$stringExactlyMatches', 2], ['StringDoesNotExactlyMatch', '$stringDoesNotExactlyMatch', 2],
  ['StringIsIn', '$stringIsIn', 2], ['StringIsNotIn', '$stringIsNotIn', 2],
  ['StringStartsWith', '$stringStartsWith', 2], ['StringDoesNotStartWith', '$stringDoesNotStartWith', 2],
  ['StringEndsWith', '$stringEndsWith', 2], ['StringDoesNotEndWith', '$stringDoesNotEndWith', 2],
  ['StringGreaterThan', '$stringGreaterThan', 2], ['StringLessThan', '$stringLessThan', 2],
  ['NumberGreaterThan', '$numberGreaterThan', 2], ['NumberLessThan', '$numberLessThan', 2],
  ['NumberEquals', '$numberEquals', 2], ['NumberDoesNotEqual', '$numberDoesNotEqual', 2],
  ['NumberGreaterThanOrEqualTo', '$numberGreaterThanOrEqualTo', 2], ['NumberLessThanOrEqualTo', '$numberLessThanOrEqualTo', 2],
  ['DateTimeAfter', '$dateTimeAfter', 2], ['DateTimeBefore', '$dateTimeBefore', 2], ['DateTimeEquals', '$dateTimeEquals', 2],
  ['BooleanTrue', '$booleanTrue', 1], ['BooleanFalse', '$booleanFalse', 1],
  ['IsNull', '$isNull', 1], ['IsNotNull', '$isNotNull', 1], ['Exists', '$exists', 1], ['DoesNotExist', '$doesNotExist', 1],
  ['ArrayIsIn', '$arrayIsIn', 2], ['ArrayIsNotIn', '$arrayIsNotIn', 2],
  ['ArrayIsEmpty', '$arrayIsEmpty', 1], ['ArrayIsNotEmpty', '$arrayIsNotEmpty', 1],
  ['None', '$none', 0],
];
for (const [name, op, arity] of OPERATOR_TABLE) Operators[name] = operator(op, arity);
Operators.And = (...conditions) => ({ operator: '$and', operands: conditions });
Operators.Or = (...conditions) => ({ operator: '$or', operands: conditions });

// ----------------------------------------------------------------------------------------- steps
//
// Steps record their options and links. `a.nextStep(b)` links the end of a's chain to the start
// of b's chain and returns `a`, whose chain now ends where b's ends. A conditional or fan-out is a
// single element of a chain: its branches hang off it and `next` continues after them.

let stepSerial = 0;
let recording = null;

// The first frame of the current stack that is in a project file: where a step is created.
// Frames read `    at name (src/file.ts:12:5)` or `    at src/file.ts:12:5`.
function callSite() {
  // Only the innermost frames matter (at most four are ours); a short trace is much cheaper.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 8;
  const stack = new Error().stack || '';
  Error.stackTraceLimit = limit;
  let at = 0;
  for (;;) {
    const start = stack.indexOf('src/', at);
    if (start < 0) return null;
    let end = stack.indexOf('\n', start);
    if (end < 0) end = stack.length;
    if (stack.charCodeAt(end - 1) === 41) end -= 1; // ')'
    const columnColon = stack.lastIndexOf(':', end - 1);
    const lineColon = stack.lastIndexOf(':', columnColon - 1);
    if (lineColon > start) {
      const line = Number(stack.slice(lineColon + 1, columnColon));
      const column = Number(stack.slice(columnColon + 1, end));
      if (line > 0 && column > 0) return { file: stack.slice(start, lineColon), line, column };
    }
    at = start + 4;
  }
}

function problem(kind, step, detail) {
  if (recording) recording.problems.push({ kind, step: step?.__serial ?? null, detail: detail ?? null });
}

class Step {
  constructor(type, options) {
    this.__type = type;
    this.__options = options ?? {};
    this.__serial = stepSerial++;
    this.__site = recording !== null && recording.sites ? callSite() : null;
    this.__next = null;
    this.__end = this;
    this.output = reference({ kind: 'step', step: this.__serial, path: [] });
    if (recording) recording.steps.push(this);
  }
  toJSON() {
    return { '\u0000step': this.__serial };
  }
  nextStep(next) {
    if (!(next instanceof Step)) {
      problem('notAStep', this, 'nextStep');
      return this;
    }
    const end = this.__end;
    if (end.__next !== null && end.__next !== next) problem('relinked', end, next.__serial);
    end.__next = next;
    this.__end = next.__end;
    return this;
  }
  next(next) {
    return this.nextStep(next);
  }
}

export class EndpointStep extends Step { constructor(o) { super('TRIGGER/ENDPOINT', o); } }
export class EventStep extends Step { constructor(event, o) { super('TRIGGER/EVENT', { ...(o ?? {}), event }); } }
export class CronStep extends Step { constructor(o) { super('TRIGGER/CRON', o); } }
export class IntegrationEnabledStep extends Step { constructor(o) { super('TRIGGER/INTEGRATION_ENABLED', o); } }
export class CustomTriggerStep extends Step { constructor(trigger, o) { super('TRIGGER/CUSTOM', { ...(o ?? {}), trigger }); } }
export class UnselectedStep extends Step { constructor(o) { super('TRIGGER/UNSELECTED', o); } }
export class FunctionStep extends Step {
  constructor(o) {
    const options = { ...(o ?? {}) };
    if (typeof options.code === 'function') {
      options.code = { '\u0000function': { name: options.code.name || null, source: String(options.code) } };
    }
    super('ACTION/FUNCTION', options);
  }
}
export class DelayStep extends Step { constructor(o) { super('ACTION/DELAY', o); } }
export class ResponseStep extends Step { constructor(o) { super('ACTION/RESPONSE', o); } }

// `url`, `params`, `headers` and `body` may be functions of the page token, and `pagination` a
// function of the step itself: call them now with references standing for those values.
function requestOptions(step, options) {
  const o = { ...(options ?? {}) };
  const pageToken = reference({ kind: 'pageToken', path: [] });
  for (const field of ['url', 'params', 'headers', 'body']) {
    if (typeof o[field] === 'function') o[field] = o[field](pageToken);
  }
  if (typeof o.pagination === 'function') o.pagination = o.pagination(step);
  return o;
}
export class RequestStep extends Step {
  constructor(o) { super('ACTION/REQUEST', {}); this.__options = requestOptions(this, o); }
}
export class IntegrationRequestStep extends Step {
  constructor(o) { super('ACTION/INTEGRATION_REQUEST', {}); this.__options = requestOptions(this, o); }
}
export class ConditionalStep extends Step {
  constructor(o) { super('TRANSITION/IFELSE', o); this.__whenTrue = null; this.__whenFalse = null; }
  whenTrue(step) { return this.__branchTo('__whenTrue', step); }
  whenFalse(step) { return this.__branchTo('__whenFalse', step); }
  __branchTo(field, step) {
    if (!(step instanceof Step)) problem('notAStep', this, field.slice(2));
    else this[field] = step;
    return this;
  }
}
export class FanOutStep extends Step {
  constructor(o) { super('TRANSITION/MAP', o); this.__branch = null; }
  branch(step) {
    if (!(step instanceof Step)) problem('notAStep', this, 'branch');
    else this.__branch = step;
    return this;
  }
}

export class Workflow {
  register(steps) {
    if (recording) recording.registered = steps;
    return steps;
  }
  define() {
    return {};
  }
  definePermissions() {
    return undefined;
  }
}

function triggerOf(name) {
  return (parameters, options) => new Step('TRIGGER/ACTION', { ...(options ?? {}), trigger: name, parameters: parameters ?? {} });
}

// What `define(integration, context, connectUser)` receives while recording.
const integrationHandle = new Proxy(Object.create(null), {
  get(_, kind) {
    if (kind === 'actions') {
      return new Proxy(Object.create(null), {
        get: (__, name) => typeof name === 'string'
          ? (parameters, options) => new Step('ACTION/INTEGRATION_ACTION', { ...(options ?? {}), action: name, parameters: parameters ?? {} })
          : undefined,
      });
    }
    if (kind === 'triggers') {
      return new Proxy(Object.create(null), {
        get: (__, name) => typeof name === 'string' ? triggerOf(name) : undefined,
      });
    }
    if (kind === 'withTrigger') {
      // `integration.withTrigger(integration.triggers.X, parameters)`: Paragon's older form.
      return (trigger, parameters, options) => {
        if (typeof trigger === 'string') return triggerOf(trigger)(parameters, options);
        if (typeof trigger === 'function') return trigger(parameters, options);
        throw new TypeError('integration.withTrigger() takes a trigger: integration.triggers.<name>');
      };
    }
    return undefined;
  },
});

const contextHandle = {
  getInput(input) {
    const meta = input !== null && typeof input === 'object' ? input[INPUT] : undefined;
    if (!meta || meta.kind !== 'input') {
      problem('notAnInput', null, typeof input === 'string' ? input : null);
      return reference({ kind: 'input', id: null, key: typeof input === 'string' ? input : null, path: [] });
    }
    return reference({ kind: 'input', id: input.id ?? null, key: meta.key, path: [] });
  },
  getEnvironmentSecret(name) {
    return reference({ kind: 'secret', name: String(name), path: [] });
  },
};

const connectUserHandle = new Proxy(Object.create(null), {
  get(_, prop) {
    if (typeof prop !== 'string') return undefined;
    if (prop === 'meta') return reference({ kind: 'persona', path: [] });
    return reference({ kind: 'user', field: prop, path: [] });
  },
});

class APIResource {}
export class UserLevelAPIResource extends APIResource {}
export class AppLevelAPIResource extends APIResource {}
export class Execution {}

// Custom webhook triggers (`src/integrations/<key>/triggers/*.ts`, exported again by
// @useparagon/core/triggers/customTrigger): a class per trigger file. A workflow names one with
// `new CustomTriggerStep(TriggerClass)`, which records the class's id.
class CustomTrigger {}
export class ManualWebhookTrigger extends CustomTrigger {}
export class ApiEndpointWebhookTrigger extends CustomTrigger {}

// ------------------------------------------------------------------- host side (not for projects)

function isSubclassOf(value, base) {
  return typeof value === 'function' && value.prototype instanceof base;
}

function splitTokens(text) {
  const parts = [];
  let rest = text;
  for (;;) {
    const open = rest.indexOf(OPEN);
    if (open < 0) break;
    const close = rest.indexOf(CLOSE, open);
    if (close < 0) break;
    if (open > 0) parts.push(rest.slice(0, open));
    parts.push({ '\u0000ref': tokenDescriptor(Number(rest.slice(open + 1, close))) });
    rest = rest.slice(close + 1);
  }
  if (rest.length > 0) parts.push(rest);
  return parts;
}

// The `id` of a workflow or custom trigger class.
function idOf(cls) {
  const instance = new cls();
  return typeof instance.id === 'string' ? instance.id : null;
}

// Turns a recorded value into plain JSON. Special values become single-key objects whose key
// starts with NUL, which no project can write by accident: references, templates, functions,
// workflow classes.
function lower(value, seen) {
  switch (typeof value) {
    case 'undefined':
    case 'symbol':
      return undefined;
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value.toString();
    case 'string':
      return value.includes(OPEN) ? { '\u0000template': splitTokens(value) } : value;
    case 'function': {
      const ref = referenceOf(value);
      if (ref) return { '\u0000ref': ref };
      if (isSubclassOf(value, Workflow)) return { '\u0000workflow': idOf(value) };
      if (isSubclassOf(value, CustomTrigger)) return { '\u0000customTrigger': idOf(value) };
      return { '\u0000function': { name: value.name || null, source: String(value) } };
    }
    default:
      break;
  }
  if (value === null) return null;
  const ref = referenceOf(value);
  if (ref) return { '\u0000ref': ref };
  if (seen.has(value)) throw new TypeError('a value refers to itself (a circular structure), which cannot be built');
  seen.add(value);
  let out;
  if (Array.isArray(value)) {
    out = value.map((item) => {
      const lowered = lower(item, seen);
      return lowered === undefined ? null : lowered;
    });
  } else if (value instanceof Date) {
    out = value.toISOString();
  } else if (value instanceof Step) {
    out = { '\u0000step': value.__serial };
  } else {
    out = {};
    for (const key of Object.keys(value)) {
      const lowered = lower(value[key], seen);
      if (lowered !== undefined) out[key] = lowered;
    }
  }
  seen.delete(value);
  return out;
}

function lowerToJson(value) {
  return JSON.stringify(lower(value, new Set()) ?? null);
}

function resourceContext() {
  const base = reference({ kind: 'credential', path: [] });
  return new Proxy(Object.create(null), {
    get(_, prop) {
      if (prop === 'getInput') return (key) => reference({ kind: 'resourceInput', key: String(key), path: [] });
      return base[prop];
    },
  });
}

// Every step reachable from what define() created or registered, with its links.
function describeGraph(rec, file) {
  const registered = {};
  const all = new Map();
  const visit = (step) => {
    if (!(step instanceof Step) || all.has(step.__serial)) return;
    all.set(step.__serial, step);
    visit(step.__next);
    visit(step.__whenTrue);
    visit(step.__whenFalse);
    visit(step.__branch);
  };
  if (rec.registered !== null && typeof rec.registered === 'object') {
    for (const key of Object.keys(rec.registered)) {
      const step = rec.registered[key];
      if (step instanceof Step) {
        registered[key] = step.__serial;
        visit(step);
      } else {
        rec.problems.push({ kind: 'registeredNotAStep', step: null, detail: key });
      }
    }
  } else {
    rec.problems.push({ kind: 'noRegister', step: null, detail: null });
  }
  rec.steps.forEach(visit);
  const serial = (step) => (step instanceof Step ? step.__serial : null);
  const steps = [...all.values()].sort((a, b) => a.__serial - b.__serial).map((step) => ({
    serial: step.__serial,
    type: step.__type,
    site: step.__site === null ? null : step.__site.file === file ? [step.__site.line, step.__site.column] : [step.__site.file, step.__site.line, step.__site.column],
    // Options go to JSON.stringify as they are (references and steps serialise themselves); a
    // custom trigger's module may hold functions, which only lower() keeps.
    options: step.__type === 'TRIGGER/CUSTOM' ? lower(step.__options, new Set()) ?? {} : step.__options,
    next: serial(step.__next),
    whenTrue: serial(step.__whenTrue),
    whenFalse: serial(step.__whenFalse),
    branch: serial(step.__branch),
  }));
  return { registered, steps, problems: rec.problems };
}

export const __para = {
  // A module's default export and its named exports, lowered.
  describeModule(namespace) {
    const exports = {};
    for (const name of Object.keys(namespace)) {
      if (name !== 'default') exports[name] = lower(namespace[name], new Set()) ?? null;
    }
    return JSON.stringify({
      hasDefault: 'default' in namespace && namespace.default !== undefined,
      default: lower(namespace.default, new Set()) ?? null,
      exports,
    });
  },

  // A workflow file: its class's metadata and the step graph its define() records.
  // `request` is the workflow's file, or `sites:<file>` to also record where each step is created
  // (a stack trace per step: only asked for when a finding needs it).
  describeWorkflow(namespace, request) {
    const sites = request.startsWith('sites:');
    const file = sites ? request.slice(6) : request;
    const cls = namespace.default;
    if (cls === undefined) return JSON.stringify({ shape: 'missing' });
    if (!isSubclassOf(cls, Workflow)) {
      return JSON.stringify({ shape: typeof cls === 'function' ? 'notWorkflowClass' : typeof cls });
    }
    const workflow = new cls();
    const meta = {
      shape: 'workflow',
      id: lower(workflow.id, new Set()) ?? null,
      name: lower(workflow.name, new Set()) ?? null,
      description: lower(workflow.description, new Set()) ?? null,
      inputs: lower(workflow.inputs, new Set()) ?? null,
      defaultEnabled: lower(workflow.defaultEnabled, new Set()) ?? null,
      hidden: lower(workflow.hidden, new Set()) ?? null,
    };
    recording = { steps: [], registered: null, problems: [], sites };
    try {
      workflow.define(integrationHandle, contextHandle, connectUserHandle);
      meta.graph = describeGraph(recording, file);
    } finally {
      recording = null;
    }
    const permissions = workflow.definePermissions(connectUserHandle);
    meta.permissions = lower(permissions, new Set()) ?? null;
    const json = JSON.stringify(meta);
    // The references minted since the last workflow, for the compiler to resolve tokens with.
    const minted = JSON.stringify({ bases: bases.slice(basesSent), tokens: tokens.slice(tokensSent) });
    tokensSent = tokens.length;
    basesSent = bases.length;
    return minted + '\n' + json;
  },

  // A resource file: its class's metadata and each get…Config(context) result.
  describeResource(namespace) {
    const cls = namespace.default;
    if (cls === undefined) return JSON.stringify({ shape: 'missing' });
    const level = isSubclassOf(cls, UserLevelAPIResource) ? 'user' : isSubclassOf(cls, AppLevelAPIResource) ? 'app' : null;
    if (level === null) return JSON.stringify({ shape: typeof cls === 'function' ? 'notResourceClass' : typeof cls });
    const resource = new cls();
    const configs = {};
    const methods = new Set();
    for (let proto = Object.getPrototypeOf(resource); proto && proto !== APIResource.prototype; proto = Object.getPrototypeOf(proto)) {
      for (const name of Object.getOwnPropertyNames(proto)) {
        if (/^get[A-Z]\w*Config$/.test(name) && typeof resource[name] === 'function') methods.add(name);
      }
    }
    for (const name of [...methods].sort()) {
      const key = name[3].toLowerCase() + name.slice(4);
      configs[key] = lower(resource[name](resourceContext()), new Set()) ?? null;
    }
    return JSON.stringify({
      shape: 'resource',
      level,
      id: lower(resource.id, new Set()) ?? null,
      name: lower(resource.name, new Set()) ?? null,
      configs,
    });
  },

  // A custom trigger file: its class's metadata, `filters(request)` and
  // `mapPayload.providerId(context)` called with a reference standing for the request the
  // webhook will receive (`{ method, headers, query, body }`).
  describeCustomTrigger(namespace) {
    const cls = namespace.default;
    if (cls === undefined) return JSON.stringify({ shape: 'missing' });
    if (!isSubclassOf(cls, CustomTrigger)) {
      return JSON.stringify({ shape: typeof cls === 'function' ? 'notTriggerClass' : typeof cls });
    }
    const trigger = new cls();
    const request = reference({ kind: 'webhookRequest', path: [] });
    const meta = {
      shape: 'trigger',
      setup: isSubclassOf(cls, ApiEndpointWebhookTrigger) ? 'api' : 'manual',
      id: lower(trigger.id, new Set()) ?? null,
      name: lower(trigger.name, new Set()) ?? null,
      description: lower(trigger.description, new Set()) ?? null,
      triggerLevel: lower(trigger.triggerLevel, new Set()) ?? null,
      samplePayload: lower(trigger.samplePayload, new Set()) ?? null,
    };
    const filters = trigger.filters;
    meta.filters = lower(typeof filters === 'function' ? filters.call(trigger, request) : filters, new Set()) ?? null;
    const map = trigger.mapPayload;
    const providerId = map !== null && typeof map === 'object' ? map.providerId : undefined;
    meta.providerId = lower(
      typeof providerId === 'function' ? providerId.call(map, { webhookRequest: request }) : providerId,
      new Set(),
    ) ?? null;
    return JSON.stringify(meta);
  },

  lowerToJson,
};
