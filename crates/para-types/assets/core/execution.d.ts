// @useparagon/core/execution — type declarations written by para (`para install`); do not edit.

export type { IContext, IResourceContext, Execution } from './index';
