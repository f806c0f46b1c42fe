import { defineConfig } from "vite";

// No React plugin: esbuild compiles JSX with the automatic runtime; there is no fast refresh (not needed).
export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    // Markdown, GFM and highlight.js are one chunk of their own, cached across releases of the app code.
    rollupOptions: {
      onwarn(warning, warn) {
        // zod's comments that Rollup cannot place: harmless noise on every build.
        if (warning.code === "INVALID_ANNOTATION" && warning.id?.includes("node_modules")) return;
        warn(warning);
      },
      output: {
        manualChunks: (id) =>
          /node_modules\/(highlight\.js|lowlight|react-markdown|remark|rehype|micromark|mdast|hast|unified)/.test(id)
            ? "markdown"
            : undefined,
      },
    },
  },
  server: {
    // `npm run dev -w @chatgrid/web` against a running `npm start`.
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/ws": { target: "ws://127.0.0.1:8080", ws: true },
    },
  },
});
