// @useparagon/core/integration, as provided by `para`.
export { createConfigInputs, credentials } from '@useparagon/core';
