/**
 * Typed errors. Every error the SDK throws on bad input is one of these, so callers can
 * branch on the class (or on `code`) and users read a message saying what was expected,
 * what came, and where (file, field, tensor).
 */
export const ERROR_CODES = {
  config: 'E_CONFIG',
  data: 'E_DATA',
  model: 'E_MODEL',
  shape: 'E_SHAPE',
  device: 'E_DEVICE',
  network: 'E_NETWORK',
} as const;
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

export class HyperfeaturesError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Invalid option values or unsupported config fields. */
export class ConfigError extends HyperfeaturesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.config, message, options);
  }
}

/** Unreadable, truncated or malformed files and data (images, safetensors, annotations). */
export class DataError extends HyperfeaturesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.data, message, options);
  }
}

/** Model folders, components and weights that do not match what the builder needs. */
export class ModelError extends HyperfeaturesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.model, message, options);
  }
}

/** Tensors whose shapes do not fit the operation. */
export class ShapeError extends HyperfeaturesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.shape, message, options);
  }
}

/** An execution provider that cannot start. */
export class DeviceError extends HyperfeaturesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.device, message, options);
  }
}

/** Downloads that fail (HTTP status, checksum, offline mode). */
export class NetworkError extends HyperfeaturesError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.network, message, options);
  }
}

export function isHyperfeaturesError(e: unknown): e is HyperfeaturesError {
  return e instanceof HyperfeaturesError;
}
