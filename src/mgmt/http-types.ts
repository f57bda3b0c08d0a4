/** What the management face's handlers see of an HTTP request, and what they answer. */

export interface HttpRequest {
  /** Upper-case: GET, PUT, POST, DELETE, ... */
  readonly method: string;
  /** The path as sent (still percent-encoded), without the query. */
  readonly rawPath: string;
  readonly query: URLSearchParams;
  /** Lower-case header names → values, as read while the request was live. */
  readonly headers: ReadonlyMap<string, string>;
  /** The whole body (empty for GET and DELETE without one). */
  readonly body: Buffer;
  /** The peer's address, IPv4-mapped IPv6 written as IPv4. */
  readonly remoteAddress: string;
}

export interface Reply {
  status: number;
  /** A JSON document; undefined for an empty body. */
  json?: unknown;
  /** A non-JSON body (dashboard files, Prometheus text). */
  raw?: { contentType: string; data: string | Buffer };
  headers?: Record<string, string>;
}

export const reasonPhrase: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  304: 'Not Modified',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  411: 'Length Required',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function json(status: number, body: unknown, headers?: Record<string, string>): Reply {
  return headers === undefined ? { status, json: body } : { status, json: body, headers };
}

export function noContent(): Reply {
  return { status: 204 };
}

/** PUT answers: 201 when the object was created, 204 when it existed (as RabbitMQ). */
export function created(isNew: boolean): Reply {
  return { status: isNew ? 201 : 204 };
}
