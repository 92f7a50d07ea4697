import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
    // The unit tests replace fetch, locks and channels; nothing reaches the network.
    restoreMocks: true,
  },
});
