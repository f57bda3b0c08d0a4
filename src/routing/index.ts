// The routing area's public surface: the exchange graph, its matchers and argument checks.
export type { Binding, DestinationKind, ExchangeDef, ExchangeType, Matcher, MatcherBinding } from './types.js';
export { ALTERNATE_EXCHANGE_ARG, ExchangeGraph } from './exchange-graph.js';
export { DEFAULT_EXCHANGE, predeclaredExchanges } from './predeclared-exchanges.js';
export { DirectMatcher } from './direct-matcher.js';
export { FanoutMatcher } from './fanout-matcher.js';
export { TopicMatcher } from './topic-matcher.js';
export { HeadersMatcher } from './headers-matcher.js';
export { validateHeadersBindingArgs, xMatchMode, type XMatchMode } from './headers-binding-args.js';
export { fieldTableEquals, fieldValueEquals } from './field-value-identity.js';
export { topicWords } from './topic-words.js';
