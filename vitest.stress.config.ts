import { defineConfig } from 'vitest/config';

/** npm run test:stress: the soak and the long crash loop (not part of npm test; about 10 minutes). */
export default defineConfig({
  test: {
    include: ['test/stress/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 1_800_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
