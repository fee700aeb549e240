import { defineConfig } from 'vitest/config';

// Unit tests of the JupyterLab extension (`jlpm test`); the browser tests are in tests/ui
// (pytest + playwright). happy-dom gives the DOM that Lumino and the views need; a spec file
// that needs none can say `// @vitest-environment node` at its top.
export default defineConfig({
  test: {
    include: ['labextension/test/**/*.spec.ts'],
    environment: 'happy-dom',
    setupFiles: ['labextension/test/setup.ts'],
    restoreMocks: true,
    unstubGlobals: true,
    server: {
      deps: {
        // ESM with extensionless imports (bundler style): Vite resolves them, Node cannot.
        inline: [/@jupyter\/web-components/, /@microsoft\/fast-/]
      }
    }
  }
});
