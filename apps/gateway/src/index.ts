export { buildGateway } from './app.js';
export type { Gateway, GatewayOptions } from './app.js';
