// A reader and writer for cockroachdb/datadriven files, the format of etcd-io/raft's testdata/*.txt:
// `command args` (+ optional input lines), `----`, expected output, blank line. Round-trips exactly.

/** One `key` or `key=value` or `key=(v1,v2,...)` argument of a command line. */
export interface CmdArg {
  key: string;
  /** Empty for a bare `key`; one element for `key=value`; the list for `key=(a,b)` (may be empty). */
  vals: string[];
}

export interface Directive {
  /** 1-based line number of the command line in the file, for error messages. */
  line: number;
  /** The command line exactly as written (continuations joined with their backslashes removed). */
  cmdLine: string;
  cmd: string;
  args: CmdArg[];
  /** Lines between the command line and `----`, joined with '\n' ('' when none). */
  input: string;
  /** The expected output, without its trailing newline. */
  expected: string;
}

/** Comments and blank lines are kept verbatim so that a rewrite changes only expected outputs. */
export type Chunk = { kind: 'text'; lines: string[] } | { kind: 'directive'; directive: Directive };

export class DataDrivenParseError extends Error {
  override name = 'DataDrivenParseError';
}

const SEPARATOR = '----';
/** A file larger than this is a mistake, not a scenario (and would make diffs unreadable). */
export const MAX_FILE_LINES = 200_000;

/** Splits a command line into the command and its arguments. Throws on unbalanced parentheses. */
export function parseCommandLine(cmdLine: string): { cmd: string; args: CmdArg[] } {
  const text = cmdLine.trim();
  let pos = 0;
  const skipSpaces = () => {
    while (pos < text.length && /\s/.test(text[pos])) pos++;
  };
  const readWord = (stop: RegExp) => {
    const start = pos;
    while (pos < text.length && !stop.test(text[pos])) pos++;
    return text.slice(start, pos);
  };
  const cmd = readWord(/\s/);
  if (cmd === '') throw new DataDrivenParseError(`empty command line`);
  const args: CmdArg[] = [];
  for (;;) {
    skipSpaces();
    if (pos >= text.length) break;
    const key = readWord(/[\s=]/);
    if (key === '') throw new DataDrivenParseError(`argument without a key in ${JSON.stringify(cmdLine)}`);
    if (text[pos] !== '=') {
      args.push({ key, vals: [] });
      continue;
    }
    pos++; // '='
    if (text[pos] === '(') {
      const close = text.indexOf(')', pos);
      if (close < 0)
        throw new DataDrivenParseError(`unbalanced '(' after ${key}= in ${JSON.stringify(cmdLine)}`);
      const inner = text.slice(pos + 1, close).trim();
      pos = close + 1;
      args.push({ key, vals: inner === '' ? [] : inner.split(',').map((v) => v.trim()) });
    } else {
      args.push({ key, vals: [readWord(/\s/)] });
    }
  }
  return { cmd, args };
}

/** Parses a whole file. Text outside directives (comments, blank lines) is kept as text chunks. */
export function parseDataDriven(source: string): Chunk[] {
  const body = source.endsWith('\n') ? source.slice(0, -1) : source;
  const lines = body === '' ? [] : body.split('\n');
  if (lines.length > MAX_FILE_LINES)
    throw new DataDrivenParseError(`file has ${lines.length} lines (max ${MAX_FILE_LINES})`);
  const chunks: Chunk[] = [];
  let text: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === '' || line.trimStart().startsWith('#')) {
      text.push(line);
      i++;
      continue;
    }
    if (text.length > 0) chunks.push({ kind: 'text', lines: text });
    text = [];
    const { directive, next } = parseDirective(lines, i);
    chunks.push({ kind: 'directive', directive });
    i = next;
  }
  if (text.length > 0) chunks.push({ kind: 'text', lines: text });
  return chunks;
}

function parseDirective(lines: string[], start: number): { directive: Directive; next: number } {
  let i = start;
  let cmdLine = lines[i++];
  while (cmdLine.endsWith('\\')) {
    if (i >= lines.length) throw new DataDrivenParseError(`line ${start + 1}: continuation at end of file`);
    cmdLine = cmdLine.slice(0, -1) + lines[i++];
  }
  const input: string[] = [];
  while (i < lines.length && lines[i] !== SEPARATOR) input.push(lines[i++]);
  if (i >= lines.length)
    throw new DataDrivenParseError(
      `line ${start + 1}: command ${JSON.stringify(cmdLine)} has no '${SEPARATOR}' line`,
    );
  i++; // the separator
  const expected: string[] = [];
  if (lines[i] === SEPARATOR) {
    // Double-separator form: output may contain blank lines; it ends with two separator lines.
    i++;
    while (i < lines.length && !(lines[i] === SEPARATOR && lines[i + 1] === SEPARATOR))
      expected.push(lines[i++]);
    if (i >= lines.length)
      throw new DataDrivenParseError(`line ${start + 1}: unterminated '${SEPARATOR}' '${SEPARATOR}' block`);
    i += 2;
  } else {
    while (i < lines.length && lines[i].trim() !== '') expected.push(lines[i++]);
  }
  let parsed: { cmd: string; args: CmdArg[] };
  try {
    parsed = parseCommandLine(cmdLine);
  } catch (error) {
    throw new DataDrivenParseError(`line ${start + 1}: ${(error as Error).message}`);
  }
  const directive: Directive = {
    line: start + 1,
    cmdLine,
    ...parsed,
    input: input.join('\n'),
    expected: expected.join('\n'),
  };
  return { directive, next: i };
}

/** The inverse of parseDataDriven; `outputs` (same order as the directives) replaces the expected outputs. */
export function serializeDataDriven(chunks: Chunk[], outputs?: string[]): string {
  const directiveCount = chunks.filter((c) => c.kind === 'directive').length;
  if (outputs && directiveCount !== outputs.length) {
    throw new DataDrivenParseError(`${outputs.length} outputs for ${directiveCount} directives`);
  }
  const lines: string[] = [];
  let n = 0;
  for (const chunk of chunks) {
    if (chunk.kind === 'text') {
      lines.push(...chunk.lines);
      continue;
    }
    const d = chunk.directive;
    const output = trimOutput(outputs ? outputs[n] : d.expected);
    n++;
    lines.push(d.cmdLine);
    if (d.input !== '') lines.push(...d.input.split('\n'));
    const outputLines = output === '' ? [] : output.split('\n');
    if (outputLines.some((l) => l.trim() === '')) {
      lines.push(SEPARATOR, SEPARATOR, ...outputLines, SEPARATOR, SEPARATOR);
    } else {
      lines.push(SEPARATOR, ...outputLines);
    }
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/** Outputs compare without trailing whitespace on lines and without trailing newlines. */
export function trimOutput(output: string): string {
  return output
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
    .replace(/\n+$/, '');
}

/** The directives of a parsed file, in order. */
export function directivesOf(chunks: Chunk[]): Directive[] {
  return chunks.flatMap((c) => (c.kind === 'directive' ? [c.directive] : []));
}

/**
 * A small line diff (LCS) in unified style: ' ' same, '-' expected only, '+' actual only, with
 * `context` lines around each change. Inputs longer than `maxLines` fall back to a plain listing.
 */
export function lineDiff(expected: string, actual: string, context = 3, maxLines = 4000): string {
  const a = expected === '' ? [] : expected.split('\n');
  const b = actual === '' ? [] : actual.split('\n');
  if (a.length > maxLines || b.length > maxLines) {
    return ['--- expected', ...a.map((l) => '-' + l), '+++ actual', ...b.map((l) => '+' + l)].join('\n');
  }
  const rows = a.length + 1;
  const cols = b.length + 1;
  const lcs = new Uint32Array(rows * cols);
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i * cols + j] =
        a[i] === b[j]
          ? lcs[(i + 1) * cols + j + 1] + 1
          : Math.max(lcs[(i + 1) * cols + j], lcs[i * cols + j + 1]);
    }
  }
  const ops: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      ops.push(' ' + a[i++]);
      j++;
    } else if (j < b.length && (i >= a.length || lcs[i * cols + j + 1] > lcs[(i + 1) * cols + j])) {
      ops.push('+' + b[j++]);
    } else {
      ops.push('-' + a[i++]);
    }
  }
  return withContext(ops, context);
}

function withContext(ops: string[], context: number): string {
  const keep = ops.map(() => false);
  ops.forEach((op, k) => {
    if (op[0] === ' ') return;
    for (let m = Math.max(0, k - context); m <= Math.min(ops.length - 1, k + context); m++) keep[m] = true;
  });
  const out: string[] = [];
  let skipped = false;
  ops.forEach((op, k) => {
    if (keep[k]) {
      out.push(op);
      skipped = false;
    } else if (!skipped) {
      out.push('@@ ... @@');
      skipped = true;
    }
  });
  return out.join('\n');
}
