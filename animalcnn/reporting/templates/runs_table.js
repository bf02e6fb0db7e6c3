// Sorting by a click on a column title (numbers from the highest on the first click,
// text from A), the arrow showing the order; "show every column" unfolds the rest.
document.querySelectorAll('input.all-columns').forEach(box => box.addEventListener('change',
  e => document.querySelectorAll('table.runs').forEach(t => t.classList.toggle('all', e.target.checked))));
document.querySelectorAll('table.sortable th').forEach((th, col) => {
  th.addEventListener('click', () => {
    const body = th.closest('table').tBodies[0];
    const numeric = th.dataset.numeric === 'yes';
    const down = th.dataset.dir ? th.dataset.dir !== 'down' : numeric;
    th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.dir);
    th.dataset.dir = down ? 'down' : 'up';
    const key = tr => { const td = tr.cells[col];
      return td.dataset.sort !== '' ? parseFloat(td.dataset.sort) : td.textContent.trim(); };
    const rows = [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
      if (typeof x !== typeof y) return typeof x === 'number' ? -1 : 1;  // blanks last
      const c = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
      return down ? -c : c; });
    rows.forEach(r => body.appendChild(r));
  });
});
