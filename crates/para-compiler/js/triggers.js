// @useparagon/core/triggers/customTrigger, as provided by `para`: the base classes of custom
// webhook trigger files (the rest of the module is types).
export { ManualWebhookTrigger, ApiEndpointWebhookTrigger } from '@useparagon/core';
