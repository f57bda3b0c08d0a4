/**
 * The AMQP-over-WebSocket listener: path /ws, subprotocol `amqp` (answered when offered;
 * clients that offer none, as @cloudamqp/amqp-client's AMQPWebSocketClient, are accepted
 * too). Each WebSocket becomes a Connection exactly as a TCP socket does in node.ts.
 */
import uWS from 'uWebSockets.js';
import type { TemplatedApp } from 'uWebSockets.js';
import type { Broker } from '../front/broker.js';
import { Connection } from '../front/connection.js';
import type { Logger } from '../node/logger.js';
import { remoteAddressOf } from './http-server.js';
import { WsTransport, type WsUserData } from './ws-transport.js';

export const wsPath = '/ws';
/** Frame overhead on top of the largest message: a whole publish travels as one WebSocket message. */
const messageSlackBytes = 1024 * 1024;
/** uWS's own drop limit, far above the transport's outputBytesMax (which closes first). */
const uwsBackpressureMaxBytes = 512 * 1024 * 1024;

export function createWsApp(broker: Broker, host: string, localPort: () => number, log: Logger): TemplatedApp {
  let nextPeerSeq = 1;
  const app = uWS.App();
  app.ws<WsUserData>(wsPath, {
    maxPayloadLength: broker.config.maxMessageBytes + messageSlackBytes,
    maxBackpressure: uwsBackpressureMaxBytes,
    closeOnBackpressureLimit: 0,
    // Liveness is AMQP's heartbeat, as over TCP; uWS's idle timer would close quiet consumers.
    idleTimeout: 0,
    compression: uWS.DISABLED,
    sendPingsAutomatically: false,
    upgrade: (res, req, context) => {
      const offered = req
        .getHeader('sec-websocket-protocol')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      if (offered.length > 0 && !offered.includes('amqp')) {
        res.writeStatus('400 Bad Request').end(`unsupported WebSocket subprotocol(s) ${offered.join(', ')}: this endpoint speaks 'amqp'`);
        return;
      }
      const userData: WsUserData = { transport: undefined, remoteAddress: remoteAddressOf(res) };
      try {
        res.upgrade(userData, req.getHeader('sec-websocket-key'), offered.length > 0 ? 'amqp' : '', req.getHeader('sec-websocket-extensions'), context);
      } catch (err) {
        log.warn(`WebSocket upgrade refused: ${err instanceof Error ? err.message : String(err)}`);
        res.writeStatus('400 Bad Request').end('bad WebSocket upgrade request');
      }
    },
    open: (ws) => {
      const data = ws.getUserData();
      const transport = new WsTransport(ws, data.remoteAddress, nextPeerSeq++, host, localPort(), log);
      data.transport = transport;
      broker.connections.add(new Connection(broker, transport));
    },
    message: (ws, message, isBinary) => ws.getUserData().transport?.received(message, isBinary),
    drain: (ws) => ws.getUserData().transport?.drained(),
    close: (ws) => ws.getUserData().transport?.closed(),
  });
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').end(`AMQP 0-9-1 over WebSocket is served at ${wsPath}`);
  });
  return app;
}
