import { createHash } from 'node:crypto'
import { cp, lstat, mkdir, readdir, readFile, readlink, stat, symlink, copyFile } from 'node:fs/promises'
import { basename, dirname, join, posix, relative, sep } from 'node:path'
import { runCommand, spawnProcess, systemPath, waitForExit, killProcess, type ProcessResult, type SpawnedProcess } from './process.js'

// A parser for the subset of Dockerfile syntax this repository uses, and an executor that
// performs a parsed Dockerfile's steps in temporary folders, standing in for `docker build`
// and `docker run` where no Docker engine runs. Anything outside the subset throws, so a
// new instruction or flag in the Dockerfile makes the image test fail until this file (and
// the test) learn it, instead of being skipped silently.

// ---------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------

interface Located {
  /** The 1-based line the instruction starts on. */
  line: number
  /** The instruction as written, continuation lines joined. */
  text: string
}

export interface WorkdirInstruction extends Located { kind: 'WORKDIR', path: string }
export interface CopyInstruction extends Located {
  kind: 'COPY'
  /** The stage named by `--from=`, or undefined for the build context. */
  from: string | undefined
  sources: string[]
  dest: string
}
export interface RunInstruction extends Located { kind: 'RUN', /** Shell form: run with `sh -c`. */ command: string }
export interface EnvInstruction extends Located { kind: 'ENV', vars: Array<[string, string]> }
export interface UserInstruction extends Located { kind: 'USER', user: string }
export interface ExposeInstruction extends Located { kind: 'EXPOSE', ports: string[] }
export interface HealthcheckInstruction extends Located {
  kind: 'HEALTHCHECK'
  /** Options by name without the dashes: interval, timeout, start-period, start-interval, retries. */
  options: Record<string, string>
  /** Exec form. */
  argv: string[]
}
export interface CmdInstruction extends Located { kind: 'CMD', /** Exec form. */ argv: string[] }

export type Instruction =
  | WorkdirInstruction | CopyInstruction | RunInstruction | EnvInstruction | UserInstruction
  | ExposeInstruction | HealthcheckInstruction | CmdInstruction

export interface Stage {
  /** 0-based position in the Dockerfile. */
  index: number
  /** The `AS` name, if any. */
  name: string | undefined
  image: string
  line: number
  instructions: Instruction[]
}

export interface Dockerfile {
  stages: Stage[]
}

export class DockerfileError extends Error {
  constructor (line: number, message: string) {
    super(`Dockerfile line ${line}: ${message}`)
    this.name = 'DockerfileError'
  }
}

const isComment = (line: string): boolean => /^\s*#/.test(line)
const isBlank = (line: string): boolean => line.trim() === ''

/** Parses Dockerfile text; throws a DockerfileError on anything outside the supported subset. */
export function parseDockerfile (text: string): Dockerfile {
  const lines = text.split(/\r?\n/)

  // Parser directives are comments at the very top; `escape` would change how lines continue.
  for (const line of lines) {
    const directive = /^\s*#\s*([a-z]+)\s*=/i.exec(line)
    if (directive === null) break
    if (directive[1]?.toLowerCase() === 'escape') throw new DockerfileError(lines.indexOf(line) + 1, 'the escape directive is not supported')
  }

  const stages: Stage[] = []
  let index = 0
  while (index < lines.length) {
    const start = index + 1
    let line = lines[index++] ?? ''
    if (isBlank(line) || isComment(line)) continue
    // A backslash at the end of a line continues the instruction; comment and blank lines
    // inside a continuation are dropped, as Docker does.
    let logical = ''
    for (;;) {
      const continued = /\\\s*$/.exec(line)
      if (continued === null) {
        logical += line
        break
      }
      logical += line.slice(0, continued.index)
      while (index < lines.length && (isBlank(lines[index] ?? '') || isComment(lines[index] ?? ''))) index++
      if (index >= lines.length) break
      line = lines[index++] ?? ''
    }
    const instruction = parseInstruction(logical.trim(), start, stages)
    if (instruction === undefined) continue
    const stage = stages.at(-1)
    if (stage === undefined) throw new DockerfileError(start, `${instruction.kind} before the first FROM`)
    stage.instructions.push(instruction)
  }
  if (stages.length === 0) throw new DockerfileError(1, 'no FROM instruction')
  return { stages }
}

/** Returns the instruction, or undefined for FROM (which opens a stage in `stages`). */
function parseInstruction (text: string, line: number, stages: Stage[]): Instruction | undefined {
  const match = /^(\S+)\s*(.*)$/s.exec(text)
  const keyword = (match?.[1] ?? '').toUpperCase()
  const args = match?.[2]?.trim() ?? ''
  const fail = (message: string): never => { throw new DockerfileError(line, `${keyword}: ${message}`) }
  const noVariables = (): void => {
    // Docker substitutes $VAR in these instructions; the executor does not.
    if (args.includes('$')) fail('variable substitution ($) is not supported')
  }

  switch (keyword) {
    case 'FROM': {
      noVariables()
      const words = args.split(/\s+/)
      if (words.some((word) => word.startsWith('--'))) fail('options are not supported')
      const [image, as, name, ...rest] = words
      if (image === undefined || image === '') fail('no image')
      if (as !== undefined && (as.toUpperCase() !== 'AS' || name === undefined || rest.length > 0)) fail('expected "FROM image [AS name]"')
      if (stages.some((stage) => stage.name !== undefined && stage.name === image)) fail('building on an earlier stage is not supported')
      stages.push({ index: stages.length, name: name?.toLowerCase(), image: image as string, line, instructions: [] })
      return undefined
    }
    case 'WORKDIR':
      noVariables()
      if (args === '' || /\s/.test(args)) fail('expected one path')
      return { kind: 'WORKDIR', line, text, path: args }
    case 'COPY': {
      noVariables()
      if (args.startsWith('[')) fail('the JSON form is not supported')
      const words = args.split(/\s+/)
      let from: string | undefined
      while (words[0]?.startsWith('--') === true) {
        const flag = words.shift() as string
        const fromFlag = /^--from=(\S+)$/.exec(flag)
        if (fromFlag === null) fail(`the option ${flag} is not supported`)
        from = fromFlag?.[1]?.toLowerCase()
      }
      const dest = words.pop()
      if (dest === undefined || words.length === 0) fail('expected "COPY [--from=stage] src... dest"')
      return { kind: 'COPY', line, text, from, sources: words, dest: dest as string }
    }
    case 'RUN':
      if (args.startsWith('[')) fail('the exec form is not supported')
      if (args.startsWith('--')) fail('options are not supported')
      if (args.includes('<<')) fail('here-documents are not supported')
      if (args === '') fail('no command')
      return { kind: 'RUN', line, text, command: args }
    case 'ENV': {
      noVariables()
      const vars = shellWords(args, fail).map((word): [string, string] => {
        const equals = word.indexOf('=')
        if (equals <= 0) fail('only the "ENV key=value ..." form is supported')
        return [word.slice(0, equals), word.slice(equals + 1)]
      })
      if (vars.length === 0) fail('no variables')
      return { kind: 'ENV', line, text, vars }
    }
    case 'USER':
      noVariables()
      if (args === '' || /\s/.test(args)) fail('expected one user')
      return { kind: 'USER', line, text, user: args }
    case 'EXPOSE': {
      noVariables()
      const ports = args.split(/\s+/).filter((port) => port !== '')
      if (ports.length === 0 || ports.some((port) => !/^\d+(\/(tcp|udp))?$/.test(port))) fail('expected port[/tcp|udp]...')
      return { kind: 'EXPOSE', line, text, ports }
    }
    case 'HEALTHCHECK': {
      const options: Record<string, string> = {}
      let rest = args
      for (let option = /^--([a-z-]+)=(\S+)\s+/.exec(rest); option !== null; option = /^--([a-z-]+)=(\S+)\s+/.exec(rest)) {
        const [whole, name = '', value = ''] = option
        if (!['interval', 'timeout', 'start-period', 'start-interval', 'retries'].includes(name)) fail(`the option --${name} is not supported`)
        options[name] = value
        rest = rest.slice(whole.length)
      }
      const cmd = /^CMD\s+(.*)$/is.exec(rest)
      if (cmd === null) fail('expected "HEALTHCHECK [options] CMD [...]"')
      return { kind: 'HEALTHCHECK', line, text, options, argv: execForm(cmd?.[1] ?? '', fail) }
    }
    case 'CMD':
      return { kind: 'CMD', line, text, argv: execForm(args, fail) }
    default:
      return fail('this instruction is not supported; teach test/helpers/dockerfile.ts and test/image.test.ts about it')
  }
}

/** The exec form: a JSON array of strings. Anything else Docker would run through a shell. */
function execForm (args: string, fail: (message: string) => never): string[] {
  let argv: unknown
  try {
    argv = JSON.parse(args)
  } catch {
    return fail(`only the exec form (a JSON array of strings) is supported, not ${JSON.stringify(args)}`)
  }
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((arg) => typeof arg === 'string')) {
    return fail('the exec form must be a non-empty JSON array of strings')
  }
  return argv as string[]
}

/** Splits ENV arguments into words, honouring double and single quotes and backslashes. */
function shellWords (text: string, fail: (message: string) => never): string[] {
  const words: string[] = []
  let word: string | undefined
  let quote: '"' | "'" | undefined
  for (let i = 0; i < text.length; i++) {
    const char = text[i] as string
    if (quote !== undefined) {
      if (char === quote) quote = undefined
      else if (char === '\\' && quote === '"' && i + 1 < text.length) word += text[++i] as string
      else word += char
    } else if (/\s/.test(char)) {
      if (word !== undefined) words.push(word)
      word = undefined
    } else if (char === '"' || char === "'") {
      quote = char
      word ??= ''
    } else if (char === '\\' && i + 1 < text.length) {
      word = (word ?? '') + (text[++i] as string)
    } else {
      word = (word ?? '') + char
    }
  }
  if (quote !== undefined) fail('unterminated quote')
  if (word !== undefined) words.push(word)
  return words
}

/** Docker durations as HEALTHCHECK uses them ("30s", "1m30s", "500ms"), in milliseconds. */
export function parseDuration (text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }
  let total = 0
  const rest = text.replace(/(\d+(?:\.\d+)?)(ms|s|m|h)/g, (_, value: string, unit: string) => {
    total += Number(value) * (units[unit] ?? Number.NaN)
    return ''
  })
  if (rest !== '' || text === '' || !Number.isFinite(total)) throw new Error(`not a duration: ${text}`)
  return total
}

// ---------------------------------------------------------------------------------------
// .dockerignore
// ---------------------------------------------------------------------------------------

interface IgnorePattern { exclude: boolean, regex: RegExp }

/**
 * A matcher for .dockerignore text: `*`, `?` and `**` globs, `#` comments and `!`
 * exceptions; the last matching pattern wins, and a pattern that matches a directory
 * matches everything beneath it. Takes a context-relative path with `/` separators.
 */
export function dockerignore (text: string): (path: string) => boolean {
  const patterns: IgnorePattern[] = []
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const exclude = !line.startsWith('!')
    if (!exclude) line = line.slice(1).trim()
    const pattern = posix.normalize(line).replace(/^\/+/, '').replace(/\/+$/, '')
    if (pattern === '.' || pattern === '') continue
    patterns.push({ exclude, regex: globToRegExp(pattern) })
  }
  return (path) => {
    const parts = path.split('/')
    let ignored = false
    for (const { exclude, regex } of patterns) {
      for (let n = 1; n <= parts.length; n++) {
        if (regex.test(parts.slice(0, n).join('/'))) {
          ignored = exclude
          break
        }
      }
    }
    return ignored
  }
}

function globToRegExp (pattern: string): RegExp {
  let source = ''
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i] as string
    if (char === '*' && pattern[i + 1] === '*') {
      i++
      if (pattern[i + 1] === '/') {
        i++
        source += '(?:.*/)?'
      } else {
        source += '.*'
      }
    } else if (char === '*') {
      source += '[^/]*'
    } else if (char === '?') {
      source += '[^/]'
    } else if (char === '[' || char === '\\') {
      throw new Error(`.dockerignore: ${JSON.stringify(pattern)}: character classes and escapes are not supported`)
    } else {
      source += char.replace(/[.+^${}()|\]]/g, '\\$&')
    }
  }
  return new RegExp(`^${source}$`)
}

const hasWildcard = (text: string): boolean => /[*?[]/.test(text)

// ---------------------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------------------

export interface StageConfig {
  /** The WORKDIR inside the image, e.g. "/app". */
  workdir: string | undefined
  /** The stage's ENV, in order, later values winning. */
  env: Record<string, string>
  user: string | undefined
  exposed: string[]
  healthcheck: HealthcheckInstruction | undefined
  cmd: string[] | undefined
}

/** The image configuration a stage ends with (what `docker inspect` would show). */
export function stageConfig (stage: Stage): StageConfig {
  const config: StageConfig = { workdir: undefined, env: {}, user: undefined, exposed: [], healthcheck: undefined, cmd: undefined }
  for (const instruction of stage.instructions) {
    switch (instruction.kind) {
      case 'WORKDIR': config.workdir = posix.resolve(config.workdir ?? '/', instruction.path); break
      case 'ENV': for (const [key, value] of instruction.vars) config.env[key] = value; break
      case 'USER': config.user = instruction.user; break
      case 'EXPOSE': config.exposed.push(...instruction.ports); break
      case 'HEALTHCHECK': config.healthcheck = instruction; break
      case 'CMD': config.cmd = instruction.argv; break
    }
  }
  return config
}

export interface BuiltStage extends StageConfig {
  stage: Stage
  workdir: string
  /** The folder standing in for the stage's WORKDIR. */
  dir: string
  /** A digest of everything that determines the folder's contents. */
  key: string
  /** How the folder came about. */
  origin: 'built' | 'cached' | 'reused'
}

export interface BuiltImage {
  stages: BuiltStage[]
  /** The last stage: the image `docker run` starts. */
  final: BuiltStage
  stage: (name: string) => BuiltStage
}

export interface BuildOptions {
  /** The build context: COPY without --from reads from here, honouring its .dockerignore. */
  contextDir: string
  /** Stage folders are created in here. */
  workRoot: string
  /** Environment for RUN, under the stage's ENV: at least PATH and HOME. */
  runEnv: NodeJS.ProcessEnv
  /**
   * Stages built earlier, by key. A stage whose key (instructions, copied file contents,
   * source stages) matches is reused as it is, as Docker's build cache would.
   */
  cache?: Map<string, BuiltStage>
  /**
   * Stages taken from another build although their inputs differ: a declared shortcut,
   * allowed only when the instructions are the same. The caller must argue why it is honest.
   */
  reuse?: Record<string, BuiltStage>
  /** Progress messages. */
  log?: (message: string) => void
}

interface PlannedCopy {
  /** The absolute source path on this machine. */
  from: string
  /** The destination, relative to the stage folder ('' for the folder itself). */
  to: string
  /** Whether `from` is a directory whose contents go into `to`. */
  directory: boolean
}

/** Performs the Dockerfile's stages in order, each in its own folder under `workRoot`. */
export async function buildImage (dockerfile: Dockerfile, options: BuildOptions): Promise<BuiltImage> {
  const ignored = dockerignore(await readFile(join(options.contextDir, '.dockerignore'), 'utf8').catch(() => ''))
  const built: BuiltStage[] = []
  const log = options.log ?? (() => {})

  for (const stage of dockerfile.stages) {
    const label = stage.name ?? String(stage.index)
    const config = stageConfig(stage)
    const workdir = requireWorkdir(stage)
    const findStage = (name: string, line: number): BuiltStage => {
      const source = built.find((candidate) => candidate.stage.name === name || String(candidate.stage.index) === name)
      if (source === undefined) throw new DockerfileError(line, `COPY --from=${name}: no earlier stage of that name`)
      return source
    }

    // The cache key: what Docker's build cache looks at. CMD, HEALTHCHECK and EXPOSE do not
    // change the folder, so they are left out.
    const hash = createHash('sha256').update(stage.image)
    for (const instruction of stage.instructions) {
      if (instruction.kind === 'CMD' || instruction.kind === 'HEALTHCHECK' || instruction.kind === 'EXPOSE') continue
      hash.update(`\n${instruction.text}\n`)
      if (instruction.kind !== 'COPY') continue
      if (instruction.from !== undefined) {
        hash.update(findStage(instruction.from, instruction.line).key)
        continue
      }
      for (const copy of await planContextCopy(instruction, workdir, options.contextDir, ignored)) {
        for (const file of copy.directory ? await listFiles(copy.from, relative(options.contextDir, copy.from), ignored) : ['']) {
          const path = join(copy.from, file)
          hash.update(`${copy.to}:${file}:`)
          const info = await lstat(path)
          hash.update(info.isSymbolicLink() ? `-> ${await readlink(path)}` : await readFile(path))
        }
      }
    }
    const key = hash.digest('hex')

    const reused = options.reuse?.[label]
    if (reused !== undefined) {
      const texts = (s: Stage): string => s.instructions.map((instruction) => instruction.text).join('\n')
      if (texts(reused.stage) !== texts(stage) || reused.stage.image !== stage.image) {
        throw new Error(`stage ${label}: cannot reuse a stage with different instructions`)
      }
      log(`stage ${label}: reused from another build (declared shortcut)`)
      built.push({ ...reused, ...config, workdir, stage, origin: 'reused' })
      continue
    }
    const cached = options.cache?.get(key)
    if (cached !== undefined) {
      log(`stage ${label}: inputs unchanged, cached folder reused`)
      built.push({ ...cached, ...config, workdir, stage, origin: 'cached' })
      continue
    }

    const dir = join(options.workRoot, `stage-${stage.index}-${label.replace(/[^\w.-]/g, '_')}-${key.slice(0, 12)}`)
    await mkdir(dir, { recursive: true })
    const env: Record<string, string> = {}
    for (const instruction of stage.instructions) {
      const started = Date.now()
      switch (instruction.kind) {
        case 'ENV':
          for (const [name, value] of instruction.vars) env[name] = value
          break
        case 'COPY': {
          const copies = instruction.from === undefined
            ? await planContextCopy(instruction, workdir, options.contextDir, ignored)
            : await planStageCopy(instruction, workdir, findStage(instruction.from, instruction.line))
          for (const copy of copies) {
            const target = join(dir, copy.to)
            if (!copy.directory) {
              await mkdir(dirname(target), { recursive: true })
              await copyEntry(copy.from, target)
            } else if (instruction.from === undefined) {
              for (const file of await listFiles(copy.from, relative(options.contextDir, copy.from), ignored)) {
                await mkdir(dirname(join(target, file)), { recursive: true })
                await copyEntry(join(copy.from, file), join(target, file))
              }
            } else {
              await cp(copy.from, target, { recursive: true, force: true, verbatimSymlinks: true })
            }
          }
          break
        }
        case 'RUN':
          // A clean environment: the caller's base (PATH, HOME, ...) under the stage's ENV so far.
          await runCommand('sh', ['-c', instruction.command], { cwd: dir, env: { ...options.runEnv, ...env } })
          break
        default:
          continue
      }
      log(`stage ${label}: ${instruction.text.replace(/\s+/g, ' ')} (${Date.now() - started} ms)`)
    }
    const result: BuiltStage = { ...config, workdir, stage, dir, key, origin: 'built' }
    options.cache?.set(key, result)
    built.push(result)
  }

  const final = built.at(-1) as BuiltStage
  return {
    stages: built,
    final,
    stage: (name) => {
      const found = built.find((candidate) => candidate.stage.name === name)
      if (found === undefined) throw new Error(`no stage named ${name}`)
      return found
    }
  }
}

/** The stage's WORKDIR, which the stage folder stands in for: one, set before COPY and RUN. */
function requireWorkdir (stage: Stage): string {
  let workdir: string | undefined
  for (const instruction of stage.instructions) {
    if (instruction.kind === 'WORKDIR') {
      const path = posix.resolve(workdir ?? '/', instruction.path)
      if (workdir !== undefined && path !== workdir) throw new DockerfileError(instruction.line, 'only one WORKDIR per stage is simulated')
      if (path === '/') throw new DockerfileError(instruction.line, 'WORKDIR / cannot be simulated')
      workdir = path
    } else if ((instruction.kind === 'COPY' || instruction.kind === 'RUN') && workdir === undefined) {
      throw new DockerfileError(instruction.line, `${instruction.kind} before WORKDIR cannot be simulated`)
    }
  }
  if (workdir === undefined) throw new DockerfileError(stage.line, 'a stage without WORKDIR cannot be simulated')
  return workdir
}

/** The destination folder-relative path; it must lie inside the WORKDIR the folder stands for. */
function destination (instruction: CopyInstruction, workdir: string): string {
  const path = posix.resolve(workdir, instruction.dest)
  if (path !== workdir && !path.startsWith(`${workdir}/`)) {
    throw new DockerfileError(instruction.line, `COPY to ${path}: only ${workdir} (the WORKDIR) is simulated`)
  }
  return posix.relative(workdir, path)
}

/** Expands the sources of one COPY, giving each its source folder and glob-free name. */
async function expandSources (instruction: CopyInstruction, root: string, rootLabel: string, ignored: (path: string) => boolean): Promise<string[]> {
  const sources: string[] = []
  for (const source of instruction.sources) {
    const path = posix.normalize(source).replace(/^\/+/, '').replace(/\/+$/, '')
    if (path === '..' || path.startsWith('../')) throw new DockerfileError(instruction.line, `COPY ${source}: outside ${rootLabel}`)
    if (!hasWildcard(path)) {
      if (path !== '.' && ignored(path)) throw new DockerfileError(instruction.line, `COPY ${source}: excluded by .dockerignore`)
      await stat(join(root, path)).catch(() => { throw new DockerfileError(instruction.line, `COPY ${source}: not found in ${rootLabel}`) })
      sources.push(path)
      continue
    }
    const folder = posix.dirname(path)
    if (hasWildcard(folder)) throw new DockerfileError(instruction.line, `COPY ${source}: wildcards are supported in the last path segment only`)
    const pattern = globToRegExp(posix.basename(path))
    const names = (await readdir(join(root, folder)).catch(() => [])).sort()
    const matches = names.map((name) => posix.join(folder, name)).filter((match) => pattern.test(posix.basename(match)) && !ignored(match))
    if (matches.length === 0) throw new DockerfileError(instruction.line, `COPY ${source}: no files match in ${rootLabel}`)
    sources.push(...matches)
  }
  const multiple = sources.length > 1 || instruction.sources.some(hasWildcard)
  if (multiple && !instruction.dest.endsWith('/')) {
    throw new DockerfileError(instruction.line, 'COPY with several sources needs a destination ending in /')
  }
  return sources
}

async function plan (instruction: CopyInstruction, workdir: string, root: string, sources: string[]): Promise<PlannedCopy[]> {
  const dest = destination(instruction, workdir)
  const intoFolder = instruction.dest.endsWith('/') || sources.length > 1
  const copies: PlannedCopy[] = []
  for (const source of sources) {
    const from = join(root, source)
    // A directory's contents go into the destination; a file goes into it by name when the
    // destination is a folder (ends in /), else it becomes the destination.
    const directory = (await stat(from)).isDirectory()
    copies.push({ from, directory, to: directory || !intoFolder ? dest : posix.join(dest, basename(source)) })
  }
  return copies
}

async function planContextCopy (instruction: CopyInstruction, workdir: string, contextDir: string, ignored: (path: string) => boolean): Promise<PlannedCopy[]> {
  return await plan(instruction, workdir, contextDir, await expandSources(instruction, contextDir, 'the build context', ignored))
}

async function planStageCopy (instruction: CopyInstruction, workdir: string, source: BuiltStage): Promise<PlannedCopy[]> {
  // --from paths are absolute in the source stage; only its WORKDIR (its folder) exists here.
  const relativeSources = instruction.sources.map((path) => {
    const absolute = posix.resolve('/', path)
    if (absolute !== source.workdir && !absolute.startsWith(`${source.workdir}/`)) {
      throw new DockerfileError(instruction.line, `COPY --from=${instruction.from} ${path}: only ${source.workdir} (that stage's WORKDIR) is simulated`)
    }
    return posix.relative(source.workdir, absolute) || '.'
  })
  const sources = await expandSources({ ...instruction, sources: relativeSources }, source.dir, `stage ${instruction.from}`, () => false)
  return await plan(instruction, workdir, source.dir, sources)
}

/** Files (and symlinks) under `dir`, relative to it, sorted, leaving out ignored paths. */
async function listFiles (dir: string, contextPath: string, ignored: (path: string) => boolean): Promise<string[]> {
  const files: string[] = []
  const walk = async (relativeDir: string): Promise<void> => {
    const entries = await readdir(join(dir, relativeDir), { withFileTypes: true })
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const path = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`
      const fromContext = contextPath === '' ? path : `${contextPath.split(sep).join('/')}/${path}`
      if (ignored(fromContext)) continue
      if (entry.isDirectory()) await walk(path)
      else files.push(path)
    }
  }
  await walk('')
  return files
}

async function copyEntry (from: string, to: string): Promise<void> {
  const info = await lstat(from)
  if (info.isSymbolicLink()) await symlink(await readlink(from), to)
  else await copyFile(from, to)
}

/** Copies the build context (minus what .dockerignore leaves out) to `dest`, e.g. to modify it. */
export async function copyContext (contextDir: string, dest: string): Promise<void> {
  const ignored = dockerignore(await readFile(join(contextDir, '.dockerignore'), 'utf8').catch(() => ''))
  for (const file of await listFiles(contextDir, '', ignored)) {
    await mkdir(dirname(join(dest, file)), { recursive: true })
    await copyEntry(join(contextDir, file), join(dest, file))
  }
}

// ---------------------------------------------------------------------------------------
// Running the image
// ---------------------------------------------------------------------------------------

export interface ContainerOptions {
  /** Stands in for the image's HOME. */
  home: string
  /** Like `docker run -e`: over the image's ENV. */
  env?: Record<string, string>
}

/** The environment `docker run` gives the CMD: PATH and HOME, the image's ENV, then -e. */
export function containerEnv (image: BuiltStage, options: ContainerOptions): NodeJS.ProcessEnv {
  return { PATH: systemPath(), HOME: options.home, ...image.env, ...options.env }
}

/** Starts the image's CMD exactly as written, in the stage folder (its WORKDIR). */
export function startContainer (image: BuiltStage, options: ContainerOptions): SpawnedProcess {
  const [command, ...args] = image.cmd ?? []
  if (command === undefined) throw new Error('the image has no CMD')
  return spawnProcess(command, args, { cwd: image.dir, env: containerEnv(image, options) })
}

/** Runs the HEALTHCHECK command once, bounded by its --timeout; undefined when it timed out. */
export async function runHealthcheck (image: BuiltStage, options: ContainerOptions): Promise<ProcessResult | undefined> {
  const check = image.healthcheck
  if (check === undefined) throw new Error('the image has no HEALTHCHECK')
  const [command, ...args] = check.argv
  const proc = spawnProcess(command as string, args, { cwd: image.dir, env: containerEnv(image, options) })
  const result = await waitForExit(proc, parseDuration(check.options.timeout ?? '30s'))
  if (result === undefined) await killProcess(proc)
  return result
}
