// The runs table: sorted by a click on a column title (numbers from the highest on the
// first click, text from A; the arrow shows the order), "show every column" unfolds the
// rest. bindTables() again after a table is replaced; sortBy() re-applies a sort.
function sortRows(th, down) {
  const col = [...th.parentNode.children].indexOf(th);
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.dir);
  th.dataset.dir = down ? 'down' : 'up';
  const body = th.closest('table').tBodies[0];
  const key = tr => { const td = tr.cells[col];
    return td.dataset.sort !== '' ? parseFloat(td.dataset.sort) : td.textContent.trim(); };
  const rows = [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
    if (typeof x !== typeof y) return typeof x === 'number' ? -1 : 1;  // blanks last
    const c = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
    return down ? -c : c; });
  rows.forEach(r => body.appendChild(r));
}
function sortBy(title, down) {
  const th = [...document.querySelectorAll('table.sortable th')].find(h => h.textContent === title);
  if (th) sortRows(th, down);
}
function bindTables() {
  document.querySelectorAll('input.all-columns').forEach(box => box.addEventListener('change',
    e => document.querySelectorAll('table.runs').forEach(t => t.classList.toggle('all', e.target.checked))));
  document.querySelectorAll('table.sortable th').forEach(th => th.addEventListener('click', () => {
    const down = th.dataset.dir ? th.dataset.dir !== 'down' : th.dataset.numeric === 'yes';
    sortRows(th, down);
    document.dispatchEvent(new CustomEvent('sorted', {detail: [th.textContent, down]}));
  }));
}
bindTables();
