import { IIntegrationConfig, ICustomIntegrationConfig, credentials } from '@useparagon/core/integration';

export const missingAuthorizationUrl: ICustomIntegrationConfig = { // error
  name: 'Acme',
  authenticationType: 'oauth',
  accessTokenUrl: 'https://acme.example/token',
  apiBaseUrl: 'https://acme.example/api',
  authorization: { type: 'bearer', token: `${credentials.oauthAccessToken}` },
};

export const unknownAuthType: ICustomIntegrationConfig = {
  name: 'Acme',
  authenticationType: 'apikey', // error
  apiBaseUrl: 'https://acme.example/api',
  authorization: { type: 'none' },
};

export const bearerWithoutToken: ICustomIntegrationConfig = {
  name: 'Acme',
  authenticationType: 'basic',
  apiBaseUrl: 'https://acme.example/api',
  authorization: { type: 'bearer' }, // error
};

export const wrongToken = `${credentials.accessToken}`; // error

export const displayOrder: IIntegrationConfig = {
  workflowDisplayOrder: ['first'], // error
};
