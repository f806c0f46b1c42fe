import { CancelRequestSchema, type CancelResponse, ErrorCode } from "@chatgrid/protocol";
import { Hono } from "hono";
import type { ApiDeps, ApiEnv } from "../http/context";
import { apiError } from "../http/errors";
import { readJson } from "../http/json-body";

/** POST /api/cancel: works from any gateway; the running AI node hears it on the cancel channel. */
export function cancelRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.post("/", async (c) => {
    const body = await readJson(c, CancelRequestSchema);
    if (body instanceof Response) return body;
    const result = await deps.streams.requestCancel(body.streamId, c.get("sessionId"));
    if (result === "unknown") return apiError(c, 404, ErrorCode.notFound, "no such stream");
    const response: CancelResponse = { streamId: body.streamId, cancelled: result === "requested" };
    return c.json(response, 200);
  });
  return app;
}
