// The bundle goes into the Python package, which serves it at "/" (tmserver/webapp.py).
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "../tmserver/webapp",
    emptyOutDir: true,
    // one file per entry keeps the committed bundle small and its diff readable
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
    reportCompressedSize: false,
  },
  // `npm run dev` serves the sources and sends API calls to a running tm_server
  server: {
    proxy: {
      "/api": process.env.TM_SERVER ?? "http://127.0.0.1:5002",
      "/auth": process.env.TM_SERVER ?? "http://127.0.0.1:5002",
    },
  },
});
