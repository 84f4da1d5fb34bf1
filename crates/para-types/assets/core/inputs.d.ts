// @useparagon/core/inputs — type declarations written by para (`para install`); do not edit.

declare const userInputBrand: unique symbol;
declare const configInputBrand: unique symbol;

/** User Setting types every integration accepts. */
export type BaseInputType =
  | 'text'
  | 'number'
  | 'boolean'
  | 'password'
  | 'field_mapping'
  | 'custom_dropdown';

/** Fields every User Setting has. */
export interface InputFields {
  /** A stable UUID: it keys the values users store. Never change it. */
  id: string;
  /** Shown to users in the Connect Portal. */
  title: string;
  /** Users must fill it in before enabling the integration. */
  required?: boolean;
  tooltip?: string;
  placeholder?: string;
}

export interface TextInput extends InputFields {
  type: 'text' | 'password';
  defaultValue?: string;
}

export interface NumberInput extends InputFields {
  type: 'number';
  defaultValue?: number;
}

export interface BooleanInput extends InputFields {
  type: 'boolean';
  defaultValue?: boolean;
}

export interface FieldMapping {
  /** What users see. */
  label: string;
  /** The key in the mapping's value (default: derived from the label). */
  value?: string;
}

export interface FieldMappingInput extends InputFields {
  type: 'field_mapping';
  /** Let users pick the integration's object and fields. */
  useDynamicMapper?: boolean;
  fieldMappings?: readonly FieldMapping[];
  defaultValue?: { readonly [field: string]: unknown };
}

export interface DropdownOption {
  label: string;
  value: string;
}

export interface CustomDropdownInput extends InputFields {
  type: 'custom_dropdown';
  customDropdownOptions?: readonly DropdownOption[];
  defaultValue?: string;
}

/** An integration-specific type (`channel`, `folder`, `record_type`…) from para's catalog. */
export interface IntegrationInput<T extends string> extends InputFields {
  type: T;
  defaultValue?: unknown;
}

/** One User Setting: base types, plus the integration's own types `Extra`. */
export type InputDefinition<Extra extends string = never> =
  | TextInput
  | NumberInput
  | BooleanInput
  | FieldMappingInput
  | CustomDropdownInput
  | ([Extra] extends [never] ? never : IntegrationInput<Extra>);

/** A User Setting as `createInputs` returns it: pass it to `context.getInput(…)`. */
export type UserInput<T extends { type: string } = { type: string }> = T & {
  readonly [userInputBrand]: true;
};

/** What `createInputs` returns. */
export type UserInputs<T> = { readonly [K in keyof T]: T[K] & { readonly [userInputBrand]: true } };

/** Any set of User Settings (a workflow's `inputs`). */
export type UserInputMap = { readonly [key: string]: UserInput };

/** A config input as `createConfigInputs` returns it: use it in templates (`${inputs.region}`). */
export type ConfigInputs<T> = {
  readonly [K in keyof T]: T[K] & { readonly [configInputBrand]: true };
};

/** The value a User Setting of each base type holds when a workflow runs. */
export interface DefaultInputToResultMap {
  text: string;
  password: string;
  number: number;
  boolean: boolean;
  custom_dropdown: string;
  /** The mapped fields by their `value` (or label). */
  field_mapping: { readonly [field: string]: any };
}

/** The value an input of type `T` holds, given a result map `S`. */
export type InputResult<S, T> = 0 extends 1 & S ? any : T extends keyof S ? S[T] : any;

/** The result map of an integration without integration-specific types. */
export type InputResultMap = DefaultInputToResultMap;

/**
 * Declares User Settings: `{ key: { id, title, type, … } }`. The object key is the code handle
 * (`context.getInput(inputs.key)`); `id` is the stable identifier.
 */
export declare function createInputs<const T extends { readonly [key: string]: InputDefinition }>(
  inputs: T,
): UserInputs<T>;
