import { Redis } from 'ioredis'
const port = 46999
import { spawn } from 'node:child_process'
const srv = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
await new Promise(r => setTimeout(r, 300))
const c = new Redis(port)
c.defineCommand('foo', { numberOfKeys: 1, lua: 'return 1' })
const m = await new Redis(port).monitor()
m.on('monitor', (time, args) => console.log('MON', args.slice(0, 3)))
await c.foo('k')
await c.foo('k')
await new Promise(r => setTimeout(r, 200))
m.disconnect(); c.disconnect(); srv.kill()
