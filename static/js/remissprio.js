// Remissprio: small behaviours without inline script (the pages run under a strict CSP).
document.addEventListener("change", (event) => {
  if (event.target.matches(".js-autosubmit")) event.target.form.submit();
});

// Choosing another reply template reloads the draft from that template; edited text is
// only thrown away after the radiologist confirms.
document.addEventListener("input", (event) => {
  if (event.target.id === "id_text") event.target.dataset.edited = "1";
});
document.addEventListener("focusin", (event) => {
  const select = event.target.closest(".js-template-select");
  if (select) select.dataset.previous = select.value;
});
document.addEventListener("change", (event) => {
  const select = event.target.closest(".js-template-select");
  if (!select) return;
  const text = document.getElementById("id_text");
  if (text && text.dataset.edited && !window.confirm(select.dataset.confirm)) {
    select.value = select.dataset.previous || "";
    return;
  }
  const url = new URL(select.dataset.url, window.location.href);
  url.searchParams.set("mall", select.value || "0");  // 0: free text, an empty box
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
