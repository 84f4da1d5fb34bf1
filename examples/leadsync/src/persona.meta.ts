// What Leadsync attaches to each connected user (`connectUser.meta`).
export default {
  workspaceId: 'ws_123',
  plan: 'growth',
};
