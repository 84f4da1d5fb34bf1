// @useparagon/core/persona — type declarations written by para (`para install`); do not edit.

/**
 * The metadata your app attaches to a connected user: `IPersona<typeof personaMeta>`, where
 * `personaMeta` is the default export of `src/persona.meta.ts`.
 */
export type IPersona<T extends object = { readonly [key: string]: any }> = T;
