// Exchange and binding shapes shared by the router, the front and the definitions store.
import type { FieldTable } from '../amqp/field-table.js';

export type ExchangeType = 'direct' | 'fanout' | 'topic' | 'headers';

export interface ExchangeDef {
  name: string;
  type: ExchangeType;
  durable: boolean;
  autoDelete: boolean;
  internal: boolean;
  arguments: FieldTable;
}

export type DestinationKind = 'queue' | 'exchange';

export interface Binding {
  source: string;
  destination: string;
  destinationKind: DestinationKind;
  routingKey: string;
  arguments: FieldTable;
}

/** What a matcher needs to know of a binding: its key (direct, topic) and arguments (headers). */
export interface MatcherBinding {
  readonly routingKey: string;
  readonly arguments: FieldTable;
}

/**
 * The routing index of one exchange. The owner guarantees that a binding object is added at
 * most once and removed only after it was added (identity is the object reference).
 */
export interface Matcher<T extends MatcherBinding> {
  /** false for fanout and headers: they match once per message, not once per routing key. */
  readonly usesRoutingKey: boolean;
  readonly size: number;
  add(binding: T): void;
  remove(binding: T): void;
  /**
   * Calls `visit` once for each binding that matches. `getHeaders` is called only by headers
   * matchers. `visit` must not add or remove bindings of this matcher.
   */
  match(routingKey: string, getHeaders: () => FieldTable | undefined, visit: (binding: T) => void): void;
}
