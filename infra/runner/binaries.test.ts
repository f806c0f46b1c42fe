import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { binaryPath, ensureBinaries, hasBinary } from "./binaries";

const MISSING = "surely-not-a-binary-xyz";

describe("binaries", () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.CHATGRID_NO_INSTALL;
    process.env.CHATGRID_NO_INSTALL = "1";
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.CHATGRID_NO_INSTALL;
    else process.env.CHATGRID_NO_INSTALL = saved;
  });

  it("hasBinary finds sh and not a made-up name", () => {
    expect(hasBinary("sh")).toBe(true);
    expect(hasBinary(MISSING)).toBe(false);
  });

  it("binaryPath resolves sh to an absolute path", () => {
    expect(binaryPath("sh")).toMatch(/^\/.*\/sh$/);
  });

  it("ensureBinaries passes (and logs nothing) when everything is there", () => {
    const lines: string[] = [];
    expect(() => ensureBinaries(["sh"], (line) => lines.push(line))).not.toThrow();
    expect(() => ensureBinaries([], (line) => lines.push(line))).not.toThrow();
    expect(lines).toEqual([]);
  });

  it("with CHATGRID_NO_INSTALL=1 a missing binary throws the exact apt-get command and installs nothing", () => {
    const lines: string[] = [];
    let message = "";
    try {
      ensureBinaries(["sh", MISSING], (line) => lines.push(line));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(MISSING);
    expect(message).toContain(`apt-get install -y ${MISSING}`);
    expect(message).not.toMatch(/install -y[^\n]*\bsh\b/);
    // No install was attempted (it would have logged first).
    expect(lines).toEqual([]);
  });

  it("names the Debian package, not the binary, when they differ (java → default-jre-headless)", () => {
    if (hasBinary("java")) return expect(() => ensureBinaries(["java"], () => undefined)).not.toThrow();
    expect(() => ensureBinaries(["java"], () => undefined)).toThrow(/apt-get install -y default-jre-headless/);
  });
});
