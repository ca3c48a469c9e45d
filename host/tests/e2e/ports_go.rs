//! A Go tool reads its secrets, the app's data and the chat through the Go
//! helper (`sdk/go/mozaiks`), called through `mozaiks tool call` with the
//! harness's `--secret`, `--data-file` and `--transcript-file`.
