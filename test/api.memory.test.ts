import { apiSuite } from './helpers/api-suite.js'
import { memoryBackend } from './helpers/backends.js'

apiSuite(memoryBackend)
