import createError from '@fastify/error'

// Every error the API can answer with, by stable code. Routes and stores throw these;
// the error handler turns them into `{ statusCode, code, error, message }`.

export const ConversationNotFoundError = createError<[string]>('CONVERSATION_NOT_FOUND', "Conversation '%s' was not found", 404)
export const ConversationExistsError = createError<[string]>('CONVERSATION_EXISTS', "Conversation '%s' already exists", 409)
export const UserMismatchError = createError('USER_MISMATCH', 'userId cannot change after a conversation is created', 409)
export const PreconditionFailedError = createError('PRECONDITION_FAILED', 'The conversation does not match the precondition headers', 412)
export const MessageNotFoundError = createError<[string]>('MESSAGE_NOT_FOUND', "Message '%s' was not found", 404)
export const WorkflowStateNotFoundError = createError<[string]>('WORKFLOW_STATE_NOT_FOUND', "Conversation '%s' has no workflow state", 404)
export const TooManyMessagesError = createError<[number]>('TOO_MANY_MESSAGES', 'A conversation holds at most %d messages', 413)
export const ConversationTooLargeError = createError<[number]>('CONVERSATION_TOO_LARGE', 'A conversation may take at most %d bytes in the memory store', 413)
export const ImportTooLargeError = createError<[number]>('IMPORT_TOO_LARGE', 'An import may send at most %d bytes (IMPORT_MAX_BYTES)', 413)
export const InvalidRequestError = createError<[string]>('FST_ERR_VALIDATION', '%s', 400)
export const UnauthorizedError = createError('UNAUTHORIZED', 'A valid bearer token is required', 401)
export const TokenRefusedError = createError<[string]>('UNAUTHORIZED', 'The bearer token was refused: %s', 401)
export const CorruptRecordError = createError<[string]>('CORRUPT_RECORD', "The stored record of conversation '%s' is corrupt", 500)
export const StoreUnavailableError = createError('STORE_UNAVAILABLE', 'The conversation store is unavailable; retry later', 503)
export const ForbiddenError = createError<[string]>('FORBIDDEN', '%s', 403)
export const AuthUnavailableError = createError('AUTH_UNAVAILABLE', 'The identity provider is unavailable, so the token cannot be checked; retry later', 503)
export const RateLimitedError = createError<[number, string]>('RATE_LIMITED', 'At most %d requests a minute; retry in %s', 429)
