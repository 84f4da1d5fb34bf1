import { CustomTriggerStep } from '@useparagon/core';
import { IWebhookRequest, ManualWebhookTrigger } from '@useparagon/core/triggers/customTrigger';

export class NoName extends ManualWebhookTrigger { // error
  readonly id = 'b0b0b0b0-0000-4000-8000-000000000001';
}

export class TeamLevel extends ManualWebhookTrigger<'TEAM'> { // error
  readonly id = 'b0b0b0b0-0000-4000-8000-000000000002';
  name = 'Team';
}

export class NotACondition extends ManualWebhookTrigger {
  readonly id = 'b0b0b0b0-0000-4000-8000-000000000003';
  name = 'Bool';
  filters(request: IWebhookRequest) { // error
    return request.method === 'POST';
  }
}

export const notATrigger = new CustomTriggerStep({ name: 'x' }); // error
