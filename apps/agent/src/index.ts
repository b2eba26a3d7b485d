export { Agent } from './agent.js';
export type { AgentOptions } from './agent.js';
