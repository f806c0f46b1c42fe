/** A random id for client-side things (clientMessageId, local items): crypto.randomUUID where the page is a secure
 * context, getRandomValues elsewhere (plain http on a LAN address). */
export function newId(prefix = ""): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return prefix + c.randomUUID().replace(/-/g, "");
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
