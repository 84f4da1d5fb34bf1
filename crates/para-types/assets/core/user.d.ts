// @useparagon/core/user — type declarations written by para (`para install`); do not edit.

/** The connected user a workflow runs for (`connectUser` in `define()`). */
export interface IConnectUser<P = any> {
  /** Your app's id of the user (the JWT's `sub`). */
  readonly userId: string;
  /** The user's account id at the integration's provider. */
  readonly providerId: string;
  /** What the provider told about the account when it was connected (e.g. `instanceUrl`). */
  readonly providerData: any;
  /** The metadata your app attached to the user (see `src/persona.meta.ts`). */
  readonly meta: P;
}

/** What `definePermissions(connectUser)` receives: the connected user, before any run. */
export type IPermissionContext<P = any> = IConnectUser<P>;
