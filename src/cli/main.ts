import { exportUser } from './export.js'
import { importUser } from './import.js'
import { UsageError } from './user-data-cli.js'

// The entry of `npm run export` and `npm run import`: node dist/src/cli/main.js <command> ….

const commands = { export: exportUser, import: importUser }
const [command, ...args] = process.argv.slice(2)
const run = commands[command as keyof typeof commands]
try {
  if (run === undefined) throw new UsageError('usage: main.js export|import --user U [--file F] [--mode skip|replace] [--url URL]')
  process.exitCode = await run(args, process.env, process.stderr)
} catch (error) {
  process.stderr.write(`${error instanceof UsageError ? error.message : `failed: ${(error as Error).message}`}\n`)
  process.exitCode = 2
}
