// para:host — the compiler's entry points into a project's evaluated modules. Not importable by
// project code (the compiler only lets projects import relative files and @useparagon/*).
import { __para } from '@useparagon/core';

export const describeModule = __para.describeModule;
export const describeWorkflow = __para.describeWorkflow;
export const describeResource = __para.describeResource;
export const describeCustomTrigger = __para.describeCustomTrigger;
