import { AmqpError } from '../../amqp/errors.js';
import { Method, ReplyCode } from '../../amqp/spec.generated.js';
import { inequivalentArgDetail, sameArgValue, typeNames } from '../queue-args.js';
import type { ExchangeType } from '../../routing/types.js';
import { validateHeadersBindingArgs } from '../../routing/headers-binding-args.js';
import type { Channel } from '../channel.js';
import { on, type HandlerTable } from './types.js';

const exchangeTypes = new Set<string>(['direct', 'fanout', 'topic', 'headers']);

export function exchangeLabel(vhost: string, name: string): string {
  return `exchange '${name}' in vhost '${vhost}'`;
}

export function noExchange(vhost: string, name: string, classId = 0, methodId = 0): AmqpError {
  return new AmqpError(ReplyCode.notFound, `NOT_FOUND - no ${exchangeLabel(vhost, name)}`, classId, methodId);
}

function defaultExchangeRefused(classId: number, methodId: number): AmqpError {
  return new AmqpError(ReplyCode.accessRefused, 'ACCESS_REFUSED - operation not permitted on the default exchange', classId, methodId);
}

function inequivalent(vhost: string, name: string, arg: string, received: string, current: string): AmqpError {
  return new AmqpError(
    ReplyCode.preconditionFailed,
    `PRECONDITION_FAILED - inequivalent arg '${arg}' for ${exchangeLabel(vhost, name)}: received '${received}' but current is '${current}'`,
    40,
    10,
  );
}

/**
 * The checks exchange.bind and exchange.unbind make before looking anything up, in
 * rabbit_channel's order: write on the destination, the default exchange, read on the source.
 */
function bindingPermissions(ch: Channel, source: string, destination: string, classId: number, methodId: number): void {
  ch.broker.authorize(ch.conn, 'write', 'exchange', destination);
  if (source === '' || destination === '') throw defaultExchangeRefused(classId, methodId);
  ch.broker.authorize(ch.conn, 'read', 'exchange', source);
}

/** Permission, default-exchange and existence checks for exchange.bind. */
function bindEnds(ch: Channel, source: string, destination: string, classId: number, methodId: number): void {
  const vhost = ch.conn.vhost;
  bindingPermissions(ch, source, destination, classId, methodId);
  if (vhost.graph.getExchange(destination) === undefined) throw noExchange(vhost.name, destination, classId, methodId);
  if (vhost.graph.getExchange(source) === undefined) throw noExchange(vhost.name, source, classId, methodId);
}

export function registerExchangeMethods(t: HandlerTable): void {
  on(t, Method.ExchangeDeclare, (ch, a) => {
    const vhost = ch.conn.vhost;
    const name = a.exchange;
    if (name === '') throw defaultExchangeRefused(40, 10);
    const existing = vhost.graph.getExchange(name);
    if (a.passive) {
      if (existing === undefined) throw noExchange(vhost.name, name, 40, 10);
    } else {
      if (!exchangeTypes.has(a.type)) {
        throw new AmqpError(ReplyCode.commandInvalid, `COMMAND_INVALID - unknown exchange type '${a.type}'`, 40, 10);
      }
      // rabbit_channel checks the configure permission before the reserved prefix.
      ch.broker.authorize(ch.conn, 'configure', 'exchange', name);
      if (name.startsWith('amq.') && existing === undefined) {
        throw new AmqpError(ReplyCode.accessRefused, `ACCESS_REFUSED - exchange name '${name}' contains reserved prefix 'amq.*'`, 40, 10);
      }
      const ae = a.arguments['alternate-exchange'];
      if (existing === undefined && ae !== undefined && ae.type !== 'S') {
        // rabbit_channel checks it (rabbit_misc:r_arg) only for an exchange it is about to create.
        throw new AmqpError(
          ReplyCode.preconditionFailed,
          `PRECONDITION_FAILED - invalid type '${typeNames[ae.type] ?? ae.type}' for arg 'alternate-exchange' in ${exchangeLabel(vhost.name, name)}`,
          40,
          10,
        );
      }
      if (existing === undefined && ae?.type === 'S') {
        // Unroutable messages flow from this exchange into the alternate: RabbitMQ checks both ends at declare.
        ch.broker.authorize(ch.conn, 'read', 'exchange', name);
        ch.broker.authorize(ch.conn, 'write', 'exchange', ae.value);
      }
      if (existing !== undefined) {
        if (existing.type !== a.type) throw inequivalent(vhost.name, name, 'type', a.type, existing.type);
        if (existing.durable !== a.durable) throw inequivalent(vhost.name, name, 'durable', String(a.durable), String(existing.durable));
        if (existing.autoDelete !== a.autoDelete) throw inequivalent(vhost.name, name, 'auto_delete', String(a.autoDelete), String(existing.autoDelete));
        if (existing.internal !== a.internal) throw inequivalent(vhost.name, name, 'internal', String(a.internal), String(existing.internal));
        const aeNew = a.arguments['alternate-exchange'];
        const aeOld = existing.arguments['alternate-exchange'];
        if (!sameArgValue(aeNew, aeOld)) {
          throw new AmqpError(
            ReplyCode.preconditionFailed,
            `PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for ${exchangeLabel(vhost.name, name)}: ${inequivalentArgDetail(aeNew, aeOld)}`,
            40,
            10,
          );
        }
      } else {
        vhost.graph.declareExchange({
          name,
          type: a.type as ExchangeType,
          durable: a.durable,
          autoDelete: a.autoDelete,
          internal: a.internal,
          arguments: a.arguments,
        });
        ch.broker.applyExchangePolicy(vhost, name);
        void ch.broker.definitionsChanged();
      }
    }
    if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.ExchangeDeclareOk, args: {} });
  });

  on(t, Method.ExchangeDelete, (ch, a) => {
    const vhost = ch.conn.vhost;
    const name = a.exchange;
    if (name === '' ) throw defaultExchangeRefused(40, 20);
    if (name.startsWith('amq.')) {
      throw new AmqpError(ReplyCode.accessRefused, `ACCESS_REFUSED - deletion of system ${exchangeLabel(vhost.name, name)} not allowed`, 40, 20);
    }
    // Refused even when the exchange is not there, as in RabbitMQ: the permission is checked first.
    ch.broker.authorize(ch.conn, 'configure', 'exchange', name);
    const existing = vhost.graph.getExchange(name);
    if (existing !== undefined) {
      if (a.ifUnused && vhost.graph.hasBindingsAsSource(name)) {
        throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - ${exchangeLabel(vhost.name, name)} in use`, 40, 20);
      }
      ch.broker.deleteExchange(vhost, name);
    }
    if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.ExchangeDeleteOk, args: {} });
  });

  on(t, Method.ExchangeBind, (ch, a) => {
    bindEnds(ch, a.source, a.destination, 40, 30);
    const err = validateHeadersBindingArgs(a.arguments);
    const src = ch.conn.vhost.graph.getExchange(a.source);
    if (err !== undefined && src?.type === 'headers') throw new AmqpError(ReplyCode.preconditionFailed, `PRECONDITION_FAILED - ${err}`, 40, 30);
    if (ch.conn.vhost.graph.bind({ source: a.source, destination: a.destination, destinationKind: 'exchange', routingKey: a.routingKey, arguments: a.arguments })) {
      void ch.broker.definitionsChanged();
    }
    if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.ExchangeBindOk, args: {} });
  });

  on(t, Method.ExchangeUnbind, (ch, a) => {
    const vhost = ch.conn.vhost;
    bindingPermissions(ch, a.source, a.destination, 40, 40);
    if (vhost.graph.getExchange(a.source) !== undefined && vhost.graph.getExchange(a.destination) !== undefined) {
      if (vhost.graph.unbind({ source: a.source, destination: a.destination, destinationKind: 'exchange', routingKey: a.routingKey, arguments: a.arguments })) {
        ch.broker.exchangeUnbound(vhost);
      }
    }
    if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.ExchangeUnbindOk, args: {} });
  });
}
