import { defineConfig } from "vitest/config";

// Tauri loads the dev server from a fixed address (devUrl) and the build from dist/.
export default defineConfig({
  clearScreen: false,
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  server: {
    port: 1420,
    strictPort: true,
    watch: { ignored: ["**/src-tauri/**"] },
  },
  build: {
    outDir: "dist",
    target: "es2022",
  },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
