// Control: everything here is correct, so tsc must report nothing in this file.
import { ConditionalStep, EventStep, FunctionStep, IntegrationRequestStep, Workflow } from '@useparagon/core';
import { IEventInit } from '@useparagon/core/event';
import { IContext } from '@useparagon/core/execution';
import * as Operators from '@useparagon/core/operator';
import { IConnectUser } from '@useparagon/core/user';
import { ISalesforceIntegration, InputResultMap, createInputs } from '@useparagon/integrations/salesforce';

const shared = createInputs({
  objectType: { id: '00000000-0000-4000-8000-000000000001', title: 'Object', type: 'record_type', required: true },
  limit: { id: '00000000-0000-4000-8000-000000000002', title: 'Limit', type: 'number', defaultValue: 10 },
});

const event: IEventInit<{ title: string; count: number }> = { name: 'Thing', schema: { title: 't', count: 1 } };

export default class extends Workflow<ISalesforceIntegration, { plan: string }, InputResultMap> {
  define(integration: ISalesforceIntegration, context: IContext<InputResultMap>, connectUser: IConnectUser<{ plan: string }>) {
    const trigger = new EventStep(event);
    const limit: number = context.getInput(shared.limit);
    const title: string = trigger.output.title;
    const create = integration.actions.createRecord(
      { recordType: `${context.getInput(shared.objectType)}`, 'field-Subject': title, 'field-Count': limit },
      { autoRetry: true },
    );
    const query = integration.actions.writeSoqlQuery({ query: 'SELECT Id FROM Task' });
    const page = new IntegrationRequestStep({
      method: 'GET',
      url: (pageToken) => `/query?cursor=${pageToken}`,
      pagination: (step) => ({
        pageToken: step.output.response.body.next,
        stopCondition: Operators.DoesNotExist(step.output.response.body.next),
      }),
    });
    const fn = new FunctionStep({
      code: (parameters) => ({ total: parameters.count * 2, plan: parameters.plan }),
      parameters: { count: trigger.output.count, plan: connectUser.meta.plan },
    });
    const check = new ConditionalStep({
      if: Operators.And(Operators.NumberGreaterThan(fn.output.result.total, 3), Operators.StringIsIn(connectUser.meta.plan, ['pro', 'team'])),
    });
    const anything = query.output.records?.[0]?.['Id'];
    trigger.nextStep(create).nextStep(page).nextStep(fn).nextStep(check.whenTrue(query));
    void anything;
    return this.register({ trigger, create, page, fn, check, query });
  }

  name = 'Good';
  readonly id = '00000000-0000-4000-8000-0000000000aa';
}
