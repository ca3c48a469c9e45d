// PlanReview's own component for the planner's `notify` tool (a ui_notify:
// a note that takes no answer). The contract is in docs/workflows.md,
// components/: render(container, request, submit).

export function render(container, request) {
  const note = document.createElement('p');
  note.className = 'toast-note';
  note.setAttribute('role', 'status');
  note.textContent = String((request.payload && request.payload.message) || '');
  container.append(note);
}
