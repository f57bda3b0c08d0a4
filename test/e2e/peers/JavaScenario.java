// The core flows through the RabbitMQ Java client (Debian's librabbitmq-client-java, 5.0.0),
// as a JVM service would use a broker.
//
// Run by test/e2e/foreign-clients.test.ts as
//   java -cp /usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar JavaScenario.java URL PREFIX
// (Java 11+ runs a single source file without a javac step). It asserts nothing itself: it
// prints one JSON object of what it saw, and the test compares that with what RabbitMQ
// answers. Names start with PREFIX so runs never share a queue. Any failure is an uncaught
// exception: a stack trace on stderr and a non-zero exit.

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Delivery;
import com.rabbitmq.client.Envelope;
import com.rabbitmq.client.GetResponse;
import com.rabbitmq.client.LongString;
import com.rabbitmq.client.RpcClient;
import com.rabbitmq.client.RpcServer;
import com.rabbitmq.client.impl.LongStringHelper;
import com.rabbitmq.client.ShutdownSignalException;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public class JavaScenario {
    /** How long the scenario waits for anything the broker owes it (confirms, deliveries, notifications). */
    static final long eventDeadlineMs = 5_000;

    public static void main(String[] args) throws Exception {
        String url = args[0], prefix = args[1];
        String exchange = prefix + ".ex", queue = prefix + ".q", doomed = prefix + ".doomed";
        Map<String, Object> seen = new LinkedHashMap<>();

        ConnectionFactory factory = new ConnectionFactory();
        factory.setUri(url);
        factory.setRequestedHeartbeat(10);
        // The scenario checks each step itself; the client's recovery would hide a broker that drops us.
        factory.setAutomaticRecoveryEnabled(false);
        Connection conn = factory.newConnection("warren-java-scenario");

        Map<String, Object> server = new LinkedHashMap<>();
        server.put("product", String.valueOf(conn.getServerProperties().get("product")));
        @SuppressWarnings("unchecked")
        Map<String, Object> capabilities = (Map<String, Object>) conn.getServerProperties().get("capabilities");
        TreeSet<String> advertised = new TreeSet<>();
        for (Map.Entry<String, Object> e : capabilities.entrySet()) {
            if (Boolean.TRUE.equals(e.getValue())) advertised.add(e.getKey());
        }
        server.put("capabilities", new ArrayList<>(advertised));
        seen.put("server", server);
        seen.put("tune", map("channel_max", conn.getChannelMax(), "frame_max", conn.getFrameMax(), "heartbeat", conn.getHeartbeat()));

        Channel ch = conn.createChannel();
        List<Object> returns = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch returned = new CountDownLatch(1);
        ch.addReturnListener((replyCode, replyText, ex, routingKey, props, body) -> {
            returns.add(map("code", replyCode, "text", replyText, "exchange", ex, "routing_key", routingKey,
                    "body", new String(body, StandardCharsets.UTF_8)));
            returned.countDown();
        });
        ch.confirmSelect();
        ch.exchangeDeclare(exchange, "topic", false);
        AMQP.Queue.DeclareOk declared = ch.queueDeclare(queue, true, false, false, null);
        seen.put("declare", map("queue", declared.getQueue(), "messages", declared.getMessageCount(), "consumers", declared.getConsumerCount()));
        ch.queueBind(queue, exchange, "order.*");

        for (int n = 0; n < 10; n++) {
            AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                    .deliveryMode(2)
                    .contentType("text/plain")
                    .correlationId("c" + n)
                    .messageId("m" + n)
                    .priority(1)
                    .timestamp(new Date(1_700_000_000_000L))
                    .headers(headers(n))
                    .build();
            ch.basicPublish(exchange, "order.new", true, props, ("order " + n).getBytes(StandardCharsets.UTF_8));
        }
        ch.basicPublish(exchange, "invoice.new", true, null, "nobody wants this".getBytes(StandardCharsets.UTF_8));
        ch.waitForConfirmsOrDie(eventDeadlineMs);
        // basic.return comes before the basic.ack of the same publish, so it is already here; the latch says so if not.
        seen.put("returned_before_confirm", returned.getCount() == 0);
        returned.await(eventDeadlineMs, TimeUnit.MILLISECONDS);
        seen.put("unroutable", new ArrayList<>(returns));

        GetResponse first = ch.basicGet(queue, false);
        AMQP.BasicProperties p = first.getProps();
        Map<String, Object> firstGet = map(
                "body", new String(first.getBody(), StandardCharsets.UTF_8),
                "redelivered", first.getEnvelope().isRedeliver(),
                "remaining", first.getMessageCount(),
                "exchange", first.getEnvelope().getExchange(),
                "routing_key", first.getEnvelope().getRoutingKey());
        firstGet.put("delivery_mode", p.getDeliveryMode());
        firstGet.put("content_type", p.getContentType());
        firstGet.put("correlation_id", p.getCorrelationId());
        firstGet.put("message_id", p.getMessageId());
        firstGet.put("priority", p.getPriority());
        firstGet.put("timestamp_s", p.getTimestamp().getTime() / 1000);
        firstGet.put("headers", typed(p.getHeaders()));
        seen.put("first_get", firstGet);
        ch.basicNack(first.getEnvelope().getDeliveryTag(), false, true);
        GetResponse again = ch.basicGet(queue, false);
        seen.put("after_nack", map("body", new String(again.getBody(), StandardCharsets.UTF_8), "redelivered", again.getEnvelope().isRedeliver()));
        ch.basicAck(again.getEnvelope().getDeliveryTag(), false);

        ch.basicQos(3);
        List<String> bodies = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch allConsumed = new CountDownLatch(9);
        CountDownLatch cancelOk = new CountDownLatch(1);
        Channel consumerChannel = ch;
        String tag = ch.basicConsume(queue, false, prefix + ".ctag", new DefaultConsumer(ch) {
            @Override
            public void handleDelivery(String consumerTag, Envelope envelope, AMQP.BasicProperties properties, byte[] body) throws IOException {
                bodies.add(new String(body, StandardCharsets.UTF_8));
                consumerChannel.basicAck(envelope.getDeliveryTag(), false);
                allConsumed.countDown();
            }

            @Override
            public void handleCancelOk(String consumerTag) {
                cancelOk.countDown();
            }
        });
        seen.put("consumer_tag", tag.equals(prefix + ".ctag"));
        seen.put("all_consumed", allConsumed.await(eventDeadlineMs, TimeUnit.MILLISECONDS));
        seen.put("consumed", new ArrayList<>(bodies));
        ch.basicCancel(tag);
        seen.put("cancel_ok", cancelOk.await(eventDeadlineMs, TimeUnit.MILLISECONDS));

        // consumer_cancel_notify: deleting a queue under a consumer sends it basic.cancel.
        ch.queueDeclare(doomed, false, false, false, null);
        String[] cancelledTag = new String[1];
        CountDownLatch cancelled = new CountDownLatch(1);
        ch.basicConsume(doomed, false, prefix + ".doomed-ctag", new DefaultConsumer(ch) {
            @Override
            public void handleCancel(String consumerTag) {
                cancelledTag[0] = consumerTag;
                cancelled.countDown();
            }
        });
        Channel deleter = conn.createChannel();
        AMQP.Queue.DeleteOk doomedDeleted = deleter.queueDelete(doomed);
        boolean notified = cancelled.await(eventDeadlineMs, TimeUnit.MILLISECONDS);
        seen.put("cancel_notify", map("notified", notified, "consumer_tag", String.valueOf(cancelledTag[0]),
                "deleted_messages", doomedDeleted.getMessageCount(), "channel_open", ch.isOpen()));
        deleter.close();

        Channel tx = conn.createChannel();
        tx.txSelect();
        tx.basicPublish("", queue, null, "rolled back".getBytes(StandardCharsets.UTF_8));
        tx.txRollback();
        tx.basicPublish("", queue, null, "committed".getBytes(StandardCharsets.UTF_8));
        tx.txCommit();
        GetResponse committed = tx.basicGet(queue, true);
        seen.put("tx", map("body", new String(committed.getBody(), StandardCharsets.UTF_8), "remaining", committed.getMessageCount()));
        tx.close();

        // Direct reply-to through the client's own RPC classes: RpcClient's default reply-to is amq.rabbitmq.reply-to.
        Channel serverCh = conn.createChannel();
        String rpcQueue = prefix + ".rpc";
        serverCh.queueDeclare(rpcQueue, false, true, true, null);
        String[] requestReplyTo = new String[1];
        RpcServer rpcServer = new RpcServer(serverCh, rpcQueue) {
            @Override
            public byte[] handleCall(Delivery request, AMQP.BasicProperties replyProperties) {
                requestReplyTo[0] = request.getProperties().getReplyTo();
                return ("pong:" + new String(request.getBody(), StandardCharsets.UTF_8)).getBytes(StandardCharsets.UTF_8);
            }
        };
        Thread serverThread = new Thread(() -> {
            try {
                rpcServer.mainloop();
            } catch (IOException e) {
                // the scenario's own close ends the loop
            }
        });
        serverThread.setDaemon(true);
        serverThread.start();
        RpcClient rpc = new RpcClient(conn.createChannel(), "", rpcQueue, 5000);
        String rpcReply = rpc.stringCall("ping");
        seen.put("direct_reply_to", map("reply", rpcReply, "reply_name_given", requestReplyTo[0] != null && requestReplyTo[0].startsWith("amq.rabbitmq.reply-to.")));
        rpc.close();
        rpcServer.terminateMainloop();

        seen.put("passive_missing_queue", channelError(ch, c -> c.queueDeclarePassive(prefix + ".missing")));
        Channel probe = conn.createChannel();
        seen.put("passive_missing_exchange", channelError(probe, c -> c.exchangeDeclarePassive(prefix + ".missing-ex")));

        Channel last = conn.createChannel();
        AMQP.Queue.DeleteOk deleted = last.queueDelete(queue);
        seen.put("delete", deleted.getMessageCount());
        last.exchangeDelete(exchange);
        conn.close();
        seen.put("closed", !conn.isOpen());
        System.out.println(json(seen));
    }

    /** Headers of every AMQP field-table type the Java client writes, nested table and array included. */
    static Map<String, Object> headers(int n) {
        Map<String, Object> nested = new LinkedHashMap<>();
        nested.put("list", Arrays.asList(1, "x", true, 2L));
        nested.put("price", new BigDecimal("3.25"));
        Map<String, Object> h = new LinkedHashMap<>();
        h.put("n", (long) n);
        h.put("int", 42);
        h.put("negative", -7L);
        h.put("short", (short) -300);
        h.put("byte", (byte) -5);
        h.put("double", 2.5d);
        h.put("float", 0.5f);
        h.put("flag", false);
        h.put("when", new Date(1_700_000_000_000L));
        h.put("raw", new byte[] {0, 1, (byte) 0xff});
        h.put("long_string", LongStringHelper.asLongString("long string"));
        h.put("nested", nested);
        h.put("who", "java");
        h.put("void", null);
        return h;
    }

    interface ChannelOp {
        void run(Channel ch) throws IOException;
    }

    /** Runs op, which must make the broker close the channel; returns the channel.close the client saw. */
    static Map<String, Object> channelError(Channel ch, ChannelOp op) {
        try {
            op.run(ch);
            return map("error", "none");
        } catch (IOException e) {
            if (!(e.getCause() instanceof ShutdownSignalException)) throw new RuntimeException("not a channel close", e);
            ShutdownSignalException sse = (ShutdownSignalException) e.getCause();
            Map<String, Object> out = map("hard_error", sse.isHardError(), "channel_open", ch.isOpen(),
                    "connection_open", ch.getConnection().isOpen());
            if (sse.getReason() instanceof AMQP.Channel.Close) {
                AMQP.Channel.Close close = (AMQP.Channel.Close) sse.getReason();
                out.put("code", close.getReplyCode());
                out.put("text", close.getReplyText());
                out.put("class_id", close.getClassId());
                out.put("method_id", close.getMethodId());
            } else {
                out.put("reason", String.valueOf(sse.getReason()));
            }
            return out;
        }
    }

    /** A header value with its Java type, e.g. "Long 7": the type is what a field table round-trip can get wrong. */
    static Object typed(Object v) {
        if (v instanceof Map) {
            Map<String, Object> out = new TreeMap<>();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) out.put(String.valueOf(e.getKey()), typed(e.getValue()));
            return out;
        }
        if (v instanceof List) {
            List<Object> out = new ArrayList<>();
            for (Object o : (List<?>) v) out.add(typed(o));
            return out;
        }
        if (v == null) return "null";
        if (v instanceof LongString) return "LongString " + v;
        if (v instanceof byte[]) {
            StringBuilder hex = new StringBuilder("byte[] ");
            for (byte b : (byte[]) v) hex.append(String.format("%02x", b));
            return hex.toString();
        }
        if (v instanceof Date) return "Date " + ((Date) v).getTime();
        if (v instanceof BigDecimal) return "BigDecimal " + ((BigDecimal) v).toPlainString();
        return v.getClass().getSimpleName() + " " + v;
    }

    static Map<String, Object> map(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        return m;
    }

    static String json(Object v) {
        if (v == null) return "null";
        if (v instanceof String) return quote((String) v);
        if (v instanceof Boolean || v instanceof Integer || v instanceof Long) return v.toString();
        if (v instanceof Map) {
            StringBuilder sb = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (sb.length() > 1) sb.append(", ");
                sb.append(quote(String.valueOf(e.getKey()))).append(": ").append(json(e.getValue()));
            }
            return sb.append('}').toString();
        }
        if (v instanceof List) {
            StringBuilder sb = new StringBuilder("[");
            for (Object o : (List<?>) v) {
                if (sb.length() > 1) sb.append(", ");
                sb.append(json(o));
            }
            return sb.append(']').toString();
        }
        throw new IllegalArgumentException("no JSON form for " + v.getClass());
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
            }
        }
        return sb.append('"').toString();
    }
}
