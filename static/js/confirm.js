/* Ask before a consequential submit, without inline JavaScript (the pages may get a strict
   Content-Security-Policy): a <form data-confirm="…"> or a submit <button data-confirm="…">
   asks window.confirm(message) and the submit is cancelled when the user says no. The button's
   message wins over the form's; a button with data-confirm="" never asks. */
(function () {
  "use strict";

  var lastSubmitter = null;  // for browsers without SubmitEvent.submitter

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button, input[type=submit], input[type=image]");
    lastSubmitter = button && button.form ? button : null;
  }, true);

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter || (lastSubmitter && lastSubmitter.form === form ? lastSubmitter : null);
    lastSubmitter = null;
    var message = null;
    if (submitter && submitter.hasAttribute("data-confirm")) {
      message = submitter.getAttribute("data-confirm");
    } else if (form.hasAttribute && form.hasAttribute("data-confirm")) {
      message = form.getAttribute("data-confirm");
    }
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
})();
