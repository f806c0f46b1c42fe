import pino, { type Logger } from "pino";

/**
 * Structured JSON logs with the node name on every line. Tokens and message text are never logged at info
 * level: callers log ids (sessionId, streamId), and the redaction list is a second line of defence.
 */
export function createLogger(node: string, level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { node },
    redact: {
      paths: ["token", "*.token", "authorization", "*.authorization", "message", "*.content"],
      censor: "[redacted]",
    },
  });
}
export type { Logger };
