'use strict'
// npm test runs `eslint lib test` (scripts/test.js): the TypeScript rules
// typescript-eslint recommends, on the library and its tests.
const tseslint = require('typescript-eslint')

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'build/**', 'target/**', 'prebuilds/**', 'test/conformance/tlsfuzzer/**', 'bench/**', 'scripts/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      // Unused arguments keep callback shapes readable when prefixed with _.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
)
