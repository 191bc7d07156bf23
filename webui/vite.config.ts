import { defineConfig } from "vite";

// Everything the UI needs is bundled into dist/: no CDN, no network at run time.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: true,
    target: "es2022",
  },
});
