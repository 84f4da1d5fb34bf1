// @useparagon/core/inputs and @useparagon/integrations/<key>, as provided by `para`.
export { createInputs } from '@useparagon/core';
