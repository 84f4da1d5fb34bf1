// Control: the forms Paragon's own generated workflows use, so tsc must report nothing here.
import { RequestStep, Workflow } from '@useparagon/core';
import { ISalesforceIntegration } from '@useparagon/types/salesforce';

export default class extends Workflow<ISalesforceIntegration> {
  define(integration: ISalesforceIntegration) {
    const triggerStep = integration.withTrigger(integration.triggers.SALESFORCE_TRIGGER_RECORD_CREATED, {
      recordType: 'Contact',
    });
    const byIntent = integration.actions.salesforceWriteSoqlQuery({ query: 'SELECT Id FROM Lead' });
    const send = new RequestStep({ method: 'POST', url: 'https://api.example.com/contacts', body: { contact: triggerStep.output.result } });
    triggerStep.nextStep(byIntent).nextStep(send);
    return this.register({ triggerStep, byIntent, send });
  }

  name = 'Paragon names';
  readonly id = '00000000-0000-4000-8000-0000000000ac';
}
