import { defineConfig } from "vite";

// Everything the UI needs is bundled into dist/: no CDN, no network at run time.
export default defineConfig({
  base: "./", // relative: the same build works at a host's root and under API Gateway's stage path
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: true,
    target: "es2022",
  },
});
