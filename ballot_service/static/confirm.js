// Console forms that ask before they act: <form data-confirm="question">. (An inline onsubmit
// handler would need 'unsafe-inline' in the Content-Security-Policy; web/security.py.)
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) ev.preventDefault();
  }, true);
})();
