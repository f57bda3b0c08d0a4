/** A child process's memory from Linux's /proc, for the paging tests' bounds. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';

/** Resident set size now and its peak (VmRSS, VmHWM), in bytes. */
export function memoryOf(pid: number): { rssBytes: number; peakBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => {
    const m = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    assert.ok(m !== null, `${field} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rssBytes: kib('VmRSS'), peakBytes: kib('VmHWM') };
}

/** Starts a new peak-RSS measurement of the process (VmHWM back to the current RSS). */
export function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}
