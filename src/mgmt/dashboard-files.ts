/**
 * The dashboard: a few static files (no build step) under src/mgmt/dashboard/, read once at
 * start from the package's source tree — the node runs from dist/, so the folder is found
 * from the package root, not from this module's directory. Only the files named here are
 * served; no path from a request ever reaches the file system.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../node/logger.js';
import { notFound } from './http-errors.js';
import type { HttpRequest, Reply } from './http-types.js';

const files: Record<string, { file: string; contentType: string }> = {
  '': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  'index.html': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  'dashboard.js': { file: 'dashboard.js', contentType: 'text/javascript; charset=utf-8' },
  'charts.js': { file: 'charts.js', contentType: 'text/javascript; charset=utf-8' },
  'dashboard.css': { file: 'dashboard.css', contentType: 'text/css; charset=utf-8' },
  'favicon.svg': { file: 'favicon.svg', contentType: 'image/svg+xml' },
};

/** Everything the page loads comes from this node; nothing inline, nothing from elsewhere. */
const securityHeaders = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};

/** The package root: the nearest directory up from this module holding warren's package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'warren') return dir;
      } catch {
        // not ours; keep climbing
      }
    }
    dir = dirname(dir);
  }
  throw new Error('cannot find the warren package root (package.json) above the management module');
}

interface Loaded {
  body: Buffer;
  contentType: string;
  etag: string;
}

export class DashboardFiles {
  private readonly loaded = new Map<string, Loaded>();

  constructor(log: Logger) {
    let dir: string;
    try {
      dir = join(packageRoot(), 'src', 'mgmt', 'dashboard');
    } catch (err) {
      log.warn(`dashboard unavailable: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const byFile = new Map<string, Loaded | undefined>();
    for (const [name, f] of Object.entries(files)) {
      if (!byFile.has(f.file)) {
        try {
          const body = readFileSync(join(dir, f.file));
          byFile.set(f.file, { body, contentType: f.contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` });
        } catch (err) {
          log.warn(`dashboard file ${f.file} unavailable: ${err instanceof Error ? err.message : String(err)}`);
          byFile.set(f.file, undefined);
        }
      }
      const loaded = byFile.get(f.file);
      if (loaded !== undefined) this.loaded.set(name, loaded);
    }
  }

  serve(req: HttpRequest, segments: readonly string[]): Reply {
    const name = segments.length === 0 ? '' : segments.length === 1 ? (segments[0] as string) : undefined;
    const f = name === undefined || !Object.hasOwn(files, name) ? undefined : this.loaded.get(name);
    if (f === undefined) throw notFound();
    if (req.method !== 'GET') return { status: 405, json: { error: 'method_not_allowed', reason: 'allowed: GET' }, headers: { Allow: 'GET' } };
    const headers = { ...securityHeaders, ETag: f.etag };
    if (req.headers.get('if-none-match') === f.etag) return { status: 304, headers };
    return { status: 200, raw: { contentType: f.contentType, data: f.body }, headers };
  }
}
