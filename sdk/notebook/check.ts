/**
 * `hyperfeatures kernel check`: type-check a notebook's code cells, in order, as one TypeScript
 * program, whatever kernel runs it (Deno's kernel does not type-check at all; tslab only cell by
 * cell). Each cell becomes a block nested in the previous one, so later cells see earlier names
 * and may redeclare them as notebooks do; imports move to the top (Deno's `npm:` specifiers read
 * as bare ones). The program lives, virtually, beside the notebook, so its node_modules resolve.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, DataError } from '../core/errors.ts';
import { packageRoot, resolveFrom } from '../core/package-root.ts';

type TS = typeof import('typescript');

export interface NotebookDiagnostic {
  notebook: string;
  /** 1-based index among all cells (markdown included), as a notebook shows them; 0 = not in a cell. */
  cell: number;
  /** 1-based line and column within the cell. */
  line: number;
  column: number;
  message: string;
}

interface Cell {
  cell_type: string;
  source: string | string[];
  metadata?: { vscode?: { languageId?: string } };
}

const TS_LANGUAGES = ['typescript', 'javascript', 'ts', 'js'];

/** The notebook's code cells, checked: nbformat 4, a TypeScript / JavaScript kernel. */
export function readNotebookCells(path: string): { index: number; source: string; language?: string }[] {
  if (!existsSync(path) || !statSync(path).isFile())
    throw new ConfigError(`kernel check: no such notebook file: ${path}`);
  let nb: {
    nbformat?: unknown;
    cells?: Cell[];
    metadata?: { kernelspec?: { language?: string; name?: string }; language_info?: { name?: string } };
  };
  try {
    nb = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new DataError(`${path}: not a notebook (not JSON: ${(e as Error).message})`);
  }
  if (nb.nbformat !== 4)
    throw new DataError(
      `${path}: nbformat ${JSON.stringify(nb.nbformat ?? null)}, expected 4 (convert it with \`jupyter nbconvert --to notebook --nbformat 4\`)`,
    );
  if (!Array.isArray(nb.cells)) throw new DataError(`${path}: nbformat 4 without a cells list`);
  const language = nb.metadata?.kernelspec?.language ?? nb.metadata?.language_info?.name;
  if (language && !TS_LANGUAGES.includes(language.toLowerCase()))
    throw new DataError(
      `${path}: a ${language} notebook (kernel ${nb.metadata?.kernelspec?.name ?? '?'}); kernel check reads TypeScript notebooks`,
    );
  return nb.cells.flatMap((c, i) =>
    c.cell_type === 'code'
      ? [
          {
            index: i + 1,
            source: Array.isArray(c.source) ? c.source.join('') : String(c.source ?? ''),
            language: c.metadata?.vscode?.languageId,
          },
        ]
      : [],
  );
}

/** TypeScript from the user's project, else the one beside this package. */
function loadTypeScript(from: string): TS {
  const found = resolveFrom([from, process.cwd(), packageRoot()], 'typescript');
  if (found) return createRequire(import.meta.url)(found) as TS;
  throw new ConfigError(
    'kernel check needs TypeScript, which is not installed here: run `npm install --save-dev typescript`',
  );
}

/** `npm:name@version/sub` -> `name/sub` (Deno's specifiers, for Node's resolution). */
export function bareSpecifier(spec: string): string {
  const m = /^npm:(@[^/@]+\/[^/@]+|[^/@]+)(?:@[^/]*)?(\/.*)?$/.exec(spec);
  return m ? m[1] + (m[2] ?? '') : spec;
}

interface Piece {
  text: string;
  cell: number;
  /** 0-based line in the cell of the piece's first line. */
  line: number;
}

/** The program text and, per program line, where it came from. */
function assemble(ts: TS, cells: { index: number; source: string }[]) {
  const imports: Piece[] = [];
  const seen = new Set<string>();
  const bodies: Piece[] = [];
  for (const c of cells) {
    const sf = ts.createSourceFile('cell.ts', c.source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    let body = c.source;
    for (const st of sf.statements) {
      if (!ts.isImportDeclaration(st) && !ts.isImportEqualsDeclaration(st)) continue;
      const [start, end] = [st.getStart(sf), st.getEnd()];
      let text = c.source.slice(start, end);
      if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier)) {
        const spec = st.moduleSpecifier.text;
        text = text.replace(spec, bareSpecifier(spec));
      }
      // the same import in two cells (re-run habits) is one import
      if (!seen.has(text.replace(/\s+/g, ' '))) {
        seen.add(text.replace(/\s+/g, ' '));
        imports.push({ text, cell: c.index, line: sf.getLineAndCharacterOfPosition(start).line });
      }
      // blank it out in place, keeping the line numbers
      body = body.slice(0, start) + body.slice(start, end).replace(/[^\n]/g, ' ') + body.slice(end);
    }
    bodies.push({ text: body, cell: c.index, line: 0 });
  }
  const lines: string[] = [];
  const origin: { cell: number; line: number }[] = [];
  const add = (text: string, cell: number, line: number) =>
    text.split('\n').forEach((l, k) => {
      lines.push(l);
      origin.push({ cell, line: cell ? line + k : 0 });
    });
  add('declare const Deno: any; // Deno kernels: the runtime API, untyped here', 0, 0);
  for (const p of imports) add(p.text, p.cell, p.line);
  for (const p of bodies) {
    add(`{ // cell ${p.cell}`, 0, 0);
    add(p.text, p.cell, 0);
  }
  for (const p of bodies) add(`} // cell ${p.cell}`, 0, 0);
  add('export {};', 0, 0);
  return { text: lines.join('\n'), origin };
}

/** Type-check each notebook; returns every diagnostic (empty: all clean). */
export function checkNotebooks(paths: string[]): NotebookDiagnostic[] {
  if (!Array.isArray(paths) || !paths.length)
    throw new ConfigError('kernel check: expected one or more .ipynb files, got none');
  const out: NotebookDiagnostic[] = [];
  for (const path of paths) {
    if (typeof path !== 'string' || !path.endsWith('.ipynb'))
      throw new ConfigError(`kernel check: expected .ipynb files, got ${JSON.stringify(path)}`);
    const cells = readNotebookCells(path);
    const dir = dirname(resolve(path));
    for (const c of cells) {
      const other =
        (c.language && !TS_LANGUAGES.includes(c.language.toLowerCase()) && c.language) ||
        /^%%(\w+)/.exec(c.source.trimStart())?.[1];
      if (other)
        out.push({
          notebook: path,
          cell: c.index,
          line: 1,
          column: 1,
          message: `a ${other} cell in a TypeScript notebook: neither tslab nor Deno runs it`,
        });
    }
    const ts = loadTypeScript(dir);
    const { text, origin } = assemble(ts, cells);
    const file = join(dir, '.hyperfeatures-notebook-check.mts');
    const options: import('typescript').CompilerOptions = {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      skipLibCheck: true,
      allowImportingTsExtensions: true,
      types: ['node'],
      typeRoots: [join(dir, 'node_modules', '@types'), join(packageRoot(), 'node_modules', '@types')]
        .concat(join(packageRoot(), '..', '@types'))
        .filter((d) => existsSync(d)),
    };
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, version, ...rest) =>
      resolve(name) === file
        ? ts.createSourceFile(name, text, version, true)
        : getSourceFile(name, version, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => resolve(name) === file || fileExists(name);
    const program = ts.createProgram([file], options, host);
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (d.file && resolve(d.file.fileName) === file && d.start !== undefined) {
        const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
        const o = origin[line];
        out.push({ notebook: path, cell: o.cell, line: o.line + 1, column: character + 1, message });
      } else
        out.push({
          notebook: path,
          cell: 0,
          line: 0,
          column: 0,
          message: `${d.file?.fileName ?? ''} ${message}`.trim(),
        });
    }
  }
  return out;
}

/** One line per diagnostic: `nb.ipynb: cell 4, line 2:7: message`. */
export function formatNotebookDiagnostic(d: NotebookDiagnostic): string {
  const where = d.cell ? `cell ${d.cell}, line ${d.line}:${d.column}` : 'program';
  return `${d.notebook}: ${where}: ${d.message}`;
}
