// The console's build: React with Vite, one hashed bundle under assets/ that the erpos
// binary embeds (applications/src/console.rs) and serves at `/`. `npm run dev` proxies the
// API to a running `erpos demo` on :8080, so the console can be worked on without
// rebuilding the binary.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // One chunk per page would need a loader; the console is small enough for one bundle.
    chunkSizeWarningLimit: 2048,
  },
  server: {
    proxy: {
      "/api": { target: "http://127.0.0.1:8080", ws: true },
    },
  },
});
