#!/usr/bin/env node
// The lob-rtrl command line. Each command only chooses a source, a clock and sinks; the
// engine below is the same for all of them.
import { Command, CommanderError } from 'commander';
import { registerReplayCommand } from './replay-command.js';
import { registerFeedServerCommand } from './feed-server-command.js';
import { registerStandinRecordingCommand } from './standin-recording-command.js';
import { registerDemoCommand } from './demo.js';
import { registerServeCommand } from './serve.js';
import { registerCheckpointsCommand } from './checkpoints-command.js';
import { registerPredictionsCommand } from './predictions-command.js';
import { registerPublishCommand } from './publish-command.js';
import { UsageError } from './options.js';
import { packageVersion } from '../domain/package-root.js';

const program = new Command()
  .name('lob-rtrl')
  .description('Limit-order-book signals from an online recurrent network trained by exact RTRL')
  .version(packageVersion(), '-V, --version', 'print the version and exit')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerServeCommand(program);
registerDemoCommand(program);
registerReplayCommand(program);
registerFeedServerCommand(program);
registerStandinRecordingCommand(program);
registerCheckpointsCommand(program);
registerPublishCommand(program);
registerPredictionsCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander has already printed its one-line message (or the help).
    process.exit(error.exitCode);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`lob-rtrl: ${message}\n`);
  process.exit(error instanceof UsageError ? 2 : 1);
}
