import { AmqpError } from '../../amqp/errors.js';
import { Method, ReplyCode } from '../../amqp/spec.generated.js';
import { on, type HandlerTable } from './types.js';

export function registerConfirmTxMethods(t: HandlerTable): void {
  on(t, Method.ConfirmSelect, (ch, a) => {
    if (ch.txMode) {
      throw new AmqpError(ReplyCode.preconditionFailed, 'PRECONDITION_FAILED - cannot switch from tx to confirm mode', 85, 10);
    }
    ch.confirmMode = true;
    if (!a.nowait) ch.conn.sendMethod(ch.id, { id: Method.ConfirmSelectOk, args: {} });
  });
  on(t, Method.TxSelect, (ch) => {
    if (ch.confirmMode) {
      throw new AmqpError(ReplyCode.preconditionFailed, 'PRECONDITION_FAILED - cannot switch from confirm to tx mode', 90, 10);
    }
    ch.txMode = true;
    ch.conn.sendMethod(ch.id, { id: Method.TxSelectOk, args: {} });
  });
  on(t, Method.TxCommit, (ch) => {
    if (!ch.txMode) throw new AmqpError(ReplyCode.preconditionFailed, 'PRECONDITION_FAILED - channel is not transactional', 90, 20);
    const publishes = ch.txPublishes;
    const settles = ch.txSettles;
    ch.txPublishes = [];
    ch.txSettles = [];
    for (const p of publishes) ch.routeAndPublish(p.exchange, p.routingKey, p.mandatory, p.payload, p.propsStart, p.propsEnd, p.routingKeys);
    for (const s of settles) ch.settle(s.refs, s.how);
    ch.conn.sendMethod(ch.id, { id: Method.TxCommitOk, args: {} });
  });
  on(t, Method.TxRollback, (ch) => {
    if (!ch.txMode) throw new AmqpError(ReplyCode.preconditionFailed, 'PRECONDITION_FAILED - channel is not transactional', 90, 30);
    ch.txPublishes = [];
    ch.rollbackSettles();
    ch.conn.sendMethod(ch.id, { id: Method.TxRollbackOk, args: {} });
  });
}
