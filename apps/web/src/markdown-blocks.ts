/**
 * Splits Markdown into top-level blocks so a streaming answer re-renders only its last block per chunk: the blocks
 * before it are finished text and keep their rendered output (each is memoized by its string). Without this a long
 * answer costs a full Markdown parse per chunk, quadratic over the answer.
 *
 * A block ends at a blank line outside a fenced code block when the next line is not indented (an indented line
 * continues a list item or belongs to the block above). Joining the blocks with "\n\n" renders like the whole text
 * for ordinary answers; reference-style link definitions apply only within their block.
 */
export function splitMarkdownBlocks(text: string): string[] {
  const lines = text.split("\n");
  const blocks: string[] = [];
  let current: string[] = [];
  let fence: { char: string; length: number } | undefined;
  let blankPending = false;

  const flush = () => {
    if (current.length > 0) blocks.push(current.join("\n"));
    current = [];
  };

  for (const line of lines) {
    const fenceMatch = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      current.push(line);
      if (fenceMatch && fenceMatch[1]![0] === fence.char && fenceMatch[1]!.length >= fence.length) {
        if (line.trim().replace(/[`~]/g, "") === "") fence = undefined;
      }
      continue;
    }
    if (line.trim() === "") {
      if (current.length > 0) blankPending = true;
      continue;
    }
    if (blankPending) {
      blankPending = false;
      if (/^\s/.test(line)) current.push("");
      else flush();
    }
    if (fenceMatch) fence = { char: fenceMatch[1]![0]!, length: fenceMatch[1]!.length };
    current.push(line);
  }
  flush();
  return blocks;
}
