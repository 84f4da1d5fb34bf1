import { IIntegrationConfig } from '@useparagon/core/integration';

import ImportNewRecords from './workflows/importNewRecords';

const config: IIntegrationConfig = {
  description: 'Bring new Salesforce leads and contacts into your Leadsync inbox.',
  overviewText: `Leadsync checks your Salesforce account every minute for new records of the
type you choose and adds each one to your inbox, filling Leadsync's fields from the Salesforce
fields you map.`,
  showWatermark: false,
  workflowDisplayOrder: [ImportNewRecords],
};

export default config;
