/**
 * A swappable logger: the SDK never writes to the console directly, so tests can capture
 * warnings and applications can route them.
 */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface LogRecord {
  level: LogLevel;
  message: string;
}

function consoleLogger(minLevel: LogLevel): Logger {
  const min = LOG_LEVELS.indexOf(minLevel);
  const at = (level: LogLevel) => (message: string) => {
    if (LOG_LEVELS.indexOf(level) >= min) process.stderr.write(`[hyperfeatures] ${level}: ${message}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const envLevel = () => process.env.HYPERFEATURES_LOG_LEVEL;
let current: Logger = consoleLogger(
  LOG_LEVELS.includes(envLevel() as LogLevel) ? (envLevel() as LogLevel) : 'info',
);

/** The logger the SDK writes to. */
export function log(): Logger {
  return current;
}

/** Replace the logger; returns the previous one so it can be restored. */
export function setLogger(logger: Logger): Logger {
  const previous = current;
  current = logger;
  return previous;
}

/**
 * Run `fn` with a logger that records everything, then restore the previous logger.
 * @example const { records } = await captureLogs(() => loadImage(path));
 */
export async function captureLogs<T>(fn: () => T | Promise<T>): Promise<{ result: T; records: LogRecord[] }> {
  const records: LogRecord[] = [];
  const rec = (level: LogLevel) => (message: string) => records.push({ level, message });
  const previous = setLogger({
    debug: rec('debug'),
    info: rec('info'),
    warn: rec('warn'),
    error: rec('error'),
  });
  try {
    return { result: await fn(), records };
  } finally {
    setLogger(previous);
  }
}
