import { z } from "zod";

/**
 * Imported first by main.tsx, before any schema is built: zod's JIT probes `new Function("")`, which the page's
 * Content-Security-Policy (script-src 'self', no 'unsafe-eval') refuses and Chromium reports as a violation. The
 * interpreted path is as correct and fast enough for the client's frames (docs/security.md "Browser").
 */
z.config({ jitless: true });
