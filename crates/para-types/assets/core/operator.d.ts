// @useparagon/core/operator — type declarations written by para (`para install`); do not edit.
//
// Operators build conditions (`ConditionalStep`'s `if`, pagination's `stopCondition`,
// `definePermissions`). The first operand is the value tested, usually a step output or a
// User Setting; combine conditions with `And` and `Or`.

declare const conditionBrand: unique symbol;

/** A condition, as the operators below build it. */
export interface Condition {
  readonly operator: string;
  readonly operands: readonly unknown[];
  readonly [conditionBrand]: true;
}

/** A list of strings, or one comma-separated string. */
export type StringList = string | readonly string[];

/** An ISO 8601 date-time, a `Date`, or milliseconds since the epoch. */
export type DateTimeValue = string | number | Date;

/** True when the value contains `search`. */
export declare function StringContains(value: unknown, search: string): Condition;
/** True when the value does not contain `search`. */
export declare function StringDoesNotContain(value: unknown, search: string): Condition;
/** True when the value equals `search`. */
export declare function StringExactlyMatches(value: unknown, search: string): Condition;
/** True when the value differs from `search`. */
export declare function StringDoesNotExactlyMatch(value: unknown, search: string): Condition;
/** True when the value is one of `search`. */
export declare function StringIsIn(value: unknown, search: StringList): Condition;
/** True when the value is none of `search`. */
export declare function StringIsNotIn(value: unknown, search: StringList): Condition;
/** True when the value starts with `search`. */
export declare function StringStartsWith(value: unknown, search: string): Condition;
/** True when the value does not start with `search`. */
export declare function StringDoesNotStartWith(value: unknown, search: string): Condition;
/** True when the value ends with `search`. */
export declare function StringEndsWith(value: unknown, search: string): Condition;
/** True when the value does not end with `search`. */
export declare function StringDoesNotEndWith(value: unknown, search: string): Condition;
/** True when the value sorts after `search`. */
export declare function StringGreaterThan(value: unknown, search: string): Condition;
/** True when the value sorts before `search`. */
export declare function StringLessThan(value: unknown, search: string): Condition;
/** True when the value is greater than `than`. */
export declare function NumberGreaterThan(value: unknown, than: number): Condition;
/** True when the value is less than `than`. */
export declare function NumberLessThan(value: unknown, than: number): Condition;
/** True when the value equals `than`. */
export declare function NumberEquals(value: unknown, than: number): Condition;
/** True when the value differs from `than`. */
export declare function NumberDoesNotEqual(value: unknown, than: number): Condition;
/** True when the value is at least `than`. */
export declare function NumberGreaterThanOrEqualTo(value: unknown, than: number): Condition;
/** True when the value is at most `than`. */
export declare function NumberLessThanOrEqualTo(value: unknown, than: number): Condition;
/** True when the date is after `than`. */
export declare function DateTimeAfter(value: unknown, than: DateTimeValue): Condition;
/** True when the date is before `than`. */
export declare function DateTimeBefore(value: unknown, than: DateTimeValue): Condition;
/** True when the date equals `than`. */
export declare function DateTimeEquals(value: unknown, than: DateTimeValue): Condition;
/** True when the value is true. */
export declare function BooleanTrue(value: unknown): Condition;
/** True when the value is false. */
export declare function BooleanFalse(value: unknown): Condition;
/** True when the value is null. */
export declare function IsNull(value: unknown): Condition;
/** True when the value is not null. */
export declare function IsNotNull(value: unknown): Condition;
/** True when the value exists (is not undefined). */
export declare function Exists(value: unknown): Condition;
/** True when the value does not exist. */
export declare function DoesNotExist(value: unknown): Condition;
/** True when the array contains `item`. */
export declare function ArrayIsIn(value: unknown, item: unknown): Condition;
/** True when the array does not contain `item`. */
export declare function ArrayIsNotIn(value: unknown, item: unknown): Condition;
/** True when the array is empty. */
export declare function ArrayIsEmpty(value: unknown): Condition;
/** True when the array is not empty. */
export declare function ArrayIsNotEmpty(value: unknown): Condition;
/** Always true (no condition). */
export declare function None(): Condition;

/** True when every condition holds. */
export declare function And(...conditions: Condition[]): Condition;
/** True when any condition holds. */
export declare function Or(...conditions: Condition[]): Condition;
