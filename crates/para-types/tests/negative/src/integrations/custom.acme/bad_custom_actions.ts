import { Workflow } from '@useparagon/core';
import { ICustomAcmeIntegration } from '@useparagon/integrations/custom.acme';

export default class extends Workflow<ICustomAcmeIntegration> {
  define(integration: ICustomAcmeIntegration) {
    const step = integration.actions.createRecord({}); // error
    return this.register({ step });
  }
  name = 'Custom';
  readonly id = '00000000-0000-4000-8000-0000000000ae';
}
