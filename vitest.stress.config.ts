import { defineConfig } from 'vitest/config';

/** npm run test:stress: the soak and the long crash loop (not part of npm test; about 10 minutes). */
export default defineConfig({
  test: {
    include: ['test/stress/**/*.test.ts'],
    // Installs (as root on Debian) or names the packages the tests need.
    globalSetup: ['test/setup/packages.ts'],
    fileParallelism: false,
    testTimeout: 1_800_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
