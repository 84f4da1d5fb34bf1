import {
  ConditionalStep,
  CronStep,
  DelayStep,
  EndpointStep,
  FanOutStep,
  FunctionStep,
  RequestStep,
  ResponseStep,
  Workflow,
} from '@useparagon/core';
import { IContext } from '@useparagon/core/execution';
import { createConfigInputs } from '@useparagon/core/integration';
import * as Operators from '@useparagon/core/operator';
import { ISlackIntegration, InputResultMap, createInputs } from '@useparagon/integrations/slack';

const settings = createInputs({ flag: { id: 'x', title: 'Flag', type: 'boolean' } });
const configInputs = createConfigInputs({ host: { id: 'y', title: 'Host', type: 'text' } });

export default class extends Workflow<ISlackIntegration, any, InputResultMap> {
  define(integration: ISlackIntegration, context: IContext<InputResultMap>) {
    const trigger = new EndpointStep({ bodyValidations: [{ key: 'a', dataType: 'STRNG' }] }); // error
    const cron = new CronStep({ timeZone: 'UTC' }); // error
    const wait = new DelayStep({ value: 5, unit: 'WEEKS' }); // error
    const check = new ConditionalStep({ if: 'x > 1' }); // error
    const fan = new FanOutStep({ iterator: trigger.output.request.body.items });
    const fn = new FunctionStep({ code: (p: { count: number }) => p.count, parameters: { title: 'x' } }); // error
    const request = new RequestStep({ url: 'https://example.com', method: 'FETCH' }); // error
    const respond = new ResponseStep({ statusCode: '200' }); // error
    const flag: string = context.getInput(settings.flag); // error
    const byName = context.getInput('flag'); // error
    const config = context.getInput(configInputs.host); // error
    const cond = Operators.StringContains(trigger.output.request.body.name); // error
    const notAnOperator = Operators.StringIncludes(trigger.output.request.body.name, 'x'); // error
    trigger.nextStep('fn'); // error
    fan.branch(fn).nextStep(check.whenTrue(wait).whenFalse(request));
    trigger.nextStep(fan).nextStep(respond);
    void [cron, flag, byName, config, cond, notAnOperator];
    return this.register({ trigger, fan, fn, check, wait, request, respond });
  }

  name = 'Bad steps';
  readonly id = '00000000-0000-4000-8000-0000000000ac';
}

export class NoName extends Workflow { // error
  define() {
    return this.register({});
  }
  readonly id = '00000000-0000-4000-8000-0000000000ad';
}
