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
  // The channel is busy (later frames wait) until the transaction's publishes are confirmed:
  // commit-ok promises what a publisher confirm does.
  on(t, Method.TxCommit, async (ch) => {
    if (!ch.txMode) throw new AmqpError(ReplyCode.preconditionFailed, 'PRECONDITION_FAILED - channel is not transactional', 90, 20);
    const outcome = await ch.commitTx();
    if (outcome === 'failed') throw new AmqpError(ReplyCode.preconditionFailed, 'PRECONDITION_FAILED - partial tx completion', 90, 20);
    if (outcome === 'committed') ch.conn.sendMethod(ch.id, { id: Method.TxCommitOk, args: {} });
  });
  on(t, Method.TxRollback, (ch) => {
    if (!ch.txMode) throw new AmqpError(ReplyCode.preconditionFailed, 'PRECONDITION_FAILED - channel is not transactional', 90, 30);
    ch.txPublishes = [];
    ch.rollbackSettles();
    ch.conn.sendMethod(ch.id, { id: Method.TxRollbackOk, args: {} });
  });
}
