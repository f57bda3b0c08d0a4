import type { MethodArgsMap, MethodId } from '../../amqp/spec.generated.js';
import type { Channel } from '../channel.js';

/** One handler per AMQP method, looked up in a table (flat dispatch, no nested switches). */
export type MethodHandler<K extends MethodId> = (ch: Channel, args: MethodArgsMap[K]) => void | Promise<void>;

export type HandlerTable = Map<number, MethodHandler<never>>;

export function on<K extends MethodId>(table: HandlerTable, id: K, handler: MethodHandler<K>): void {
  table.set(id, handler as unknown as MethodHandler<never>);
}
