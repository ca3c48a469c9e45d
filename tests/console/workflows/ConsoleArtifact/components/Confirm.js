// The ConsoleArtifact workflow's own component for `Confirm` requests: the
// console imports it instead of generating a form. The contract
// (docs/workflows.md, components/): render(container, request, submit).

export function render(container, request, submit) {
  const question = document.createElement('p');
  question.className = 'confirm-question';
  question.textContent = request.payload.question || 'Confirm?';
  const status = document.createElement('p');
  status.setAttribute('role', 'status');
  const choose = (confirmed) => async () => {
    for (const button of buttons) button.disabled = true;
    try {
      await submit({ confirmed });
      status.textContent = confirmed ? 'Confirmed.' : 'Declined.';
    } catch (err) {
      status.textContent = err.message;
      for (const button of buttons) button.disabled = false;
    }
  };
  const buttons = [['Confirm', true], ['Decline', false]].map(([label, value]) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = value ? 'button primary' : 'button';
    button.textContent = label;
    button.addEventListener('click', choose(value));
    return button;
  });
  const row = document.createElement('div');
  row.className = 'confirm-buttons';
  row.append(...buttons);
  container.append(question, row, status);
}
