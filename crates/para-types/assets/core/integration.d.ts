// @useparagon/core/integration — type declarations written by para (`para install`); do not edit.

import type { WorkflowClass } from './index';
import type { ConfigInputs, InputDefinition } from './inputs';

export type { IIntegration } from './index';

/**
 * The connected user's credentials, for templates in a custom integration's config:
 * `${credentials.oauthAccessToken}`, `${credentials.savedCredentials.sessionToken}`.
 */
export interface Credentials {
  /** The OAuth access token (`oauth`, `oauth_client_credential`, `ropc_app`). */
  readonly oauthAccessToken: string;
  readonly oauthRefreshToken: string;
  /** What the user typed as username (`basic`, `ropc_app`). */
  readonly username: string;
  /** What the user typed as password (`basic`, `ropc_app`). */
  readonly password: string;
  /** Values saved from the token response (`requestOptions.saveCredentialsOptions`). */
  readonly savedCredentials: { readonly [name: string]: string };
  /** The token request's answer: `tokenRequest.response.<field>`. */
  readonly tokenRequest: { readonly response: { readonly [field: string]: any } };
}

/** Template handle for the connected user's credentials. */
export declare const credentials: Credentials;

/**
 * Declares a custom integration's config inputs (asked when it is set up), used in its config's
 * templates: `export const inputs = createConfigInputs({ region: { id, title, type: 'text' } })`
 * then `` apiBaseUrl: `https://${inputs.region}.api.example.com` ``. An input written with
 * `postOAuth: true` is asked after the OAuth sign-in instead of before (`oauth` integrations).
 */
export declare function createConfigInputs<
  const T extends { readonly [key: string]: InputDefinition },
>(inputs: T): ConfigInputs<T>;

/** `config.ts` of every integration. */
export interface IIntegrationConfig {
  /** A sentence shown under the integration's name. */
  description?: string;
  /** Markdown shown in the Connect Portal. */
  overviewText?: string;
  showWatermark?: boolean;
  /** The integration's workflow classes, in the order the Connect Portal shows them. */
  workflowDisplayOrder?: readonly WorkflowClass[];
  active?: boolean;
}

/** How requests to a custom integration's API are authorised. */
export type CustomAuthorization =
  | { type: 'bearer'; token: string }
  | { type: 'basic'; userName: string; password: string }
  | { type: 'basic'; username: string; password: string }
  | { type: 'auth_header'; headers: { readonly [name: string]: string } }
  | { type: 'query_params'; params: { readonly [name: string]: string } }
  | { type: 'query_params'; queryParams: { readonly [name: string]: string } }
  | { type: 'none' };

/** Where the connected account's id and email are read after connecting. */
/**
 * How to read the connected account's profile after connecting. Paragon's generated configs
 * write the request form (`strategy: 'HTTP'`, `url`, `method`, …); the older form names an
 * `endpoint` and the paths of the id, email and name in its answer. Recorded as written.
 */
export interface UserProfileConfig {
  strategy?: 'HTTP' | (string & {});
  /** The URL (or a path below `apiBaseUrl`) requested; `''` when not filled in yet. */
  url?: string;
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  params?: { readonly [name: string]: unknown };
  headers?: { readonly [name: string]: unknown };
  body?: unknown;
  bodyType?: 'json' | 'form-data' | 'x-www-form-urlencoded' | (string & {});
  /** Whether connecting fails when the request does. */
  requireSuccess?: boolean;
  /** A path below `apiBaseUrl` (or a URL) to `GET`. */
  endpoint?: string;
  /** Dotted path to the account id in the answer. */
  idPath?: string;
  /** Dotted path to the account email in the answer. */
  emailPath?: string;
  namePath?: string;
}

/** Extra headers, body fields or query parameters of an auth request. */
export interface AuthRequestOptions {
  headers?: { readonly [name: string]: string };
  body?: { readonly [name: string]: unknown };
  params?: { readonly [name: string]: string };
}

export interface CustomRequestOptions {
  /** Added to the token request. */
  accessTokenOptions?: AuthRequestOptions;
  /** Values saved from the token answer: `{ sessionToken: `${credentials.tokenRequest.response.session}` }`. */
  saveCredentialsOptions?: { readonly [name: string]: string };
  /** Added to the authorization redirect. */
  authorizationCodeOptions?: AuthRequestOptions;
}

/** The authentication types of custom integrations. */
export type AuthenticationType = 'oauth' | 'basic' | 'oauth_client_credential' | 'ropc_app';

interface CustomIntegrationConfigFields extends IIntegrationConfig {
  /** The integration's name; its slug (lower-cased, only a-z and 0-9) must be the folder's suffix. */
  name: string;
  /** `#RRGGBB`. */
  accentColor?: string;
  authenticationType: AuthenticationType;
  /** OAuth authorize URL (`oauth`). */
  authorizationUrl?: string;
  /** OAuth token URL (`oauth`, `oauth_client_credential`, `ropc_app`). */
  accessTokenUrl?: string;
  /** Space-separated scopes. */
  scopes?: string;
  /** Send the client id and secret in the token request body. */
  includeClientIdAndSecrets?: boolean;
  /** PKCE (S256) in the code exchange. */
  usePKCEInCodeExchange?: boolean;
  /** Base URL of the API; request steps' URLs are relative to it. */
  apiBaseUrl: string;
  /** `GET` after connecting, to check the credentials: a path below `apiBaseUrl`. */
  testEndpointPath?: string;
  authorization: CustomAuthorization;
  userProfileConfig?: UserProfileConfig;
  requestOptions?: CustomRequestOptions;
}

/** `config.ts` of a custom integration (`src/integrations/custom.<slug>/`). */
export type ICustomIntegrationConfig =
  | (CustomIntegrationConfigFields & {
      authenticationType: 'oauth';
      authorizationUrl: string;
      accessTokenUrl: string;
    })
  | (CustomIntegrationConfigFields & {
      authenticationType: 'oauth_client_credential' | 'ropc_app';
      accessTokenUrl: string;
    })
  | (CustomIntegrationConfigFields & { authenticationType: 'basic' });

/** What `integration` is in a custom integration's workflows: requests go through `IntegrationRequestStep`. */
export interface ICustomIntegration {
  /** Custom integrations have no catalog actions: use an `IntegrationRequestStep`. */
  readonly actions: { readonly [name: string]: never };
  /** Custom integrations have no catalog triggers. */
  readonly triggers: { readonly [name: string]: never };
}
