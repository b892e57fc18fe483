// A small code agent for the demo: a journaled step, a tool call through the gateway's pipeline,
// streamed events, and thread state. Run it with
//   curl -X POST http://127.0.0.1:7420/v1/runs -H "Authorization: Bearer $KEY" \
//     -H 'Content-Type: application/json' -d '{"agent":"greeter","input":{"text":"Ada"}}'
// or call the MCP tool agents__greeter.
import { defineAgent } from 'gatehouse'

export default defineAgent({
  name: 'greeter',
  description:
    'Greets someone through the everything server, and remembers how many it greeted on the thread',
  input: {
    type: 'object',
    properties: { text: { type: 'string', description: 'Who to greet' } },
    required: ['text'],
  },
  async run(input, ctx) {
    const greeting = await ctx.step('compose', () => `Hello, ${input.text}!`)
    ctx.emit({ type: 'token', text: greeting })
    const echoed = await ctx.callTool('everything__echo', { message: greeting })
    const count = Number(ctx.state.greeted ?? 0) + 1
    await ctx.setState({ greeted: count })
    return { text: echoed.content?.[0]?.text ?? greeting, greeted: count }
  },
})
