// The forward form, enhanced: "Add a friend" adds an input here instead of posting the form
// (which does the same without JavaScript), and a refused form's error summary takes the focus.
const summary = document.getElementById("error-summary");
if (summary && document.activeElement !== summary) {
  summary.focus();
}

const group = document.querySelector("fieldset.friends");
const adder = group && group.querySelector('button[name="add_friend"]');
if (group && adder) {
  const max = Number(group.dataset.max);
  adder.addEventListener("click", (event) => {
    const rows = group.querySelectorAll("div.friend");
    if (rows.length >= max) {
      return;
    }
    event.preventDefault();
    const number = rows.length + 1;
    // A copy of the last row, emptied: its label, its hint; none of its errors.
    const row = rows[rows.length - 1].cloneNode(true);
    row.querySelectorAll(".errors").forEach((list) => list.remove());
    const input = row.querySelector("input");
    input.id = `friend-${number}`;
    input.value = "";
    input.removeAttribute("aria-invalid");
    input.setAttribute("aria-describedby", "friend-hint");
    const label = row.querySelector("label");
    label.htmlFor = input.id;
    label.textContent = group.dataset.label.replace("{n}", String(number));
    adder.before(row);
    input.focus();
    if (number >= max) {
      adder.hidden = true;
    }
  });
}
