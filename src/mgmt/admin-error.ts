/** How an admin command fails: rabbitmqctl's wording and exit code (warrenctl exits with it). */

/** rabbitmqctl's exit codes (sysexits.h, as RabbitMQ.CLI.Core.ExitCodes uses them). */
export const ExitCode = { ok: 0, usage: 64, dataErr: 65, noUser: 67, unavailable: 69, software: 70, config: 78 } as const;

export class AdminError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.software,
  ) {
    super(message);
  }
}
