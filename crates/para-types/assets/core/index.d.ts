// @useparagon/core — type declarations written by para (`para install`); do not edit.
//
// A workflow's `define()` runs once, when `para build` compiles the project: steps record what
// they are asked to do, and values that exist only when the workflow runs (step outputs, user
// settings, the connected user) are references. Their types below describe the value the
// workflow sees at run time.

import type { Condition } from './operator';
import type { CustomTriggerClass } from './triggers/customTrigger';
import type { DefaultInputToResultMap, InputResult, UserInput, UserInputMap } from './inputs';
import type { IEventInit } from './event';
import type { IConnectUser } from './user';
import type { Credentials } from './integration';

export type { Condition } from './operator';
export type { IEventInit } from './event';
export type { IPersona } from './persona';
export type { IConnectUser, IPermissionContext } from './user';
export type { ICustomIntegration } from './integration';

// ------------------------------------------------------------------------------------- values

/** A value of any shape that exists only when the workflow runs (a step's output, a request body). */
export type RuntimeValue = any;

/** HTTP methods a request step may use. */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS';

/** The context a workflow's `define()` receives. */
export interface IContext<S = DefaultInputToResultMap> {
  /**
   * The connected user's value of a User Setting (from this integration's `inputs.ts` or the
   * workflow's `inputs`). At build time this is a reference that steps can read.
   */
  getInput<T extends UserInput>(input: T): InputResult<S, T['type']>;
  /** An environment secret of the para server, by name (e.g. `'API_KEY'`). */
  getEnvironmentSecret(name: string): string;
}

/** What an API resource's `get…Config(context)` methods receive. */
export interface IResourceContext extends Credentials {
  /** A value the user typed for this resource (named in its authorization config). */
  getInput(key: string): string;
}

// -------------------------------------------------------------------------------------- steps

/** Options every step accepts. */
export interface StepOptions {
  /** Shown in run history and the dashboard. */
  description?: string;
  /** Retry the step on failure (with backoff) before failing the run. */
  autoRetry?: boolean;
  /** Carry on with the next step when this one fails. */
  continueWorkflowOnError?: boolean;
}

/**
 * What every step has. Not exported as a value: create steps with their classes
 * (`new FunctionStep(…)`) or `integration.actions.<name>(…)`.
 */
declare abstract class StepBase<O = RuntimeValue> {
  /** The step's output when the workflow runs: read it in later steps (`step.output.result`). */
  readonly output: O;
  /**
   * Runs `next` (and the rest of its chain) after this chain. Returns this step, whose chain now
   * ends where `next`'s ends: `a.nextStep(b).nextStep(c)` runs a → b → c.
   */
  nextStep(next: StepBase<unknown>): this;
  /** A synonym of `nextStep`. */
  next(next: StepBase<unknown>): this;
}

/** Any step (the type of a `register()` entry, a branch, a helper's return value). */
export type Step<O = RuntimeValue> = StepBase<O>;

/** An output whose known keys are typed and whose other keys are run-time values. */
export type Output<T> = T & { readonly [key: string]: RuntimeValue };

/** The answer of a `RequestStep` or `IntegrationRequestStep`. */
export type RequestOutput = Output<{
  readonly response: {
    readonly statusCode: number;
    readonly headers: { readonly [name: string]: RuntimeValue };
    readonly body: RuntimeValue;
  };
}>;

/** A value, or a function of the page token that gives it (pagination). */
export type PageTokenFunction<T> = T | ((pageToken: string) => T);

/** How a request step fetches the next page. */
export interface Pagination {
  /** The next page's token, read from the step's output: `step.output.response.body.next`. */
  pageToken: unknown;
  /** Where each page's items are in the output; pages are concatenated. */
  outputPath?: unknown;
  /** Stop when this condition holds (default: when `pageToken` is empty). */
  stopCondition?: Condition;
}

/** Request body encodings. */
export type BodyType = 'json' | 'form-data' | 'x-www-form-urlencoded' | 'xml' | 'raw';

/** Authorization of a `RequestStep` (an `IntegrationRequestStep` uses the user's credentials). */
export type RequestAuthorization =
  | { type: 'bearer'; token: string }
  | { type: 'basic'; username: string; password: string }
  | { type: 'basic'; userName: string; password: string }
  | { type: 'auth_header'; headers: { [name: string]: string } }
  | { type: 'query_params'; params: { [name: string]: string } }
  | { type: 'none' };

export interface RequestStepOptions<Self = RequestStep> extends StepOptions {
  /** The URL (for an `IntegrationRequestStep`, a path below the integration's API base). */
  url: PageTokenFunction<string>;
  /** Default `GET`. */
  method?: HttpMethod | Lowercase<HttpMethod>;
  /** Query parameters. */
  params?: PageTokenFunction<{ [name: string]: unknown }>;
  headers?: PageTokenFunction<{ [name: string]: unknown }>;
  body?: PageTokenFunction<unknown>;
  /** Default `json`. */
  bodyType?: BodyType;
  authorization?: RequestAuthorization;
  /** Fetch every page: `pagination: (step) => ({ pageToken, outputPath, stopCondition })`. */
  pagination?: (step: Self) => Pagination;
}

/** An HTTP request to any URL. Output: `output.response.{statusCode, headers, body}`. */
export declare class RequestStep extends StepBase<RequestOutput> {
  constructor(options: RequestStepOptions<RequestStep>);
}

/**
 * A request to the integration's API with the connected user's credentials: `url` is relative to
 * the integration's API base. Output: `output.response.{statusCode, headers, body}`.
 */
export declare class IntegrationRequestStep extends StepBase<RequestOutput> {
  constructor(options: RequestStepOptions<IntegrationRequestStep>);
}

/** Libraries a function step's code receives as its second argument. */
export interface FunctionLibraries {
  readonly [name: string]: RuntimeValue;
}

export interface FunctionStepOptions<P, R> extends StepOptions {
  /**
   * Runs when the workflow runs (not at build time), with `parameters` resolved. May be async;
   * its (awaited) return value is `output.result`.
   */
  code: (parameters: NoInfer<P>, libraries: FunctionLibraries) => R;
  /**
   * The values `code` receives: step outputs, user settings, literals. Their type is what `code`'s
   * `parameters` is checked against (extra keys are allowed).
   */
  parameters?: P;
}

/** Runs JavaScript. Output: `output.result`, what `code` returns. */
export declare class FunctionStep<P = RuntimeValue, R = RuntimeValue> extends StepBase<
  Output<{ readonly result: Awaited<R> }>
> {
  constructor(options: FunctionStepOptions<P, R>);
}

export interface ConditionalStepOptions extends StepOptions {
  /** Built with `@useparagon/core/operator`: `Operators.And(…)`, `Operators.StringContains(…)`. */
  if: Condition;
}

/** Branches: `.whenTrue(chain)` and `.whenFalse(chain)`; `nextStep` continues after either. */
export declare class ConditionalStep extends StepBase {
  constructor(options: ConditionalStepOptions);
  whenTrue(step: StepBase<unknown>): this;
  whenFalse(step: StepBase<unknown>): this;
}

export interface FanOutStepOptions extends StepOptions {
  /** The array to iterate over. */
  iterator: unknown;
}

/** Runs `.branch(chain)` once per item; inside it, `output.instance` is the current item. */
export declare class FanOutStep extends StepBase<Output<{ readonly instance: RuntimeValue }>> {
  constructor(options: FanOutStepOptions);
  branch(step: StepBase<unknown>): this;
}

export type DelayUnit = 'SECONDS' | 'MINUTES' | 'HOURS' | 'DAYS';

export interface DelayStepOptions extends StepOptions {
  value: number;
  unit: DelayUnit;
}

/** Waits before the next step. */
export declare class DelayStep extends StepBase {
  constructor(options: DelayStepOptions);
}

export interface ResponseStepOptions extends StepOptions {
  /** Default 200. */
  statusCode?: number;
  /** Default `JSON`. */
  responseType?: 'JSON' | 'FILE';
  body?: unknown;
}

/** Answers the request that triggered the workflow (only after an `EndpointStep`). */
export declare class ResponseStep extends StepBase {
  constructor(options: ResponseStepOptions);
}

// ----------------------------------------------------------------------------------- triggers

export interface Validation {
  readonly key: string;
  readonly required?: boolean;
}

export type ValidationDataType = 'STRING' | 'NUMBER' | 'BOOLEAN' | 'OBJECT' | 'ARRAY';

export interface BodyValidation extends Validation {
  readonly dataType?: ValidationDataType;
}

export interface EndpointStepOptions<
  Params extends readonly Validation[] = readonly Validation[],
  Headers extends readonly Validation[] = readonly Validation[],
  Body extends readonly BodyValidation[] = readonly BodyValidation[],
> extends StepOptions {
  /** Accept body keys that are not validated. */
  allowArbitraryPayload?: boolean;
  paramValidations?: Params;
  headerValidations?: Headers;
  bodyValidations?: Body;
}

/** Validated keys typed as run-time values, other keys too. */
export type ValidatedFields<V extends readonly Validation[]> = Output<{
  readonly [K in V[number]['key']]: RuntimeValue;
}>;

/**
 * Triggers the workflow by an HTTP request to its endpoint.
 * Output: `output.request.{headers, body, params}`.
 */
export declare class EndpointStep<
  Params extends readonly Validation[] = readonly Validation[],
  Headers extends readonly Validation[] = readonly Validation[],
  Body extends readonly BodyValidation[] = readonly BodyValidation[],
> extends StepBase<
  Output<{
    readonly request: {
      readonly params: ValidatedFields<Params>;
      readonly headers: ValidatedFields<Headers>;
      readonly body: ValidatedFields<Body>;
    };
  }>
> {
  constructor(options?: EndpointStepOptions<Params, Headers, Body>);
}

/** Triggers the workflow when the App Event is sent; the output is the event's payload. */
export declare class EventStep<T = RuntimeValue> extends StepBase<Output<T>> {
  constructor(event: IEventInit<T>, options?: StepOptions);
}

export interface CronStepOptions extends StepOptions {
  /** Six fields, seconds first: `'0 0 8 * * 1-5'` is 8:00 on weekdays. */
  cron: string;
  /** An IANA time zone; default `UTC`. */
  timeZone?: string;
}

/** Triggers the workflow on a schedule. */
export declare class CronStep extends StepBase {
  constructor(options: CronStepOptions);
}

/** Triggers the workflow when a user enables the integration. */
export declare class IntegrationEnabledStep extends StepBase {
  constructor(options?: StepOptions);
}

/**
 * Triggers the workflow with one of the integration's custom webhook triggers: the class a file
 * of the integration's `triggers/` folder exports.
 */
export declare class CustomTriggerStep extends StepBase {
  constructor(trigger: CustomTriggerClass, options?: StepOptions);
}

/** A trigger not chosen yet: the workflow never runs. */
export declare class UnselectedStep extends StepBase {
  constructor(options?: StepOptions);
}

/** The step `integration.actions.<name>(…)` creates. */
export type IntegrationActionStep = StepBase;

/** The step `integration.triggers.<name>(…)` creates. */
export type IntegrationTriggerStep = StepBase;

// ---------------------------------------------------------------------------------- workflows

/** What `integration` is in `define()` for an integration with catalog actions and triggers. */
export interface IIntegration {
  readonly actions: object;
  readonly triggers: object;
}

/** Steps by stable name, as passed to `register()`. */
export type StepMap = { readonly [name: string]: StepBase<unknown> };

/** A workflow class, as listed in `workflowDisplayOrder`. */
export type WorkflowClass = abstract new () => Workflow<RuntimeValue, RuntimeValue, RuntimeValue>;

/**
 * A workflow: `export default class extends Workflow<IIntegration, IPersona, InputResultMap>`.
 *
 * - `I`: what `integration` is in `define()` (e.g. `ISalesforceIntegration`).
 * - `P`: the connected user's metadata (`IPersona<typeof personaMeta>`).
 * - `S`: maps User Setting types to their values (`InputResultMap`).
 */
export declare abstract class Workflow<I = RuntimeValue, P = RuntimeValue, S = RuntimeValue> {
  /**
   * Builds the workflow's steps, links them (`trigger.nextStep(step)`) and returns
   * `this.register({ trigger, step, … })`.
   */
  abstract define(integration: I, context: IContext<S>, connectUser: IConnectUser<P>): StepMap;
  /** Names the workflow's steps; the keys are stable step names. */
  register<T extends StepMap>(steps: T): T;
  /** Which users may use the workflow; `undefined` for everyone. */
  definePermissions(connectUser: IConnectUser<P>): Condition | undefined;
  /** A stable UUID: it identifies the workflow to users' settings and run history. */
  abstract readonly id: string;
  /** Shown in the Connect Portal. */
  abstract name: string;
  description?: string;
  /** Workflow-level User Settings: `createInputs({ … })`. */
  inputs?: UserInputMap;
  /** Enabled for users when they connect. */
  defaultEnabled?: boolean;
  /** Not shown in the Connect Portal. */
  hidden?: boolean;
}

// ---------------------------------------------------------------------------------- resources

declare abstract class APIResource {
  /** A stable UUID. */
  abstract readonly id: string;
  abstract name: string;
}

/** An API resource authorised per connected user (`get…Config(context)` methods). */
export declare abstract class UserLevelAPIResource extends APIResource {}

/** An API resource authorised once for the whole app. */
export declare abstract class AppLevelAPIResource extends APIResource {}

/** A workflow execution. */
export declare class Execution {
  private constructor();
}

/** The operators of `@useparagon/core/operator`, as one object. */
export declare const Operators: typeof import('./operator');
