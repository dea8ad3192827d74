/**
 * A small progress bar for long work (downloads, extraction): label, bar, count, rate and
 * ETA on stderr, redrawn in place on a TTY and as occasional lines otherwise. Tests and
 * libraries can pass `silent` or their own sink.
 */
export interface ProgressOptions {
  label: string;
  total: number;
  /** Format values, e.g. as bytes. */
  format?: (v: number) => string;
  sink?: (line: string, final: boolean) => void;
  silent?: boolean;
  /** Work already done before this run (a resumed run): the ETA counts only this run's rate. */
  initial?: number;
}

export interface Progress {
  /** Set the count done (and the total, when it becomes known). */
  update(done: number, total?: number): void;
  tick(n?: number): void;
  /** Text shown after the counts (e.g. "loss 2.31, val PCK 41.2%"). */
  note(text: string): void;
  done(): void;
}

export const formatBytes = (b: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
};

const formatSeconds = (s: number): string =>
  !Number.isFinite(s)
    ? '?'
    : s < 60
      ? `${s.toFixed(0)}s`
      : s < 3600
        ? `${Math.floor(s / 60)}m${Math.round(s % 60)}s`
        : `${(s / 3600).toFixed(1)}h`;

function defaultSink(): (line: string, final: boolean) => void {
  const tty = process.stderr.isTTY;
  let lastPrint = 0;
  return (line, final) => {
    const now = Date.now();
    if (tty) process.stderr.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
    else if (final || now - lastPrint > 10_000) {
      process.stderr.write(line + '\n');
      lastPrint = now;
    }
  };
}

export function createProgress(o: ProgressOptions): Progress {
  const start = Date.now();
  const fmt = o.format ?? ((v: number) => String(v));
  const sink = o.silent ? () => undefined : (o.sink ?? defaultSink());
  let current = o.initial ?? 0;
  const initial = current;
  let total = o.total;
  let noteText = '';
  let lastDraw = 0;
  const draw = (final: boolean) => {
    const elapsed = (Date.now() - start) / 1000;
    const frac = total > 0 ? Math.min(current / total, 1) : 1;
    const width = 24;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const rate = (current - initial) / Math.max(elapsed, 1e-9);
    const eta = rate > 0 ? (total - current) / rate : Infinity;
    sink(
      `${o.label} [${bar}] ${fmt(current)}/${fmt(total)} ${(frac * 100).toFixed(0)}% ${final ? `in ${formatSeconds(elapsed)}` : `ETA ${formatSeconds(eta)}`}${noteText ? `  ${noteText}` : ''}`,
      final,
    );
  };
  return {
    update(done, newTotal) {
      current = done;
      if (newTotal !== undefined) total = newTotal;
      if (Date.now() - lastDraw > 200) {
        lastDraw = Date.now();
        draw(false);
      }
    },
    tick(n = 1) {
      this.update(current + n);
    },
    note(text) {
      noteText = text;
    },
    done() {
      draw(true);
    },
  };
}
