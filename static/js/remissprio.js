// Remissprio: small behaviours without inline script (the pages run under a strict CSP).
document.addEventListener("change", (event) => {
  if (event.target.matches(".js-autosubmit")) event.target.form.submit();
});

// Choosing another reply template reloads the draft from that template.
document.addEventListener("change", (event) => {
  const select = event.target.closest(".js-template-select");
  if (!select) return;
  const url = new URL(select.dataset.url, window.location.href);
  if (select.value) url.searchParams.set("mall", select.value);
  window.location.assign(url);
});

document.addEventListener("click", (event) => {
  const copy = event.target.closest(".js-copy");
  if (copy) {
    const source = document.getElementById(copy.dataset.copyTarget);
    const text = source.value !== undefined ? source.value : source.innerText;
    navigator.clipboard.writeText(text).then(() => {
      copy.textContent = copy.dataset.copied || "Kopierat";
    });
  }
  if (event.target.closest(".js-print")) window.print();
});
