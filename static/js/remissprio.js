// Remissprio: small behaviours without inline script (the pages run under a strict CSP).
document.addEventListener("change", (event) => {
  if (event.target.matches(".js-autosubmit")) event.target.form.submit();
});
