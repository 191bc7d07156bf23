import { defineConfig, type Plugin } from "vite";

/** The chat page's JavaScript budget, gzipped (issue 17): what a user downloads before the first answer. */
const JS_BUDGET_BYTES = 250 * 1024;

async function gzippedSize(code: string): Promise<number> {
  const stream = new Blob([code]).stream().pipeThrough(new CompressionStream("gzip"));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

/**
 * Print the gzipped size of the JavaScript the chat page loads (its entry and every chunk it imports, statically or
 * on demand) and fail the build above the budget. The API reference page (Swagger UI) is not the app: not counted.
 */
function jsBudget(entryName: string, budget: number): Plugin {
  return {
    name: "lisa-js-budget",
    apply: "build",
    async generateBundle(_options, bundle) {
      const chunks = new Map(Object.values(bundle).flatMap((c) => (c.type === "chunk" ? [[c.fileName, c]] : [])));
      const entry = [...chunks.values()].find((c) => c.isEntry && c.name === entryName);
      if (!entry) this.error(`no entry chunk named ${entryName}`);
      const seen = new Set<string>();
      const pending = [entry.fileName];
      while (pending.length) {
        const name = pending.pop()!;
        if (seen.has(name)) continue;
        seen.add(name);
        const chunk = chunks.get(name);
        if (chunk) pending.push(...chunk.imports, ...chunk.dynamicImports);
      }
      let total = 0;
      for (const name of seen) total += await gzippedSize(chunks.get(name)?.code ?? "");
      const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
      const line = `chat UI JavaScript: ${kb(total)} gzipped in ${seen.size} files (budget ${kb(budget)})`;
      if (total > budget) this.error(`${line}: over the budget`);
      console.log(`\n${line}`);
    },
  };
}

// Everything the UI needs is bundled into dist/: no CDN, no network at run time.
export default defineConfig({
  base: "./", // relative: the same build works at a host's root and under API Gateway's stage path
  plugins: [jsBudget("main", JS_BUDGET_BYTES)],
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
