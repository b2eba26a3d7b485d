// Shared vitest project settings: workspace packages resolve to their TypeScript sources.
import { defineProject } from 'vitest/config';

const conditions = ['@tracelab/source', 'module', 'node', 'development|production'];

export default defineProject({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    environment: 'node',
    passWithNoTests: true,
  },
});
