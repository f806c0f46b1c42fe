import { describe, expect, it } from "vitest";
import { splitMarkdownBlocks } from "./markdown-blocks";

describe("splitMarkdownBlocks", () => {
  it("splits paragraphs at blank lines", () => {
    expect(splitMarkdownBlocks("one\ntwo\n\nthree\n\n\nfour")).toEqual(["one\ntwo", "three", "four"]);
  });

  it("keeps a fenced code block whole, blank lines included, even while it is still open", () => {
    const text = "Intro\n\n```ts\nconst a = 1;\n\nconst b = 2;\n```\n\nAfter";
    expect(splitMarkdownBlocks(text)).toEqual(["Intro", "```ts\nconst a = 1;\n\nconst b = 2;\n```", "After"]);
    expect(splitMarkdownBlocks("```py\nx = 1\n\ny")).toEqual(["```py\nx = 1\n\ny"]);
    expect(splitMarkdownBlocks("~~~\n```\n\n~~~\n\nz")).toEqual(["~~~\n```\n\n~~~", "z"]);
  });

  it("keeps indented continuation lines with their list item", () => {
    expect(splitMarkdownBlocks("- a\n\n  more of a\n- b\n\nnext")).toEqual(["- a\n\n  more of a\n- b", "next"]);
  });

  it("is stable for the finished part while text is appended (the earlier blocks keep their strings)", () => {
    const a = splitMarkdownBlocks("# Title\n\nFirst paragraph.\n\nSecond par");
    const b = splitMarkdownBlocks("# Title\n\nFirst paragraph.\n\nSecond paragraph grows");
    expect(b.slice(0, 2)).toEqual(a.slice(0, 2));
    expect(splitMarkdownBlocks("")).toEqual([]);
  });
});
