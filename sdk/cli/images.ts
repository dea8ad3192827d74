/**
 * The images a batch command works on: files and folders expanded, every one decoded up front
 * (the same decoder the run uses), so a bad file is skipped and reported before any compute
 * instead of failing minutes in, and outputs named by stem cannot collide.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { ConfigError, DataError } from '../core/errors.ts';
import { decodeImage } from '../data/image.ts';
import { notARegularFile } from '../core/fs.ts';
import { realPath } from '../core/outputs.ts';

export const IMAGE_EXT = ['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff', '.gif', '.avif'];

/** Files and folders (their image files, sorted) as a flat list. @throws DataError */
export function expandImages(paths: string[]): string[] {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length)
    throw new DataError(
      `images not found: ${missing
        .map((p) => {
          const problem = notARegularFile(p);
          return problem && problem.kind !== 'missing' ? `${p} (${problem.why})` : p;
        })
        .join(', ')}`,
    );
  // a folder's entries that are not files (broken links, FIFOs, ...) stay in the list: the decode
  // check names and skips them without reading
  const files = paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter(
            (f) =>
              IMAGE_EXT.includes(extname(f).toLowerCase()) && notARegularFile(join(p, f))?.kind !== 'folder',
          )
          .sort()
          .map((f) => join(p, f))
      : [p],
  );
  if (!files.length)
    throw new DataError(`no images found in ${paths.join(', ')} (looked for ${IMAGE_EXT.join(' ')} files)`);
  return files;
}

/** Each image among `paths` (each once) that cannot be decoded, with the DataError's message. */
export async function undecodable(
  paths: Iterable<string>,
  colorManaged?: boolean,
): Promise<Map<string, string>> {
  const bad = new Map<string, string>();
  for (const path of new Set(paths)) {
    try {
      await decodeImage(path, { colorManaged });
    } catch (e) {
      if (!(e instanceof DataError)) throw e;
      bad.set(path, e.message);
    }
  }
  return bad;
}

/**
 * Outputs are named `<out>/<stem><suffix>`: refuse, before any work, when one of them would be an
 * input file (e.g. `a_depth.png` beside `a.png` with --out on the same folder) or two inputs
 * would write the same file.
 * @throws ConfigError naming the output and the input it would replace.
 */
export function checkOutputNames(out: string, inputs: readonly string[], suffixes: readonly string[]): void {
  const given = new Map(inputs.map((i) => [realPath(i), i]));
  const planned = new Map<string, string>();
  const dir = realPath(out);
  for (const input of inputs) {
    const stem = basename(input, extname(input));
    for (const suffix of suffixes) {
      const target = join(dir, stem + suffix);
      const victim = given.get(realPath(target));
      if (victim !== undefined)
        throw new ConfigError(
          `the output ${target} of ${input} would replace the input ${victim}; nothing was written. Use another --out, or move the inputs`,
        );
      const other = planned.get(target);
      if (other !== undefined && other !== input)
        throw new ConfigError(
          `${other} and ${input} would both write ${target}; rename one or run them separately`,
        );
      planned.set(target, input);
    }
  }
}

/**
 * The decodable images among `paths`; the skipped ones are listed on stderr with their reasons.
 * @throws DataError when none is left; ConfigError when two outputs would share a stem.
 */
export async function usableImages(paths: string[], o: { colorManaged?: boolean } = {}): Promise<string[]> {
  const files = expandImages(paths);
  const bad = await undecodable(files, o.colorManaged);
  const ok = files.filter((f) => !bad.has(f));
  if (bad.size)
    process.stderr.write(
      `skipped ${bad.size} of ${files.length} image(s) that cannot be decoded:\n  ${[...bad.values()].join('\n  ')}\n`,
    );
  if (!ok.length)
    throw new DataError(`none of the ${files.length} image(s) can be decoded; see the reasons above`);
  const byStem = new Map<string, string[]>();
  for (const f of ok) {
    const stem = basename(f, extname(f));
    byStem.set(stem, [...(byStem.get(stem) ?? []), f]);
  }
  const clashes = [...byStem.values()].filter((v) => v.length > 1);
  if (clashes.length)
    throw new ConfigError(
      `outputs are named by file stem, and these inputs share one: ${clashes.map((c) => c.join(' & ')).join('; ')}; rename or run them separately`,
    );
  return ok;
}
