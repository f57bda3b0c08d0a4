/**
 * List endpoints' query parameters, as rabbit_mgmt_util reads them:
 *
 *   sort=KEY (dotted, e.g. message_stats.publish_details.rate), sort_reverse=true
 *   page=N [page_size=M (1..500, default 100)] [name=TEXT [use_regex=true]]
 *       → {filtered_count, item_count, items, page, page_count, page_size, total_count}
 *   columns=a,b.c   keep only these fields (dotted paths reach into nested objects)
 *
 * Without `page` the answer is the bare array, and `name` is not applied (as RabbitMQ).
 */
import { HttpError, badRequest } from './http-errors.js';
import { json, type Reply } from './http-types.js';

const defaultPageSize = 100;
const maxPageSize = 500;
/** A name filter longer than this is refused (it is matched against every item). */
const nameFilterMaxChars = 256;

export type Item = Record<string, unknown>;

function dotted(item: unknown, path: readonly string[]): unknown {
  let v: unknown = item;
  for (const k of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, k)) return undefined;
    v = (v as Item)[k];
  }
  return v;
}

/** Erlang's term order, which RabbitMQ sorts by: numbers < atoms (booleans) < binaries < lists < maps; missing = 0. */
function rank(v: unknown): number {
  if (v === undefined || v === null || typeof v === 'number') return 0;
  if (typeof v === 'boolean') return 1;
  if (typeof v === 'string') return 2;
  if (Array.isArray(v)) return 3;
  return 4;
}

function compareValues(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 0) return ((a as number | undefined | null) ?? 0) - ((b as number | undefined | null) ?? 0);
  if (ra === 1 || ra === 2) return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
  return 0;
}

export function sortItems(items: Item[], keys: readonly string[], reverse: boolean): Item[] {
  const paths = keys.map((k) => k.split('.'));
  const sorted = [...items].sort((x, y) => {
    for (const p of paths) {
      const c = compareValues(dotted(x, p), dotted(y, p));
      if (c !== 0) return c;
    }
    return 0;
  });
  return reverse ? sorted.reverse() : sorted;
}

/** Keeps only the named (dotted) fields of each item. */
export function pickColumns(items: Item[], columns: string): Item[] {
  const paths = columns.split(',').map((c) => c.trim()).filter((c) => c !== '').map((c) => c.split('.'));
  return items.map((item) => pick(item, paths));
}

function pick(item: Item, paths: string[][]): Item {
  const out: Item = {};
  for (const [key, value] of Object.entries(item)) {
    const wanted = paths.filter((p) => p[0] === key);
    if (wanted.length === 0) continue;
    if (wanted.some((p) => p.length === 1) || typeof value !== 'object' || value === null || Array.isArray(value)) {
      out[key] = value;
    } else {
      out[key] = pick(value as Item, wanted.map((p) => p.slice(1)));
    }
  }
  return out;
}

interface Pagination {
  page: number;
  pageSize: number;
  name: string | undefined;
  useRegex: boolean;
}

function pagination(q: URLSearchParams): Pagination | undefined {
  const pageText = q.get('page');
  if (pageText === null) return undefined;
  const sizeText = q.get('page_size');
  const isInt = (s: string): boolean => /^-?[0-9]{1,9}$/.test(s);
  if (!isInt(pageText) || (sizeText !== null && !isInt(sizeText))) throw badRequest('Pagination parameters are invalid');
  const page = Number(pageText);
  const pageSize = sizeText === null ? defaultPageSize : Number(sizeText);
  if (page < 1 || pageSize < 1 || pageSize > maxPageSize) {
    throw new HttpError(400, 'invalid_pagination_parameters', `Invalid pagination parameters: page number ${page}, page size ${pageSize}`);
  }
  const name = q.get('name') ?? undefined;
  if (name !== undefined && name.length > nameFilterMaxChars) throw badRequest(`name filter longer than ${nameFilterMaxChars} characters`);
  return { page, pageSize, name: name === '' ? undefined : name, useRegex: q.get('use_regex') === 'true' };
}

function nameFilter(p: Pagination): (item: Item) => boolean {
  const name = p.name;
  if (name === undefined) return () => true;
  if (p.useRegex) {
    let re: RegExp;
    try {
      re = new RegExp(name, 'i');
    } catch (err) {
      throw badRequest(`invalid regular expression in name: ${err instanceof Error ? err.message : String(err)}`);
    }
    return (item) => typeof item['name'] === 'string' && re.test(item['name']);
  }
  const lower = name.toLowerCase();
  return (item) => typeof item['name'] === 'string' && item['name'].toLowerCase().includes(lower);
}

/** Sorts, filters, pages and trims a list as the query asks, and answers it (200). */
export function listReply(q: URLSearchParams, items: Item[], defaultSort: readonly string[] = ['vhost', 'name']): Reply {
  const p = pagination(q);
  const sortParam = q.get('sort');
  const keys = sortParam === null ? defaultSort : sortParam === '' ? [] : [sortParam, ...defaultSort];
  let list = keys.length === 0 ? items : sortItems(items, keys, q.get('sort_reverse') === 'true');
  const columns = q.get('columns');
  if (p === undefined) return json(200, columns === null ? list : pickColumns(list, columns));
  const total = list.length;
  list = list.filter(nameFilter(p));
  const offset = (p.page - 1) * p.pageSize;
  if (offset > list.length) {
    throw new HttpError(400, 'page_out_of_range', `Page out of range, page: ${p.page} page size: ${p.pageSize}, len: ${list.length}`);
  }
  const pageItems = list.slice(offset, offset + p.pageSize);
  return json(200, {
    total_count: total,
    item_count: pageItems.length,
    filtered_count: list.length,
    page: p.page,
    page_size: p.pageSize,
    page_count: Math.ceil(list.length / p.pageSize),
    items: columns === null ? pageItems : pickColumns(pageItems, columns),
  });
}

/** A single object with columns= applied. */
export function itemReply(q: URLSearchParams, item: Item): Reply {
  const columns = q.get('columns');
  return json(200, columns === null ? item : (pickColumns([item], columns)[0] as Item));
}
