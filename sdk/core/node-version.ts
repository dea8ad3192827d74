/** The Node.js this package needs, checked when it loads (engines alone only warns at install). */
import { ConfigError } from './errors.ts';

export const MIN_NODE = [20, 19] as const;

/** @throws ConfigError naming the version needed and the one running. */
export function assertNodeVersion(version: string = process.versions.node): void {
  const [major, minor] = version.split('.').map(Number);
  if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1]))
    throw new ConfigError(
      `hyperfeatures needs Node.js ${MIN_NODE.join('.')} or newer (zlib.crc32, require of ES modules); this is Node.js ${version}`,
    );
}
