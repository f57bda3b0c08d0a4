// How RabbitMQ cuts a topic routing key or binding key into words (rabbit_db_topic_exchange's
// split_topic_key): the empty key has no words; otherwise every '.' separates two words, so
// "a..b" is ["a", "", "b"], "a." is ["a", ""] and "." is ["", ""].

export const TOPIC_WORD_SEPARATOR = '.';
/** In a binding key, matches exactly one word. */
export const TOPIC_ONE_WORD = '*';
/** In a binding key, matches zero or more words. */
export const TOPIC_ANY_WORDS = '#';

export function topicWords(key: string): string[] {
  return key === '' ? [] : key.split(TOPIC_WORD_SEPARATOR);
}
