import { readFileSync } from 'node:fs';

/** The package version, read once at start-up. */
export const warrenVersion: string = (() => {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'warren' && pkg.version !== undefined) return pkg.version;
    } catch {
      // try the next layout (running from dist/ or from src/)
    }
  }
  return '0.0.0';
})();
