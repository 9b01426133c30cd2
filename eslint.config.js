// ESLint flat config: the recommended JavaScript and typescript-eslint rules over every source,
// test, bench and script; browser globals for the dashboard's own scripts. `npm run lint`
// (part of `npm test`) must report nothing.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const unusedVars = ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }];

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'data/', 'test-artifacts/', '.ci/out/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      'no-unused-vars': 'off',
      '@typescript-eslint/no-unused-vars': unusedVars,
    },
  },
  {
    // Tests poke at JSON bodies of every shape; the product's code keeps the rule.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['src/http/dashboard/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  // Layout is Prettier's: no ESLint rule argues with it.
  prettier,
);
