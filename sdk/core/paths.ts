/** Where models and caches live, following the Hugging Face hub's environment variables. */
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  const home = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface');
  return join(home, 'hub');
}

/** Our own cache (built graphs, features): `HYPERFEATURES_CACHE` or `~/.cache/hyperfeatures`. */
export function hyperfeaturesCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HYPERFEATURES_CACHE ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'hyperfeatures');
}
