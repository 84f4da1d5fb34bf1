import { ConditionalStep, FunctionStep, RequestStep, Workflow } from '@useparagon/core';
import { IContext } from '@useparagon/core/execution';
import * as Operators from '@useparagon/core/operator';
import { IPersona } from '@useparagon/core/persona';
import { IConnectUser } from '@useparagon/core/user';
import {
  ISalesforceIntegration,
  InputResultMap,
  createInputs,
} from '@useparagon/integrations/salesforce';

import personaMeta from '../../../persona.meta';
import sharedInputs from '../inputs';

/**
 * Polls Salesforce for new records of the object the user mapped, maps each one's fields to a
 * Leadsync lead with the user's field mapping, and adds it to the user's inbox.
 */
export default class extends Workflow<
  ISalesforceIntegration,
  IPersona<typeof personaMeta>,
  InputResultMap
> {
  define(
    integration: ISalesforceIntegration,
    context: IContext<InputResultMap>,
    connectUser: IConnectUser<IPersona<typeof personaMeta>>,
  ) {
    const mapping = context.getInput(sharedInputs.leadMapping);

    // A catalog polling trigger: one run per record that was not there at the previous poll.
    const newRecord = integration.triggers.recordCreated({
      recordType: `${mapping.record_type}`,
    });

    const toLead = new FunctionStep({
      description: 'Map the record to a lead',
      code: function toLead(parameters: {
        record: Record<string, unknown>;
        mapping: Record<string, string>;
      }) {
        const field = (name: string) => {
          const source = parameters.mapping[name];
          const value = source ? parameters.record[source] : undefined;
          return typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
        };
        return {
          email: field('email'),
          name: field('name'),
          company: field('company'),
          salesforceId: parameters.record['Id'],
        };
      },
      parameters: { record: newRecord.output.result, mapping },
    });

    const hasEmail = new ConditionalStep({
      description: 'Only records with an email',
      if: Operators.IsNotNull(toLead.output.result.email),
    });

    const addLead = new RequestStep({
      description: 'Add the lead to the inbox',
      autoRetry: true,
      method: 'POST',
      url: `https://api.leadsync.example/v1/workspaces/${connectUser.meta.workspaceId}/leads`,
      authorization: {
        type: 'bearer',
        token: context.getEnvironmentSecret('LEADSYNC_API_KEY'),
      },
      body: {
        lead: toLead.output.result,
        source: 'salesforce',
        connectedUser: connectUser.userId,
      },
      bodyType: 'json',
    });

    newRecord.nextStep(toLead).nextStep(hasEmail.whenTrue(addLead));
    return this.register({ newRecord, toLead, hasEmail, addLead });
  }

  name = 'Import new records as leads';
  description = 'Every new Salesforce record of the type you map becomes a Leadsync lead.';
  inputs = createInputs({});
  defaultEnabled = true;
  hidden = false;
  readonly id = '2c4e6a8b-0d1f-4a3c-9e5b-7a9c1e3f5b7d';
}
