// @useparagon/core/event — type declarations written by para (`para install`); do not edit.

/**
 * An App Event (`src/events/<name>.ts`): `export default { name, schema }`. `schema` is an example
 * payload; workflows triggered by the event read its fields from the trigger's output.
 */
export interface IEventInit<T = any> {
  /** The event name your app sends. */
  name: string;
  /** An example payload (it may hold more fields than `T` names). */
  schema: T & { readonly [field: string]: unknown };
}
