import { accessSuite } from './helpers/access-suite.js'
import { memoryBackend } from './helpers/backends.js'

accessSuite(memoryBackend)
