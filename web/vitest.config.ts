import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    alias: {
      // Same mapping as tsconfig "paths": Label Studio's module path for ProviderConfig.
      "@humansignal/app-common/blocks/StorageProviderForm/types/provider": fileURLToPath(
        new URL("./src/types/provider.ts", import.meta.url),
      ),
    },
  },
  test: {
    include: ["tests/**/*.test.ts"],
    environment: "node",
  },
});
