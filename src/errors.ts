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
export const MessageInProgressError = createError<[string]>('MESSAGE_IN_PROGRESS', "Message '%s' is streaming: its text changes by deltas until it is finished", 409)
export const DeltaTooLargeError = createError<[number]>('DELTA_TOO_LARGE', 'A delta holds at most %d characters of text (MAX_DELTA_CHARS)', 413)
export const MessageTooLargeError = createError<[number]>('MESSAGE_TOO_LARGE', 'A streamed message holds at most %d characters of text (MAX_STREAMED_TEXT_CHARS)', 413)

/** Fields an error adds to its body (errors plugin), beside statusCode, code, error and message. */
export const ERROR_DETAILS = Symbol('conversation-store.errorDetails')
export interface ErrorDetails { expectedSeq?: number, status?: string, statusReason?: string }

const DeltaOutOfOrder = createError<[number]>('DELTA_OUT_OF_ORDER', 'The message takes seq %d next, or that seq was applied with other text', 409)
const MessageNotInProgress = createError<[string, string]>('MESSAGE_NOT_IN_PROGRESS', "Message '%s' is %s: only an in_progress message takes deltas or a new status", 409)

/** 409 DELTA_OUT_OF_ORDER, naming the seq the message takes next. */
export function deltaOutOfOrder (expectedSeq: number): Error {
  return Object.assign(new DeltaOutOfOrder(expectedSeq), { [ERROR_DETAILS]: { expectedSeq } })
}

/** 409 MESSAGE_NOT_IN_PROGRESS, with the message's status and reason: how a producer learns it was cancelled. */
export function messageNotInProgress (messageId: string, status: string, statusReason?: string): Error {
  const details: ErrorDetails = statusReason === undefined ? { status } : { status, statusReason }
  return Object.assign(new MessageNotInProgress(messageId, status), { [ERROR_DETAILS]: details })
}
export const FeedsFullError = createError<[number]>('TOO_MANY_FOLLOWERS', 'This instance serves at most %d event streams (EVENTS_MAX_CONNECTIONS); retry later', 503)
export const RateLimitedError = createError<[number, string]>('RATE_LIMITED', 'At most %d requests a minute; retry in %s', 429)
