// photonpipe serve home page: upload a session file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  const button = document.getElementById("upload-button");
  if (!button) return;
  button.addEventListener("click", async function () {
    const input = document.getElementById("upload-file");
    const message = document.getElementById("message");
    if (!input.files.length) { message.textContent = "choose a .smh file first"; return; }
    const file = input.files[0];
    const token = document.querySelector('meta[name="csrf-token"]').content;
    message.textContent = "uploading…";
    const response = await fetch("/session/upload", {
      method: "POST",
      headers: { "X-CSRF-Token": token, "X-Filename": file.name, "Content-Type": "application/octet-stream" },
      body: file,
    });
    const result = await response.json().catch(function () { return { error: response.statusText }; });
    if (!response.ok) { message.textContent = result.error; message.classList.add("error"); return; }
    window.location = result.url;
  });
});
