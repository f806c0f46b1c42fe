import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HostFile, hostFileProvider } from "./host-file";

// The provider's functions run as Pulumi's dynamic provider would call them, on a real directory.
describe("HostFile's provider, on a real directory", () => {
  let dir: string;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("create makes the directories and writes the file 0644; update rewrites it in place; delete removes it", async () => {
    dir = await mkdtemp(join(tmpdir(), "chatgrid-host-file-"));
    const path = join(dir, "stack", "nginx", "entry.conf");
    const created = await hostFileProvider.create({ path, content: "one\n" });
    expect(created).toEqual({ id: path, outs: { path, content: "one\n" } });
    expect(await readFile(path, "utf8")).toBe("one\n");
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    const { ino } = await stat(join(dir, "stack", "nginx"));

    const updated = await hostFileProvider.update!(path, { path, content: "one\n" }, { path, content: "two\n" });
    expect(updated).toEqual({ outs: { path, content: "two\n" } });
    expect(await readFile(path, "utf8")).toBe("two\n");
    // The directory a container bind-mounts is the same one (a new directory would not be seen through the mount),
    // and no temporary file is left beside the file.
    expect((await stat(join(dir, "stack", "nginx"))).ino).toBe(ino);
    expect(await readdir(join(dir, "stack", "nginx"))).toEqual(["entry.conf"]);

    await hostFileProvider.delete!(path, { path, content: "two\n" });
    expect(await readdir(join(dir, "stack", "nginx"))).toEqual([]);
    // Deleting a file someone already removed is not an error (destroy after a manual clean-up).
    await expect(hostFileProvider.delete!(path, { path, content: "two\n" })).resolves.toBeUndefined();
  });

  it("diff: new content is an update, a new path a replacement, the same inputs no change", async () => {
    const olds = { path: "/a/entry.conf", content: "x" };
    expect(await hostFileProvider.diff!("id", olds, { ...olds })).toEqual({ changes: false, replaces: [] });
    expect(await hostFileProvider.diff!("id", olds, { ...olds, content: "y" })).toEqual({
      changes: true,
      replaces: [],
    });
    expect(await hostFileProvider.diff!("id", olds, { ...olds, path: "/b/entry.conf" })).toEqual({
      changes: true,
      replaces: ["path"],
    });
  });

  it("a relative path is refused before anything is registered", () => {
    expect(() => new HostFile("f", { path: "nginx/entry.conf", content: "" })).toThrow(
      'HostFile f: path must be absolute, got "nginx/entry.conf"',
    );
  });
});
