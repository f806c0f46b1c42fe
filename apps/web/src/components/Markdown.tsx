import { type ComponentProps, isValidElement, memo, type ReactNode, useRef, useState } from "react";
import ReactMarkdown, { type Components, type Options } from "react-markdown";
import rehypeHighlight from "rehype-highlight";
import remarkGfm from "remark-gfm";
import { splitMarkdownBlocks } from "../markdown-blocks";

function languageOf(children: ReactNode): string | undefined {
  if (!isValidElement<{ className?: string }>(children)) return undefined;
  return /language-([\w+#-]+)/.exec(children.props.className ?? "")?.[1];
}

async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context, or permission refused: the old way.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

/** A fenced code block: its language, a Copy button, and the highlighted code. */
function CodeBlock({ children, node: _node, ...rest }: ComponentProps<"pre"> & { node?: unknown }) {
  const ref = useRef<HTMLPreElement>(null);
  const [copied, setCopied] = useState(false);
  const language = languageOf(children);
  const copy = async () => {
    await copyText(ref.current?.textContent ?? "");
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return (
    <div className="code-block">
      <div className="code-head">
        <span className="code-lang">{language ?? "code"}</span>
        <button type="button" className="link-button" onClick={copy} aria-label={`Copy ${language ?? ""} code`}>
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      <pre ref={ref} {...rest}>
        {children}
      </pre>
    </div>
  );
}

const components: Components = {
  pre: CodeBlock,
  a: ({ node: _node, ...props }) => <a {...props} target="_blank" rel="noopener noreferrer" />,
};

const remarkPlugins: Options["remarkPlugins"] = [remarkGfm];
// Only fenced blocks that name their language are highlighted (no guessing: stable while streaming).
const rehypePlugins: Options["rehypePlugins"] = [[rehypeHighlight, { detect: false }]];

/** One top-level block; memoized by its text, so finished blocks are not parsed again while the answer grows. */
const MarkdownBlock = memo(function MarkdownBlock({ text }: { text: string }) {
  return (
    <ReactMarkdown remarkPlugins={remarkPlugins} rehypePlugins={rehypePlugins} components={components}>
      {text}
    </ReactMarkdown>
  );
});

/** Markdown with GFM (tables, task lists, strikethrough) and highlighted, copyable code. Raw HTML is not rendered. */
export const Markdown = memo(function Markdown({ text }: { text: string }) {
  const blocks = splitMarkdownBlocks(text);
  return (
    <div className="markdown">
      {blocks.map((block, index) => (
        // Blocks only grow at the end, so the index is a stable key.
        // biome-ignore lint/suspicious/noArrayIndexKey: blocks are append-only while streaming
        <MarkdownBlock key={index} text={block} />
      ))}
    </div>
  );
});

export { copyText };
