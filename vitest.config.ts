import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The soak and the long crash loop run with npm run test:stress.
    exclude: ['test/stress/**', '**/node_modules/**'],
    // Installs (as root on Debian) or names the packages the real-kernel tests need.
    globalSetup: ['test/setup/packages.ts', 'test/setup/host-shared.ts'],
    // Integration tests change kernel state (namespaces, links, rules); run files one at a time.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
