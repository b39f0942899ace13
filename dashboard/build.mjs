// Builds the browser dashboard into dashboard/dist/ with esbuild's JS API: one bundled,
// minified script (TypeScript sources plus xterm.js), one stylesheet (ours plus xterm's),
// index.html and _headers (the assets' security headers). Nothing is fetched at run time: the
// Worker serves these files as static assets.
// Skips the work when no input is newer than the last build (`--force` rebuilds anyway).
import * as esbuild from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
// Outside dist/, so it is not served as an asset.
const stamp = join(here, '.build-stamp');
const force = process.argv.includes('--force');

/** Newest modification time of the sources and the lockfile (a dependency bump rebuilds too). */
function newestInput() {
  let newest = 0;
  const walk = (p) => {
    const s = statSync(p);
    if (s.isDirectory()) for (const f of readdirSync(p)) walk(join(p, f));
    else newest = Math.max(newest, s.mtimeMs);
  };
  walk(join(here, 'src'));
  for (const f of ['index.html', '_headers', 'build.mjs', join('..', 'package-lock.json')]) walk(join(here, f));
  return newest;
}

const inputs = newestInput();
if (!force && existsSync(stamp) && Number(readFileSync(stamp, 'utf8')) >= inputs && existsSync(join(dist, 'app.js'))) {
  console.log('[dashboard] up to date');
  process.exit(0);
}

mkdirSync(dist, { recursive: true });
const started = Date.now();
await esbuild.build({
  entryPoints: { app: join(here, 'src', 'main.ts'), app_css: join(here, 'src', 'styles.css') },
  outdir: dist,
  entryNames: '[name]',
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'esm',
  target: ['es2022'],
  legalComments: 'linked',
  logLevel: 'warning',
});
copyFileSync(join(here, 'index.html'), join(dist, 'index.html'));
// Security headers (CSP and friends) for every asset: Workers static assets read dist/_headers.
copyFileSync(join(here, '_headers'), join(dist, '_headers'));
writeFileSync(stamp, String(inputs));
console.log(`[dashboard] built dashboard/dist in ${Date.now() - started} ms`);
