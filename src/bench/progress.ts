// A one-line progress bar on stderr, drawn only when stderr is a terminal (never in --json pipes).

const WIDTH = 30;

export class ProgressBar {
  private drawn = false;

  private constructor(private readonly stream: NodeJS.WriteStream) {}

  /** A bar on stderr, or null when stderr is not a TTY. */
  static forStderr(): ProgressBar | null {
    return process.stderr.isTTY ? new ProgressBar(process.stderr) : null;
  }

  warmup(): void {
    this.write('warming up...');
  }

  /** fraction 0..1 of the run; ops counted so far (successes and failures). */
  draw(fraction: number, ops: number, elapsedSec: number, errors: number): void {
    const clamped = Math.min(1, Math.max(0, fraction));
    const filled = Math.round(clamped * WIDTH);
    const rate = elapsedSec > 0 ? Math.round(ops / elapsedSec) : 0;
    const bar = '='.repeat(filled) + (filled < WIDTH ? '>' : '') + ' '.repeat(Math.max(0, WIDTH - filled - 1));
    const errorText = errors > 0 ? `  errors ${errors}` : '';
    this.write(`[${bar}] ${String(Math.floor(clamped * 100)).padStart(3)}%  ${ops} ops  ${rate} ops/s${errorText}`);
  }

  clear(): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  private write(line: string): void {
    this.stream.write(`\r\x1b[2K${line}`);
    this.drawn = true;
  }
}
