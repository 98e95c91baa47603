import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The page calls the API on its own origin (gRPC-web paths start with "/tradingmesh.").
// In development, Vite's server proxies those paths to a dev stack's edge:
//   TM_EDGE_URL=http://127.0.0.1:18010 npm run dev   (see `tradingmesh status --json`).
const edge = process.env["TM_EDGE_URL"] ?? "http://127.0.0.1:17010";
const proxy = { "^/tradingmesh\\.": { target: edge, changeOrigin: false } };

export default defineConfig({
  // Relative asset URLs: the built page works wherever dist/ is served (at "/" by Envoy).
  base: "./",
  plugins: [react()],
  server: { host: "127.0.0.1", port: Number(process.env["TM_WEB_PORT"] ?? 17080), strictPort: true, proxy },
  preview: { host: "127.0.0.1", port: Number(process.env["TM_WEB_PORT"] ?? 17080), strictPort: true, proxy },
  build: { outDir: "dist", sourcemap: false, chunkSizeWarningLimit: 600 },
});
