// A custom trigger as Paragon's own tools write it (every hook, most of them not compiled yet),
// and the workflow that starts from it.
import {
  ApiEndpointWebhookTrigger,
  CustomTriggerSetupResponse,
  ICreateTriggerContext,
  ICreateTriggerSetup,
  IPayloadValidationContext,
  IProviderIdContext,
  ISetupTriggerResponseContext,
  ITeardownTriggerContext,
  ITeardownTriggerSetup,
  IWebhookRequest,
  ManualWebhookTrigger,
  TriggerPayloadValidationOption,
} from '@useparagon/core/triggers/customTrigger';
import { CustomTriggerStep, FunctionStep, Workflow } from '@useparagon/core';
import * as Operators from '@useparagon/core/operator';
import { InputResultMap } from '@useparagon/integrations/hubspot';

export class ContactUpdated extends ManualWebhookTrigger<'APP', 'default', InputResultMap> {
  readonly id = '614c4451-7651-42cb-a5f3-c2b0d6162dd5';
  readonly triggerLevel = 'APP';
  name = 'Contact First Name Updated';
  description = "Triggers when contact's first name is updated";
  mapPayload = {
    providerId: (context: IProviderIdContext) => `${context.webhookRequest.body.portalId}`,
  };
  filters(request: IWebhookRequest) {
    return Operators.StringExactlyMatches(request.body.propertyName, 'firstname');
  }
  setupResponse(context: ISetupTriggerResponseContext<InputResultMap>): CustomTriggerSetupResponse {
    return { type: 'RESPOND_WITH_200' };
  }
  validatePayload(context: IPayloadValidationContext<InputResultMap>): TriggerPayloadValidationOption {
    return { scheme: 'NONE' };
  }
}

export class Created extends ApiEndpointWebhookTrigger<'USER', 'default', InputResultMap> {
  readonly id = 'ebdcafc2-000f-4925-8743-4fcd657ab310';
  readonly triggerLevel = 'USER';
  name = 'New Custom Webhook';
  description = 'Trigger from any event supported by hubspot';
  mapPayload = undefined;
  create(context: ICreateTriggerContext<InputResultMap>): ICreateTriggerSetup {
    return { method: 'POST', url: ``, bodyType: 'json', body: {}, params: {}, headers: {} };
  }
  teardown(context: ITeardownTriggerContext<InputResultMap>): ITeardownTriggerSetup {
    return { method: 'DELETE', url: ``, bodyType: 'json', body: {}, params: {}, headers: {} };
  }
}

export class Relay extends Workflow<any, any, any> {
  define() {
    const trigger = new CustomTriggerStep(ContactUpdated);
    const note = new FunctionStep({ code: () => 1, parameters: {} });
    trigger.nextStep(note);
    return this.register({ trigger, note });
  }
  name = 'Relay';
  readonly id = '3e1d2c4b-0001-4000-8000-0000000000c3';
}
