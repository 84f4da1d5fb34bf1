import { EventStep, Workflow } from '@useparagon/core';
import { ISalesforceIntegration } from '@useparagon/integrations/salesforce';

const event = { name: 'Thing', schema: { title: 't' } };

export default class extends Workflow<ISalesforceIntegration> {
  define(integration: ISalesforceIntegration) {
    const trigger = new EventStep(event);
    const misspelled = integration.actions.createRecrod({ recordType: 'Task' }); // error
    const missing = integration.actions.createRecord({ 'field-Subject': 'x' }); // error
    const unknown = integration.actions.createRecord({ recordType: 'Task', subject: 'x' }); // error
    const wrongType = integration.actions.writeSoqlQuery({ query: 42 }); // error
    const noTrigger = integration.triggers.recordCreatd({ recordType: 'Task' }); // error
    const badOptions = integration.actions.writeSoqlQuery({ query: 'x' }, { retry: true }); // error
    const wrongTitle: number = trigger.output.title; // error
    trigger.nextStep(misspelled).nextStep(missing).nextStep(unknown).nextStep(wrongType).nextStep(noTrigger).nextStep(badOptions);
    void wrongTitle;
    return this.register({ trigger, misspelled, missing, unknown, wrongType, noTrigger, badOptions });
  }

  name = 'Bad actions';
  readonly id = '00000000-0000-4000-8000-0000000000ab';
}
