import { registerBasicMethods } from './basic-methods.js';
import { registerChannelMethods } from './channel-methods.js';
import { registerConfirmTxMethods } from './confirm-tx-methods.js';
import { registerExchangeMethods } from './exchange-methods.js';
import { registerQueueMethods } from './queue-methods.js';
import type { HandlerTable } from './types.js';

/** Every method a client may send on a channel other than 0, by method id. */
export const methodHandlers: HandlerTable = new Map();
registerChannelMethods(methodHandlers);
registerExchangeMethods(methodHandlers);
registerQueueMethods(methodHandlers);
registerBasicMethods(methodHandlers);
registerConfirmTxMethods(methodHandlers);
