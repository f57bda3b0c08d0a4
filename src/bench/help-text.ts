export const HELP_TEXT = `usage: npm run bench -- [options]      (also: node dist/src/cli/bench.js [options])

A load generator for any AMQP 0-9-1 broker (warren, RabbitMQ, ...), in the manner of
RabbitMQ's PerfTest. Clients run on a pool of worker threads, one connection each.

broker
  -u, --url URL[,URL...]   broker to load (default amqp://guest:guest@localhost:5672); several
                           URLs (comma-separated or --url repeated) are the nodes of a cluster:
                           client k connects to URL k mod n (producers first, then consumers),
                           queues are declared on the first
      --compare URL2[,...] run the same workload against a second broker (or cluster), alternating
                           rounds, and print both and the ratio url/compare
      --rounds N           rounds per broker (default 1; 3 is a sensible minimum with --compare)
      --warmup SECONDS     first run the same workload this long against each broker, not counted
                           (default 0): a broker started moments ago may still be warming up (a
                           Node broker's JIT compiles its hot paths over the first seconds)

clients
  -x, --producers N        producer connections (default 1)
  -y, --consumers N        consumer connections (default 1)
      --threads N          worker threads that run the clients (default: min(clients, cores))

queues and routing
      --queues N           queues to declare; producer i and consumer i use queue i mod N (default 1)
      --queue-prefix P     queue names are P-1 .. P-N (default warren-bench-<random>)
      --queue-type T       classic | quorum: declares the queues with x-queue-type=T (default: no
                           argument, a classic queue); quorum queues are durable, not exclusive,
                           not auto-delete, and are deleted at the end like the others
      --queue-args LIST    queue.declare arguments, e.g. x-queue-type=quorum,x-max-length=1000
                           (integers and true/false are typed; quorum and stream queues are durable)
      --exchange NAME      exchange to publish to; '' is the default exchange (default '' unless
                           --exchange-type is given, then <queue-prefix>-exchange, deleted at the end)
      --exchange-type T    direct | fanout | topic | headers (default direct)
      --routing-key K      routing key of every publish (default: the producer's queue name)
      --binding-key K      key every queue is bound with (default: the routing key or the queue name)
      --keep-queues        leave queues and the exchange in place at the end

messages
  -s, --size BYTES         body size: 256 or a range 100-1000 drawn uniformly (default 256, min 8)
      --persistent         delivery-mode 2 and durable queues
  -r, --rate N             messages/s per producer, on a fixed schedule; latency counts from the
                           scheduled send time so stalls are not hidden (default: unlimited)
  -c, --confirm N          publisher confirms with at most N unconfirmed per producer
  -z, --duration SECONDS   how long producers publish (default 10 unless --pmessages is given)
  -C, --pmessages N        messages per producer, then stop

consuming
  -q, --prefetch N         basic.qos per consumer, 0 = unlimited (default 1000)
  -A, --multi-ack N        ack with multiple=true every N messages (default 1: each on its own)
  -a, --autoack            consume with no-ack

client sockets
      --tls-ca FILE        PEM file of the CAs to trust for amqps:// URLs (a broker with its own CA)
      --nagle              leave Nagle's algorithm on (amqplib's default); by default the bench sets
                           TCP_NODELAY, as RabbitMQ's Java client and PerfTest do: with Nagle on, a
                           small publish may wait for the broker's delayed ACK (40 ms on Linux)

output
      --json               print one JSON document on stdout (progress goes to stderr)
      --hgrm DIR           write the latency distributions as HdrHistogram .hgrm files in DIR
      --plot FILE.svg      draw latency by percentile (log percentile axis) as an SVG
  -h, --help               this text

At the end every run checks that published = consumed + left in the queues (counting copies
when the exchange routes one message to several queues). Exit codes: 0 ok, 1 a broker or
connection failed, 2 bad arguments, 3 messages went unaccounted for.
`;
