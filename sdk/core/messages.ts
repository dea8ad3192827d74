/**
 * Every user-facing message is built here, so the wording is consistent and tests can
 * compare against the same factory the code used.
 */
const fmtShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

export const messages = {
  shapeMismatch: (what: string, expected: string, got: readonly number[]) =>
    `${what}: expected shape ${expected}, got ${fmtShape(got)}`,
  dataLength: (what: string, expected: number, got: number) =>
    `${what}: shape needs ${expected} values but the data holds ${got}`,
  invalidOption: (name: string, expected: string, got: unknown) =>
    `option ${name}: expected ${expected}, got ${typeof got === 'number' || got === undefined ? String(got) : (JSON.stringify(got) ?? String(got))}`,
  fileNotFound: (path: string, what: string) => `${path}: ${what} not found`,
  fileTooShort: (path: string, what: string, need: number, size: number) =>
    `${path}: truncated ${what}: needs ${need} bytes but the file has ${size}`,
  safetensorsHeader: (path: string, problem: string) => `${path}: not a valid safetensors file: ${problem}`,
  safetensorsDtype: (path: string, tensor: string, dtype: string, allowed: readonly string[]) =>
    `${path}: tensor "${tensor}" has dtype ${dtype}; supported: ${allowed.join(', ')}`,
  safetensorsMissing: (path: string, tensor: string, available: readonly string[]) =>
    `${path}: no tensor "${tensor}" (the file has ${available.length}: ${available.slice(0, 8).join(', ')}${
      available.length > 8 ? ', ...' : ''
    })`,
  imageDecode: (source: string, reason: string) => `${source}: cannot decode image: ${reason}`,
  unknownCommand: (name: string, valid: readonly string[]) =>
    `unknown command "${name}"; valid commands: ${valid.join(', ')}`,
} as const;

export { fmtShape };
