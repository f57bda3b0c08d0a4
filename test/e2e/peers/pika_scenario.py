"""The core flows through pika (Debian's python3-pika), as a Python service would use a broker.

Run by test/e2e/foreign-clients.test.ts as `/usr/bin/python3 pika_scenario.py URL PREFIX`.
It asserts nothing itself: it prints one JSON object of what it saw, and the test compares
that with what RabbitMQ answers. Names start with PREFIX so runs never share a queue.
"""
import json
import sys
import time
from decimal import Decimal

import pika
from pika.exceptions import ChannelClosedByBroker, UnroutableError

url, prefix = sys.argv[1], sys.argv[2]


def plain(value):
    """A header value as JSON can carry it: bytes as text, decimals as their digits."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, Decimal):
        return str(value)
    return value


seen = {}
exchange, queue = f"{prefix}.ex", f"{prefix}.q"

params = pika.URLParameters(url)
params.heartbeat = 10
params.blocked_connection_timeout = 10
conn = pika.BlockingConnection(params)
seen["server"] = {
    "product": conn._impl.server_properties.get("product", b"").decode()
    if isinstance(conn._impl.server_properties.get("product"), bytes)
    else conn._impl.server_properties.get("product"),
    "capabilities": sorted(k for k, v in conn._impl.server_properties.get("capabilities", {}).items() if v),
}
ch = conn.channel()
ch.confirm_delivery()
ch.exchange_declare(exchange, exchange_type="topic", durable=False)
declared = ch.queue_declare(queue, durable=True)
seen["declare"] = {"queue": declared.method.queue, "messages": declared.method.message_count, "consumers": declared.method.consumer_count}
ch.queue_bind(queue, exchange, routing_key="order.*")

headers = {"n": 0, "nested": {"list": [1, "x", True], "price": Decimal("3.25")}, "who": "pika"}
for n in range(10):
    headers["n"] = n
    ch.basic_publish(
        exchange,
        "order.new",
        f"order {n}".encode(),
        pika.BasicProperties(delivery_mode=2, content_type="text/plain", correlation_id=f"c{n}", headers=dict(headers)),
        mandatory=True,
    )
try:
    ch.basic_publish(exchange, "invoice.new", b"nobody wants this", mandatory=True)
    seen["unroutable"] = "confirmed"
except UnroutableError as e:
    seen["unroutable"] = [m.method.reply_code for m in e.messages]

method, props, body = ch.basic_get(queue)
seen["first_get"] = {
    "body": body.decode(),
    "redelivered": method.redelivered,
    "remaining": method.message_count,
    "routing_key": method.routing_key,
    "delivery_mode": props.delivery_mode,
    "content_type": props.content_type,
    "correlation_id": props.correlation_id,
    "headers": plain(props.headers),
}
ch.basic_nack(method.delivery_tag, requeue=True)
method, props, body = ch.basic_get(queue)
seen["after_nack"] = {"body": body.decode(), "redelivered": method.redelivered}
ch.basic_ack(method.delivery_tag)

ch.basic_qos(prefetch_count=3)
bodies = []
for method, props, body in ch.consume(queue, inactivity_timeout=5):
    if method is None:
        break
    bodies.append(body.decode())
    ch.basic_ack(method.delivery_tag)
    if len(bodies) == 9:
        break
ch.cancel()
seen["consumed"] = bodies

tx = conn.channel()
tx.tx_select()
tx.basic_publish("", queue, b"rolled back")
tx.tx_rollback()
tx.basic_publish("", queue, b"committed")
tx.tx_commit()
method, props, body = tx.basic_get(queue, auto_ack=True)
seen["tx"] = {"body": body.decode(), "remaining": method.message_count}

# Direct reply-to, as pika's own example uses it: the requester consumes the pseudo-queue
# with auto_ack and names it as reply_to; the responder replies to the name it is given.
rpc = conn.channel()
requests = rpc.queue_declare(f"{prefix}.rpc", exclusive=True).method.queue
replies = []
rpc.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, b: replies.append((b.decode(), p.correlation_id, m.routing_key)), auto_ack=True)
rpc.basic_publish("", requests, b"ping", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="rpc-1"))
responder = conn.channel()
deadline = time.monotonic() + 5
request = (None, None, None)
while request[0] is None and time.monotonic() < deadline:
    request = responder.basic_get(requests, auto_ack=True)
    if request[0] is None:
        conn.process_data_events(time_limit=0.05)
_, request_props, request_body = request
responder.basic_publish("", request_props.reply_to, b"pong:" + request_body, pika.BasicProperties(correlation_id=request_props.correlation_id))
while not replies and time.monotonic() < deadline:
    conn.process_data_events(time_limit=0.05)
seen["direct_reply_to"] = {
    "reply": replies[0][0] if replies else None,
    "correlation_id": replies[0][1] if replies else None,
    "reply_name_given": request_props.reply_to.startswith("amq.rabbitmq.reply-to.") and replies[0][2] == request_props.reply_to if replies else False,
}
rpc.close()
responder.close()

try:
    ch.queue_declare(f"{prefix}.missing", passive=True)
    seen["passive_missing"] = "declared"
except ChannelClosedByBroker as e:
    seen["passive_missing"] = {"code": e.reply_code, "text": e.reply_text}

ch = conn.channel()
deleted = ch.queue_delete(queue)
seen["delete"] = deleted.method.message_count
ch.exchange_delete(exchange)
conn.close()
seen["closed"] = conn.is_closed
print(json.dumps(seen))
