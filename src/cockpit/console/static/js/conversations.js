// Conversations: a message's answer shown as the model writes it (server-sent events from
// /conversations/{id}/stream), with a Stop button; the thread is re-read once the answer is kept.
// Text is only ever set with textContent: nothing a model or a tool writes becomes HTML.
(function () {
  "use strict";

  function bubble(log, role, label) {
    var article = document.createElement("article");
    article.className = "chat-msg " + role;
    var who = document.createElement("div");
    who.className = "chat-who";
    who.textContent = label;
    var text = document.createElement("div");
    text.className = "chat-text";
    article.appendChild(who);
    article.appendChild(text);
    log.appendChild(article);
    return { article: article, text: text };
  }

  function refresh(form) {
    if (window.htmx) {
      window.htmx.ajax("GET", form.dataset.thread, { target: "#thread", swap: "outerHTML" });
    } else {
      window.location.reload();
    }
  }

  async function send(form) {
    var box = form.querySelector("textarea[name=content]");
    var content = box ? box.value.trim() : "";
    if (!content) return;
    var thread = document.getElementById("thread");
    var log = thread ? thread.querySelector(".conv-log") : null;
    if (!log) return;
    var empty = log.querySelector("[data-testid=thread-empty]");
    if (empty) empty.remove();
    if (form.dataset.edit) {
      // A new version of an earlier message: the branch from it on is replaced on the screen (it is
      // kept on the server, one "‹ 1 / 2 ›" away).
      var from = log.querySelector('article[data-id="' + form.dataset.edit + '"]');
      while (from) { var next = from.nextElementSibling; from.remove(); from = next; }
    }
    bubble(log, "user", "You").text.textContent = content;
    var answer = bubble(log, "assistant", "Answer");
    answer.article.setAttribute("data-testid", "streaming-answer");
    var controller = new AbortController();
    var stop = document.createElement("button");
    stop.type = "button";
    stop.className = "btn btn-secondary btn-sm";
    stop.textContent = "Stop";
    stop.setAttribute("data-testid", "stop-answer");
    stop.addEventListener("click", function () { controller.abort(); });
    answer.article.appendChild(stop);
    var body = new FormData(form);
    form.querySelectorAll("button, textarea").forEach(function (el) { el.disabled = true; });
    try {
      var response = await fetch(form.dataset.stream, {
        method: "POST", body: body, signal: controller.signal, headers: { Accept: "text/event-stream" },
      });
      if (!response.ok || !response.body) throw new Error("refused");
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var pending = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) break;
        pending += decoder.decode(chunk.value, { stream: true });
        var lines = pending.split("\n");
        pending = lines.pop();
        lines.forEach(function (line) {
          if (line.indexOf("data: ") !== 0 || line === "data: [DONE]") return;
          var event;
          try { event = JSON.parse(line.slice(6)); } catch (e) { return; }
          if (event.type === "delta") {
            answer.text.textContent += event.content;
          } else if (event.type === "tool_step") {
            var step = document.createElement("p");
            step.className = "muted small";
            step.textContent = "Tool: " + event.step.integration + " · " + event.step.tool + (event.step.ok ? " (ok)" : " (failed)");
            answer.article.insertBefore(step, answer.text);
          }
        });
      }
      refresh(form);
    } catch (error) {
      // Stopped, or the connection failed: what had arrived is kept on the server; show it as kept.
      setTimeout(function () { refresh(form); }, 400);
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.stream || !window.fetch || !window.TextDecoder) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    send(form);
  }, true);
})();
