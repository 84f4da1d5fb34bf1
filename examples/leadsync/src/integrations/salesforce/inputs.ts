import { createInputs } from '@useparagon/integrations/salesforce';

const integrationInputs = createInputs({
  leadMapping: {
    id: '6a1f0c3e-2d4b-4e5a-8b9c-7d6e5f4a3b21',
    title: 'Which Salesforce records become leads, and their fields',
    type: 'field_mapping',
    required: true,
    tooltip: 'Choose the Salesforce object (Lead or Contact) and the field for each Leadsync field',
    useDynamicMapper: false,
    fieldMappings: [
      { label: 'Email', value: 'email' },
      { label: 'Full name', value: 'name' },
      { label: 'Company', value: 'company' },
    ],
  },
});

export default integrationInputs;
