import { ErrorCode } from "@chatgrid/protocol";
import type { Context } from "hono";
import type { z } from "zod";
import { apiError } from "./errors";

/** Reads and validates a JSON body; a Response (400) when it is not JSON or does not match the schema. */
export async function readJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S> | Response> {
  let body: unknown;
  try {
    body = await c.req.json();
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
