/**
 * Stands in for the editor that starts a conversion: forks the conversion process (argv[2]: its script, argv[3]:
 * the request as JSON) as convertInChildProcess does, prints its pid, and lives until it is killed.
 */
import { fork } from 'node:child_process';

const child = fork(process.argv[2] ?? '', [process.argv[3] ?? '{}'], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
process.stdout.write(`${child.pid}\n`);
setInterval(() => undefined, 60_000);
