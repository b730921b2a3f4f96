// The conversation every scenario uses: 20 messages, about 4 KB of JSON.

export function messages (count, prefix = 'm') {
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}${i}`,
    role: i % 2 === 0 ? 'user' : 'assistant',
    text: `Message ${i}: ${'lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(2).slice(0, 110)}`,
    metadata: { turn: i }
  }))
}

export function conversation (userId, messageCount = 20) {
  return {
    userId,
    title: 'Benchmark conversation',
    workflowId: 'bench',
    currentStep: 3,
    stepData: { plan: 'standard', answers: { a: 1, b: 'two' } },
    metadata: { channel: 'web', locale: 'en-GB' },
    messages: messages(messageCount)
  }
}
