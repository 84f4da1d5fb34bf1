import { createInputs as baseInputs } from '@useparagon/core/inputs';
import { createInputs } from '@useparagon/integrations/salesforce';
import { createInputs as slackInputs } from '@useparagon/integrations/slack';

export const a = createInputs({
  channel: { id: 'a', title: 'Slack channel', type: 'channel' }, // error
  owner: { id: 'b', title: 'Owner', type: 'owner' },
});
export const b = baseInputs({
  record: { id: 'c', title: 'Record type', type: 'record_type' }, // error
  noId: { title: 'No id', type: 'text' }, // error
  dropdown: { id: 'd', title: 'Pick', type: 'custom_dropdown', customDropdownOptions: [{ label: 'A' }] }, // error
  count: { id: 'e', title: 'Count', type: 'number', defaultValue: 'ten' }, // error
  typo: { id: 'f', title: 'Typo', type: 'text', requried: true }, // error
});
export const c = slackInputs({
  channel: { id: 'g', title: 'Channel', type: 'channel' },
  folder: { id: 'h', title: 'Folder', type: 'record_type' }, // error
});
