// A starter tool in TypeScript: an agent function and a UI function.
//
// `greet` counts greetings in the chat's context; `request_approval` asks the
// user through the ApprovalForm UI component and keeps the answer in the
// context. Build with `mozaiks tool build .` (it type-checks first) and try
// it with `mozaiks tool call . greet --args '{"name":"Ada"}'`.

import { ToolError, Toolbox } from './mozaiks_tool.js';

interface Greet {
  name: string;
}

interface RequestApproval {
  question: string;
}

const toolbox = new Toolbox()
  .function<Greet>(
    'greet',
    'Greets someone by name. Returns the greeting and how many greetings this chat has had.',
    {
      type: 'object',
      properties: { name: { type: 'string', minLength: 1 } },
      required: ['name'],
      additionalProperties: false,
    },
    (args, call) => {
      const greetings = (call.context.get('greetings', 0) as number) + 1;
      call.context.set('greetings', greetings);
      call.log.info('greeted', { name: args.name });
      return { message: `Hello, ${args.name}!`, greetings };
    },
  )
  .function<RequestApproval>(
    'request_approval',
    'Asks the user to approve something. Returns whether they approved and their comment.',
    {
      type: 'object',
      properties: { question: { type: 'string', minLength: 1 } },
      required: ['question'],
      additionalProperties: false,
    },
    (args, call) => {
      call.ui.notify('Progress', { text: 'waiting for approval' });
      const answer = call.ui.ask('ApprovalForm', { question: args.question }, { timeoutMs: 300000 });
      if (typeof answer !== 'object' || answer === null || Array.isArray(answer) || typeof answer.approved !== 'boolean') {
        throw ToolError.failed(`ApprovalForm answered ${JSON.stringify(answer)}, not {"approved": true|false}`);
      }
      call.context.set('approved', answer.approved);
      call.log.info('approval answered', { approved: answer.approved });
      return { approved: answer.approved, comment: answer.comment ?? '' };
    },
  );

// The component's `tool` interface.
export const tool = toolbox.export();
