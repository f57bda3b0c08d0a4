import { AmqpError } from '../../amqp/errors.js';
import { Method, ReplyCode } from '../../amqp/spec.generated.js';
import { on, type HandlerTable } from './types.js';

export function registerChannelMethods(t: HandlerTable): void {
  on(t, Method.ChannelOpen, () => {
    throw new AmqpError(ReplyCode.channelError, `CHANNEL_ERROR - second 'channel.open' seen`, 20, 10);
  });
  on(t, Method.ChannelClose, (ch) => ch.closeByClient());
  on(t, Method.ChannelCloseOk, () => {
    // Only meaningful while we are closing; Channel handles that state itself.
  });
  on(t, Method.ChannelFlow, (ch, a) => {
    // RabbitMQ confirms active=true and refuses active=false with a connection error
    // (rabbit_channel: protocol_error(not_implemented, "active=false")); clients that pause
    // consumers use basic.qos or basic.cancel instead.
    if (!a.active) throw new AmqpError(ReplyCode.notImplemented, 'NOT_IMPLEMENTED - active=false', 20, 20);
    ch.conn.sendMethod(ch.id, { id: Method.ChannelFlowOk, args: { active: true } });
  });
  on(t, Method.ChannelFlowOk, () => {
    // We never send channel.flow to clients; a stray flow-ok is harmless.
  });
  on(t, Method.AccessRequest, (ch) => {
    // Deprecated in 0-9-1 but still sent by a few old clients; RabbitMQ answers with ticket 1.
    ch.conn.sendMethod(ch.id, { id: Method.AccessRequestOk, args: { ticket: 1 } });
  });
}
