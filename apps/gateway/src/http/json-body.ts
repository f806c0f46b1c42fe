import { readBodyText } from "@chatgrid/broker";
import { ErrorCode, LIMITS } from "@chatgrid/protocol";
import type { Context } from "hono";
import type { z } from "zod";
import { apiError } from "./errors";

/** The 413 of a body over LIMITS.maxBodyBytes, by its declared length (app.ts) or its bytes (readJson). */
export const bodyTooLarge = (c: Context) =>
  apiError(c, 413, ErrorCode.payloadTooLarge, `bodies are at most ${LIMITS.maxBodyBytes} bytes`);

/**
 * Reads (at most LIMITS.maxBodyBytes, straight from the Node request: readBodyText) and validates a JSON body; a
 * Response when it is too large (413), cut off, not JSON or does not match the schema (400).
 */
export async function readJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S> | Response> {
  const text = await readBodyText(c, LIMITS.maxBodyBytes);
  if (!text.ok) {
    return text.reason === "too_large"
      ? bodyTooLarge(c)
      : apiError(c, 400, ErrorCode.badRequest, "the body ended before its length");
  }
  let body: unknown;
  try {
    body = JSON.parse(text.text);
  } catch {
    return apiError(c, 400, ErrorCode.badRequest, "body is not valid JSON");
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join(".") || "body";
    return apiError(c, 400, ErrorCode.badRequest, `${where}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}
