export { Agent } from './agent.js';
export type { AgentOptions, MachineOptions } from './agent.js';
