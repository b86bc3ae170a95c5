// Uploads each chosen or dropped video on its own, with a progress bar and a Cancel button,
// then lets the form submit the batch by the ids of the files that arrived. Without this
// script the same form sends the files with the rest of it.
(() => {
  "use strict";

  const csrfToken = () => document.querySelector("[name=csrfmiddlewaretoken]").value;
  const active = new Set();

  // As the pages write sizes (apps/sizes.py): "331 KB", "1.4 MB", "500 MB".
  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes.toLocaleString("en")} byte${bytes === 1 ? "" : "s"}`;
    const units = ["KB", "MB", "GB", "TB"];
    const rounded = (amount) => (amount < 9.95 ? Number(amount.toFixed(1)) : Math.round(amount));
    let amount = bytes;
    let unit = units[0];
    for (unit of units) {
      amount /= 1024;
      if (rounded(amount) < 1024 || unit === units[units.length - 1]) break;
    }
    return `${rounded(amount).toLocaleString("en", { maximumFractionDigits: 1 })} ${unit}`;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function refreshSubmit(form) {
    // The form's own button, not a staged file's Remove (also a submit button).
    const button = form.querySelector(".form-actions button[type=submit]");
    if (!button) return;
    button.disabled = active.size > 0;
    button.textContent = active.size > 0 ? "Waiting for uploads…" : "Remove watermarks";
  }

  function addItem(box, file) {
    const item = element("li", "upload-item");
    const name = element("span", "file-name", file.name);
    const bar = element("progress", "upload-progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", `Upload of ${file.name}`);
    const status = element("span", "upload-status muted", formatSize(file.size));
    const cancel = element("button", "button-small button-ghost upload-cancel", "Cancel");
    cancel.type = "button";
    item.append(name, bar, status, cancel);
    box.querySelector(".upload-list").append(item);
    return { item, bar, status, cancel };
  }

  function fail(view, message) {
    view.item.classList.add("upload-failed");
    view.bar.remove();
    view.status.textContent = message;
    view.status.classList.remove("muted");
    view.status.classList.add("field-error");
    view.cancel.textContent = "Dismiss";
    view.cancel.onclick = () => view.item.remove();
  }

  function done(view, form, data) {
    view.item.classList.add("upload-done");
    view.item.dataset.id = data.id;
    view.bar.value = 100;
    view.status.textContent = `${formatSize(data.size)} · ${Math.round(data.seconds)} s · ready`;
    const hidden = element("input");
    hidden.type = "hidden";
    hidden.name = "uploads";
    hidden.value = data.id;
    view.item.append(hidden);
    view.cancel.textContent = "Remove";
    view.cancel.onclick = () => {
      view.item.remove();
      fetch(data.discard_url, { method: "POST", headers: { "X-CSRFToken": csrfToken() } });
    };
  }

  // One XHR: the only browser API that reports upload progress.
  function send(url, body, view, headers) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      for (const [key, value] of Object.entries(headers || {})) xhr.setRequestHeader(key, value);
      xhr.upload.onprogress = (event) => {
        if (!event.lengthComputable) return;
        const percent = Math.floor((event.loaded / event.total) * 100);
        view.bar.value = percent;
        view.status.textContent = `${percent} %`;
      };
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () => reject(new Error("The upload was interrupted. Please try again."));
      xhr.onabort = () => reject(new Error("canceled"));
      view.cancel.onclick = () => xhr.abort();
      xhr.send(body);
    });
  }

  function errorOf(xhr) {
    try {
      return JSON.parse(xhr.responseText).error || `The upload failed (${xhr.status}).`;
    } catch {
      return `The upload failed (${xhr.status}).`;
    }
  }

  async function postForm(url, fields) {
    const body = new FormData();
    for (const [key, value] of Object.entries(fields)) body.append(key, value);
    const response = await fetch(url, { method: "POST", body, headers: { "X-CSRFToken": csrfToken() } });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `The upload failed (${response.status}).`);
    return data;
  }

  async function upload(box, form, file) {
    const view = addItem(box, file);
    const maxBytes = Number(box.dataset.maxBytes);
    if (file.size > maxBytes) return fail(view, `This file is larger than the ${formatSize(maxBytes)} we accept.`);
    if (file.size === 0) return fail(view, "This file is empty (0 bytes).");
    active.add(view);
    refreshSubmit(form);
    try {
      let data;
      if (box.dataset.presignUrl) {
        // Straight into the bucket, then the app checks what arrived.
        const target = await postForm(box.dataset.presignUrl, {});
        const body = new FormData();
        for (const [key, value] of Object.entries(target.fields)) body.append(key, value);
        body.append("file", file);
        const xhr = await send(target.url, body, view);
        if (xhr.status >= 300) throw new Error(`The storage refused the upload (${xhr.status}).`);
        view.status.textContent = "Checking…";
        data = await postForm(box.dataset.confirmUrl, { ticket: target.ticket, name: file.name });
      } else {
        const body = new FormData();
        body.append("file", file);
        const xhr = await send(box.dataset.uploadUrl, body, view, { "X-CSRFToken": csrfToken() });
        if (xhr.status !== 201) throw new Error(errorOf(xhr));
        data = JSON.parse(xhr.responseText);
      }
      done(view, form, data);
    } catch (error) {
      if (error.message === "canceled") view.item.remove();
      else fail(view, error.message);
    } finally {
      active.delete(view);
      refreshSubmit(form);
    }
  }

  function take(box, files) {
    const form = box.closest("form");
    const queued = box.querySelectorAll(".upload-item:not(.upload-failed)").length;
    const room = Number(box.dataset.maxFiles) - queued;
    [...files].forEach((file, index) => {
      if (index < room) upload(box, form, file);
      else fail(addItem(box, file), `Up to ${box.dataset.maxFiles} files can be sent at once.`);
    });
  }

  document.addEventListener("change", (event) => {
    const input = event.target;
    const box = input.closest && input.closest(".upload");
    if (!box || input.type !== "file") return;
    take(box, input.files);
    input.value = ""; // sent one by one above, so not again with the form
  });

  for (const type of ["dragenter", "dragover"]) {
    document.addEventListener(type, (event) => {
      const zone = event.target.closest && event.target.closest(".drop-zone");
      if (!zone) return;
      event.preventDefault();
      zone.classList.add("drop-zone-over");
    });
  }
  document.addEventListener("dragleave", (event) => {
    const zone = event.target.closest && event.target.closest(".drop-zone");
    if (zone) zone.classList.remove("drop-zone-over");
  });
  document.addEventListener("drop", (event) => {
    const zone = event.target.closest && event.target.closest(".drop-zone");
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("drop-zone-over");
    take(zone.closest(".upload"), event.dataTransfer.files);
  });
})();
