import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The example builds against the kit's source (clients/typescript/src) as checked in, so it
// always runs the kit of this commit. An app of your own would `npm install` the kit instead.
const kit = fileURLToPath(new URL("../../clients/typescript", import.meta.url));

export default defineConfig({
  resolve: {
    alias: { "@authgate/client": `${kit}/src/index.ts` },
  },
  server: {
    host: "localhost",
    port: 5173,
    strictPort: true,
    fs: { allow: [".", kit] },
  },
  preview: { host: "localhost", port: 4173, strictPort: true },
  build: { sourcemap: true },
});
