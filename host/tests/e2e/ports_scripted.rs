//! Python, JavaScript and TypeScript tools read their secrets, the app's
//! data and the chat through their helpers (`mozaiks_tool.py`,
//! `mozaiks_tool.js`, `mozaiks_tool.ts`), called through `mozaiks tool
//! call` with the harness's `--secret`, `--data-file` and
//! `--transcript-file`.
