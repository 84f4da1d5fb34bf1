// @useparagon/core/triggers/customTrigger — type declarations written by para (`para install`);
// do not edit.
//
// A custom webhook trigger is a file `src/integrations/<key>/triggers/<name>.ts` whose default
// export extends `ManualWebhookTrigger` (users paste the trigger's webhook URL into the
// provider) or `ApiEndpointWebhookTrigger` (the webhook is created through the provider's API).
// A workflow starts from it with `new CustomTriggerStep(TheTriggerClass)`.

import type { Condition } from '../operator';

/** `'USER'`: one webhook URL per connected user; `'APP'`: one webhook for the whole app. */
export type TriggerLevel = 'USER' | 'APP';

/** The request a webhook receives, as the trigger's `filters` and `mapPayload` read it. */
export interface IWebhookRequest {
  /** `POST`, `PUT`… */
  readonly method: string;
  /** Header names in lower case: `request.headers['x-event']`. */
  readonly headers: { readonly [name: string]: string };
  readonly query: { readonly [name: string]: string };
  /** The body: parsed JSON, or form fields. */
  readonly body: any;
}

/** What `mapPayload.providerId` receives. */
export interface IProviderIdContext {
  readonly webhookRequest: IWebhookRequest;
}

/** What the other hooks receive. `S` maps User Setting types to their values. */
export interface ITriggerContext<S = unknown> {
  readonly webhookRequest: IWebhookRequest;
  readonly settings?: S;
}
export type ISetupTriggerResponseContext<S = unknown> = ITriggerContext<S>;
export type IPayloadValidationContext<S = unknown> = ITriggerContext<S>;
export type ICreateTriggerContext<S = unknown> = ITriggerContext<S>;
export type ITeardownTriggerContext<S = unknown> = ITriggerContext<S>;
export type IProfileConfigContext<S = unknown> = ITriggerContext<S>;

/** How the trigger answers the provider's setup request. */
export type CustomTriggerSetupResponse =
  | { type: 'RESPOND_WITH_200' }
  | { type: string; [option: string]: unknown };

/** How incoming requests are verified. */
export type TriggerPayloadValidationOption = { scheme: 'NONE' } | { scheme: string; [option: string]: unknown };

/** The request that creates (or removes) the webhook at the provider. */
export interface ICreateTriggerSetup {
  method: string;
  url: string;
  bodyType?: string;
  body?: unknown;
  params?: { [key: string]: unknown };
  headers?: { [key: string]: unknown };
}
export type ITeardownTriggerSetup = ICreateTriggerSetup;

declare abstract class CustomTriggerBase<L extends TriggerLevel = TriggerLevel, _C = 'default', S = unknown> {
  /** A stable UUID: the trigger's webhook URLs and workflows name the trigger by it. */
  abstract readonly id: string;
  /** `'USER'` or `'APP'`. */
  readonly triggerLevel?: L;
  /** Shown by the SDK's `getTriggers` and the dashboard. */
  abstract name: string;
  description?: string;
  /** For an app-level trigger: the provider's account id read from the request, matched to the connected user. */
  mapPayload?: { providerId: (context: IProviderIdContext) => string } | undefined;
  /**
   * Which requests start runs: a condition over the request, built with the operators of
   * `@useparagon/core/operator`. Without it, every request does.
   */
  filters?(request: IWebhookRequest): Condition;
  /** An example request body, for test data. */
  samplePayload?: unknown;
  setupResponse?(context: ISetupTriggerResponseContext<S>): CustomTriggerSetupResponse;
  validatePayload?(context: IPayloadValidationContext<S>): TriggerPayloadValidationOption;
}

/** A webhook whose URL users paste into the provider. */
export declare abstract class ManualWebhookTrigger<
  L extends TriggerLevel = TriggerLevel,
  C = 'default',
  S = unknown,
> extends CustomTriggerBase<L, C, S> {}

/** A webhook created through the provider's webhook API. */
export declare abstract class ApiEndpointWebhookTrigger<
  L extends TriggerLevel = TriggerLevel,
  C = 'default',
  S = unknown,
> extends CustomTriggerBase<L, C, S> {
  create?(context: ICreateTriggerContext<S>): ICreateTriggerSetup;
  teardown?(context: ITeardownTriggerContext<S>): ITeardownTriggerSetup;
}

/** A custom trigger class, as `CustomTriggerStep` takes it. */
export type CustomTriggerClass = abstract new () => CustomTriggerBase<TriggerLevel, unknown, any>;
