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
    chunkSizeWarningLimit: 2048, // Swagger UI's bundle is ~1.5 MB, loaded by the reference page only
    rollupOptions: {
      // Two pages: the chat UI and the API reference (/reference, Swagger UI over /openapi.json).
      input: { main: "index.html", reference: "reference.html" },
    },
  },
});
