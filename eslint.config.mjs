import nx from '@nx/eslint-plugin';
import prettier from 'eslint-config-prettier';

// One tag per row of the layer table in ARCHITECTURE.md: a package may import its own row or below.
const rows = ['0', '1', '2', '3', '4', '5', '6'];
const layerConstraints = rows.map((row, i) => ({
  sourceTag: `layer:${row}`,
  onlyDependOnLibsWithTags: rows.slice(0, i + 1).map((r) => `layer:${r}`),
}));

export default [
  ...nx.configs['flat/base'],
  ...nx.configs['flat/typescript'],
  prettier,
  {
    ignores: ['**/dist', '**/out-tsc', '**/node_modules', '**/testdata', 'bench-results', '.nx'],
  },
  {
    files: ['**/*.ts', '**/*.mts'],
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: true,
          allow: [],
          depConstraints: [
            ...layerConstraints,
            {
              sourceTag: 'layer:app',
              onlyDependOnLibsWithTags: ['layer:app', ...rows.map((r) => `layer:${r}`)],
            },
            { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib', 'type:app'] },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
];
