// The console builds to dist/ with fixed file names (index.html,
// console.js, console.css): the api embeds exactly these three files
// (api/src/console.rs) and serves them with an ETag, so no name carries a hash.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Images and fonts are inlined; there is no other asset to serve.
    assetsInlineLimit: 100_000,
    modulePreload: false,
    rolldownOptions: {
      output: {
        entryFileNames: "console.js",
        assetFileNames: "console[extname]",
        codeSplitting: false,
      },
    },
  },
});
