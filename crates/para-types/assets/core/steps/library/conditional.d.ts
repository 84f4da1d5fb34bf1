// @useparagon/core/steps/library/conditional — type declarations written by para
// (`para install`); do not edit.

export type { Condition, DateTimeValue, StringList } from '../../operator';
export type { ConditionalStepOptions } from '../../index';

/** A condition as a conditional step stores it (alias of `Condition`). */
export type ConditionalInput = import('../../operator').Condition;
